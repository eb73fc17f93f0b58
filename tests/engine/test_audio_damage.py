"""Damage in the middle of FLAC, OGG and MP3 files is decoded around: the song keeps its length and timing, the
lost span is silence, and a note says where it starts and how long it is. A FLAC whose MD5 does not match gets a
note; a file cut short is refused saying how much was there; no library jargon reaches the reason.

The inputs are generated noise (so a shift in time cannot hide) with random bytes written over their middle.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import audio_info, load_audio, open_audio_stream
from engine.errors import AudioLoadError

RATE = 44100
SECONDS = 8.0
ROOT = Path(__file__).resolve().parents[2]
NOTE = re.compile(r"at (\d+):(\d\d\.\d\d): (\d+\.\d\d) s could not be decoded and is silence")


def noise(seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """``(n_frames, 2)`` float32 noise (soundfile's layout)."""
    return (0.1 * np.random.default_rng(seed).standard_normal((int(seconds * RATE), 2))).astype(np.float32)


def damaged(path: Path, at: float = 0.5, n_bytes: int = 2000, seed: int = 1) -> Path:
    """A copy of ``path`` with ``n_bytes`` random bytes written at fraction ``at`` of its size."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + n_bytes] = np.random.default_rng(seed).bytes(n_bytes)
    out = path.with_name("damaged_" + path.name)
    out.write_bytes(bytes(data))
    return out


def gap(note: str) -> tuple[float, float]:
    """``(start, length)`` in seconds from a gap note."""
    match = NOTE.search(note)
    assert match, note
    return int(match[1]) * 60 + float(match[2]), float(match[3])


def aligned_after(got: np.ndarray, clean: np.ndarray, start: int) -> float:
    """The largest difference between ``got`` and ``clean`` from sample ``start`` on."""
    return float(np.max(np.abs(got[:, start:] - clean[:, start:])))


def test_flac_damaged_in_the_middle_is_exact_around_a_silent_gap(tmp_path: Path) -> None:
    original = noise()
    clean = tmp_path / "song.flac"
    sf.write(clean, original, RATE, subtype="PCM_16")
    bad = damaged(clean)
    audio = load_audio(bad)
    reference = load_audio(clean).samples
    assert audio.samples.shape == reference.shape
    (note,) = [n for n in audio.notes if "could not be decoded" in n]
    start, length = gap(note)
    assert 3.0 < start < 5.0 and 0.0 < length < 0.5
    lo, hi = int(round(start * RATE)), int(round((start + length) * RATE))
    margin = RATE // 100  # the note gives hundredths of a second
    np.testing.assert_array_equal(audio.samples[:, : lo - margin], reference[:, : lo - margin])
    assert not audio.samples[:, lo + margin : hi - margin].any()  # the gap is silence
    assert aligned_after(audio.samples, reference, hi + margin) == 0.0  # lossless, and in place
    with open_audio_stream(bad, None, 2) as streamed:
        np.testing.assert_array_equal(streamed.samples, audio.samples)
        assert streamed.notes == audio.notes


@pytest.mark.parametrize("where", [0.5, 0.8])
def test_ogg_with_a_damaged_page_keeps_its_length_and_timing(tmp_path: Path, where: float) -> None:
    clean = tmp_path / "song.ogg"
    sf.write(clean, noise(), RATE, format="OGG", subtype="VORBIS")
    bad = damaged(clean, at=where, n_bytes=6000)
    reference = load_audio(clean).samples
    audio = load_audio(bad)
    assert audio.samples.shape == reference.shape  # libsndfile alone gave 65 % (or less) with no word
    notes = [n for n in audio.notes if "could not be decoded" in n]
    assert notes
    start, length = gap(notes[-1])
    assert start + length < SECONDS
    tail = int(round((start + length) * RATE)) + 4096  # one packet after the gap needs its predecessor
    assert aligned_after(audio.samples, reference, tail) < 1e-4


def test_ogg_whose_first_audio_pages_are_lost_puts_the_rest_at_its_place(tmp_path: Path) -> None:
    clean = tmp_path / "short.ogg"
    sf.write(clean, noise(4.0), RATE, format="OGG", subtype="VORBIS")
    data = bytearray(clean.read_bytes())
    first_audio_page = data.index(b"OggS", data.index(b"OggS", 1) + 1)  # after the two header pages
    data[first_audio_page : first_audio_page + 1500] = np.random.default_rng(2).bytes(1500)
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(bytes(data))
    reference = load_audio(clean).samples
    audio = load_audio(bad)
    assert audio.samples.shape == reference.shape
    (note,) = audio.notes
    start, length = gap(note)
    assert start == 0.0 and length > 0.1
    assert aligned_after(audio.samples, reference, int(round(length * RATE)) + 4096) < 1e-4


def test_mp3_damaged_in_the_middle_keeps_its_length_and_timing(tmp_path: Path) -> None:
    clean = tmp_path / "song.mp3"
    sf.write(clean, noise(), RATE, format="MP3")
    bad = damaged(clean)
    reference = load_audio(clean).samples
    audio = load_audio(bad)  # was refused whole ("decoding failed after 3.99 s") or cut short
    assert audio.samples.shape == reference.shape
    (note,) = audio.notes
    assert note.startswith("damaged MP3 frames at ")
    start, length = gap(note)
    tail = int(round((start + length) * RATE)) + 4 * 1152  # the next frames lost their bit reservoir and overlap
    assert aligned_after(audio.samples, reference, tail) < 1e-4


def test_no_decoder_chatter_reaches_the_terminal(tmp_path: Path) -> None:
    """mpg123 prints "Note: Illegal Audio-MPEG-Header ..." on descriptor 2 for damaged or random data."""
    clean = tmp_path / "song.mp3"
    sf.write(clean, noise(4.0), RATE, format="MP3")
    bad = damaged(clean)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(5).bytes(65536))
    script = textwrap.dedent(f"""
        import sys
        from engine.audio import load_audio
        from engine.errors import AudioLoadError
        print("decoded", load_audio({str(bad)!r}).samples.shape, file=sys.stderr)
        try:
            load_audio({str(junk)!r})
        except AudioLoadError as err:
            print("refused:", err.reason, file=sys.stderr)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert child.returncode == 0, child.stderr
    lines = [line for line in child.stderr.strip().splitlines() if "could not be decoded" not in line]  # ours
    assert len(lines) == 2 and lines[0].startswith("decoded") and lines[1].startswith("refused:"), child.stderr


@pytest.mark.parametrize("subtype", ["PCM_S8", "PCM_16", "PCM_24"])
def test_flac_md5_is_checked(tmp_path: Path, subtype: str) -> None:
    path = tmp_path / "song.flac"
    sf.write(path, noise(1.0), RATE, subtype=subtype)
    assert load_audio(path).notes == []  # the right sum, in every sample width
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC"
    data[8 + 18] ^= 0xFF  # the first byte of STREAMINFO's MD5
    path.write_bytes(bytes(data))
    (note,) = load_audio(path).notes
    assert "MD5" in note and "does not match" in note
    with open_audio_stream(path, None, 2) as audio:
        assert audio.notes == [note]


def test_truncated_flac_says_what_it_got_in_plain_words(tmp_path: Path) -> None:
    whole = tmp_path / "whole.flac"
    sf.write(whole, noise(2.0), RATE)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioLoadError) as caught:
        load_audio(cut)
    reason = caught.value.reason
    assert re.search(r"decoding stopped at 0\.9\d s of 2\.00 s", reason), reason
    assert "psf_fseek" not in reason and "Internal" not in reason


@pytest.mark.parametrize("name", ["noise.wav", "noise.mp3", "noise.flac", "noise.ogg", "noise.aiff", "noise"])
def test_random_bytes_never_say_possibly_a_pipe(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(9).bytes(65536))
    for reader in (load_audio, audio_info):
        with pytest.raises(AudioLoadError) as caught:
            reader(path)
        message = str(caught.value)
        assert message.startswith(str(path)) and "\n" not in message
        assert "pipe" not in message and "seek" not in message, message


def test_a_gap_note_is_logged_with_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clean = tmp_path / "song.flac"
    sf.write(clean, noise(4.0), RATE)
    bad = damaged(clean)
    load_audio(bad)
    assert os.fspath(bad) in caplog.text and "could not be decoded" in caplog.text
