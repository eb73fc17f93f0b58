"""What reaches a decoder: only regular files, refused at once otherwise; any file name, UTF-8 or not; a file that
changes while it is read is read as it was, with a note, and never hangs."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import _decode as decode_module
from engine.audio import audio_info, load_audio, open_audio_stream
from engine.errors import AudioLoadError

RATE = 44100
ROOT = Path(__file__).resolve().parents[2]
FFMPEG = shutil.which("ffmpeg")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, sockets and byte names are POSIX")


def tone(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)


def readers():
    return [
        lambda p: load_audio(p),
        lambda p: audio_info(p),
        lambda p: open_audio_stream(p, 44100, 2).close(),
    ]


def refused_at_once(path: Path | bytes, match: str) -> None:
    """Every reader refuses ``path`` with a reason matching ``match``, in a thread that must not hang."""
    for read in readers():
        outcome: list[BaseException | None] = []

        def run(read=read, outcome=outcome) -> None:
            try:
                read(path)
                outcome.append(None)
            except BaseException as caught:  # noqa: BLE001 - handed to the test thread
                outcome.append(caught)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(60)  # only detects a hang: the refusal itself takes milliseconds
        assert not worker.is_alive(), f"reading {path!r} hangs"
        (err,) = outcome
        assert isinstance(err, AudioLoadError), err
        assert re.search(match, err.reason), err.reason


@posix_only
def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "song.wav"
    os.mkfifo(fifo)
    refused_at_once(fifo, r"^is not a regular file \(a named pipe \(FIFO\)\)")


@posix_only
def test_a_socket_and_a_device_are_refused(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "s.wav"))
        refused_at_once(tmp_path / "s.wav", r"not a regular file \(a socket\)")
    finally:
        server.close()
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    refused_at_once(tmp_path / "zero.wav", r"not a regular file \(a character device\)")


@posix_only
def test_symbolic_link_loops_and_dangling_links(tmp_path: Path) -> None:
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop.name)
    refused_at_once(loop, r"symbolic link loop")
    dangling = tmp_path / "gone.flac"
    dangling.symlink_to("nowhere.flac")
    refused_at_once(dangling, r"broken symbolic link")


@posix_only
def test_a_name_that_is_not_utf8_reads_like_any_other(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9 \xff.flac"
    sf.write(raw, tone(), RATE)  # soundfile itself fails on the str form: UnicodeEncodeError
    as_str = os.fsdecode(raw)
    for name in (raw, as_str, Path(as_str)):
        audio = load_audio(name)
        assert audio.samples.shape == (2, tone().shape[0]) and audio.path == Path(as_str)
        assert audio_info(name).n_samples == tone().shape[0]
        with open_audio_stream(name, 48000, 2) as streamed:
            assert streamed.samplerate == 48000
    missing = os.fsdecode(os.fsencode(tmp_path) + b"/\xfe.wav")
    with pytest.raises(AudioLoadError, match="file not found") as caught:
        load_audio(missing)
    assert caught.value.path == Path(missing)


@posix_only
@pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command is not installed")
def test_a_name_that_is_not_utf8_goes_through_ffmpeg_too(tmp_path: Path) -> None:
    source = tmp_path / "source.wav"
    sf.write(source, tone(), RATE)
    raw = os.fsencode(tmp_path) + b"/\xff\xfe.m4a"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", b"-i", os.fsencode(source), "-c:a", "aac", b"file:" + raw],
                   check=True)  # fmt: skip
    with open_audio_stream(raw, 44100, 2) as audio:
        assert any("ffmpeg" in note for note in audio.notes)


@posix_only
def test_notes_about_a_non_utf8_name_print_on_an_ascii_terminal(tmp_path: Path) -> None:
    """With stderr ASCII-only and the name not UTF-8, the warnings still print (no UnicodeEncodeError)."""
    raw = os.fsencode(tmp_path) + b"/\xe9t\xe9 \xff.wav"
    samples = tone()
    samples[10] = np.nan
    sf.write(raw, samples, RATE, subtype="FLOAT")
    script = textwrap.dedent(f"""
        import logging, os, sys
        logging.basicConfig(level=logging.WARNING)
        from engine.audio import open_audio_stream
        from engine.errors import AudioLoadError
        with open_audio_stream(os.fsdecode({raw!r}), 44100, 2) as audio:
            print("notes:", audio.notes, file=sys.stderr)
        try:
            open_audio_stream(os.fsdecode({raw!r}) + ".missing", 44100, 2)
        except AudioLoadError as err:
            print("refused:", err, file=sys.stderr)
    """)
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C", "LANG": "C"}
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=ROOT, env=env, timeout=120)
    err = child.stderr.decode("ascii", "replace")
    assert child.returncode == 0, err
    assert "UnicodeEncodeError" not in err and "Traceback" not in err
    assert "replaced 2 NaN/Inf samples" in err and "refused:" in err and "file not found" in err


def test_a_file_that_changes_while_it_is_read_gets_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing.wav"
    sf.write(path, np.tile(tone(), (8, 1)), RATE)
    real_open = decode_module.open_decoder

    def appending_decoder(*args, **kwargs):
        decoder = real_open(*args, **kwargs)
        blocks = decoder.blocks

        def blocks_then_append():
            for k, block in enumerate(blocks()):
                if k == 0:
                    with open(path, "ab") as f:  # a recorder writing on
                        f.write(bytes(4096))
                yield block

        decoder.blocks = blocks_then_append
        return decoder

    monkeypatch.setattr("engine.audio.stream.open_decoder", appending_decoder)
    audio = load_audio(path)
    assert audio.samples.shape == (2, 8 * tone().shape[0])
    assert any("changed while it was read" in note for note in audio.notes)


def test_a_file_being_written_never_hangs(tmp_path: Path) -> None:
    """A live writer appends to a WAV whose header was never finalised: reading takes what is there."""
    path = tmp_path / "recording.wav"
    sf.write(path, tone(1.0), RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[data.index(b"data") + 4 : data.index(b"data") + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    stop = threading.Event()

    def writer() -> None:
        with open(path, "ab") as f:
            while not stop.is_set():
                f.write(np.zeros(4410 * 2, "<i2").tobytes())
                f.flush()
                stop.wait(0.005)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        results = []
        reader = threading.Thread(target=lambda: results.append(load_audio(path)), daemon=True)
        reader.start()
        reader.join(120)  # only detects a hang
        assert not reader.is_alive()
    finally:
        stop.set()
        thread.join(10)
    (audio,) = results
    assert audio.n_samples >= RATE
