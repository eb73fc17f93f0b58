"""NI STEM files: what we write is checked by independent readers (ffprobe, mutagen's atom parser, stempeg, ffmpeg's
default stream), and what we read back is what was written, sample-aligned."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import stem_mp4
from engine.audio.stem_mp4 import STEM_ORDER, read_manifest, read_stem_mp4, write_stem_mp4
from engine.errors import AudioLoadError, AudioSaveError

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
SR = 44100
N = SR * 2 + 777  # not a multiple of the AAC frame (1024): the end padding must be cut
BANDS = {"drums": (2000.0, 6000.0), "bass": (40.0, 250.0), "other": (250.0, 2000.0), "vocals": (300.0, 3500.0)}


def _song() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Band-limited noise per stem (broadband within its band: a shifted decode cannot line up by accident)."""
    rng = np.random.default_rng(7)
    freqs = np.fft.rfftfreq(N, 1 / SR)
    stems = {}
    for name, (low, high) in BANDS.items():
        spectrum = np.fft.rfft(rng.standard_normal((2, N)), axis=-1) * ((freqs >= low) & (freqs < high))
        noise = np.fft.irfft(spectrum, N, axis=-1)
        stems[name] = (0.1 * noise / np.abs(noise).max()).astype(np.float32)
    return sum(stems.values()).astype(np.float32), stems


def _lag(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 64) -> int:
    """The shift (samples) that best aligns ``decoded`` to ``reference`` (channel 0)."""
    a, b = reference[0, 4096:-4096], decoded[0]
    scores = [float(np.dot(a, b[4096 + lag : 4096 + lag + a.size])) for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


def _snr(reference: np.ndarray, decoded: np.ndarray) -> float:
    n = min(reference.shape[-1], decoded.shape[-1])
    return 10 * np.log10(np.sum(reference[:, :n] ** 2) / np.sum((reference[:, :n] - decoded[:, :n]) ** 2))


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, np.ndarray, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("stem")
    master, stems = _song()
    source = folder / "source.flac"
    sf.write(source, master.T, SR)
    from mutagen.flac import FLAC, Picture

    tagged = FLAC(source)
    tagged["title"], tagged["artist"], tagged["album"] = "Night Drive", "The Testers", "Fixtures"
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", b"\x89PNG\r\n\x1a\n" + b"cover" * 20
    tagged.add_picture(picture)
    tagged.save()
    path = write_stem_mp4(folder / "Night Drive.stem.mp4", master, stems, SR, tags_from=source)
    return path, master, stems


def _ffprobe(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], check=True,
                         capture_output=True).stdout
    return json.loads(out)["streams"]


def test_ffprobe_sees_five_stereo_aac_tracks_only_the_master_enabled(written):
    every = _ffprobe(written[0])
    streams = [s for s in every if s["codec_type"] == "audio"]
    assert [(s["codec_name"], s["channels"]) for s in streams] == [("aac", 2)] * 5
    assert [s["disposition"]["attached_pic"] for s in every if s not in streams] == [1]  # the cover tag
    assert [s["disposition"]["default"] for s in streams] == [1, 0, 0, 0, 0]  # tkhd "enabled" read by ffmpeg
    assert all(int(s["duration_ts"]) == N for s in streams)  # the edit list holds the exact length


def test_the_stem_box_parses_as_the_manifest_with_mutagen(written):
    from mutagen.mp4 import Atoms

    with open(written[0], "rb") as f:
        atoms = Atoms(f)
        box = atoms.path(b"moov", b"udta", b"stem")[-1]
        ok, data = box.read(f)
    assert ok
    manifest = json.loads(data)
    assert manifest["version"] == 1
    assert [s["name"] for s in manifest["stems"]] == list(STEM_ORDER)
    assert all(s["color"].startswith("#") and len(s["color"]) == 7 for s in manifest["stems"])
    assert set(manifest["mastering_dsp"]) == {"compressor", "limiter"}
    assert read_manifest(written[0]) == manifest


def test_stempeg_reads_the_stems_sample_aligned(written):
    stempeg = pytest.importorskip("stempeg")
    path, master, stems = written
    decoded, rate = stempeg.read_stems(str(path))  # (n_tracks, n_samples, n_channels)
    assert rate == SR and decoded.shape[0] == 5 and decoded.shape[2] == 2
    assert N <= decoded.shape[1] < N + 2048  # whole AAC frames: the end padding is left to the reader
    for k, reference in enumerate([master, *(stems[name] for name in STEM_ORDER)]):
        track = decoded[k].T[:, :N]
        assert _lag(reference, track) == 0
        assert _snr(reference, track) > 20.0


def test_a_plain_player_plays_the_master(written):
    path, master, stems = written
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-"], check=True,
                         capture_output=True).stdout  # no -map: ffmpeg picks the default stream
    played = np.frombuffer(raw, np.float32).reshape(-1, 2).T
    assert _snr(master, played) > 20.0
    assert all(_snr(master, played) > _snr(stem, played) + 10 for stem in stems.values())


def test_tags_and_cover_are_carried_from_the_source(written):
    from mutagen.mp4 import MP4

    tags = MP4(written[0]).tags
    assert tags["\xa9nam"] == ["Night Drive"] and tags["\xa9ART"] == ["The Testers"] and tags["\xa9alb"] == ["Fixtures"]
    assert bytes(tags["covr"][0]).startswith(b"\x89PNG") and bytes(tags["covr"][0]).endswith(b"cover")


def test_read_back_gives_every_track_exactly_as_long_and_aligned(written):
    path, master, stems = written
    read = read_stem_mp4(path)
    assert read.samplerate == SR and list(read.stems) == list(STEM_ORDER) and not read.notes
    assert read.master.shape == (2, N)
    assert _lag(master, read.master) == 0 and _snr(master, read.master) > 20.0
    for name in STEM_ORDER:
        assert read.stems[name].shape == (2, N) and _lag(stems[name], read.stems[name]) == 0
        assert _snr(stems[name], read.stems[name]) > 20.0


def test_a_failed_encode_keeps_the_old_file_and_leaves_nothing(tmp_path, monkeypatch):
    master, stems = _song()
    target = tmp_path / "song.stem.mp4"
    target.write_bytes(b"old")

    def broken(self, temp):
        raise AudioSaveError(self.path, "ffmpeg could not encode it (simulated)")

    monkeypatch.setattr(stem_mp4.StemMp4Writer, "_encode", broken)
    with pytest.raises(AudioSaveError, match="simulated"):
        write_stem_mp4(target, master, stems, SR)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["song.stem.mp4"]


def test_writing_refuses_a_rate_aac_cannot_hold_or_missing_stems(tmp_path):
    master, stems = _song()
    with pytest.raises(AudioSaveError, match="192000 Hz"):
        write_stem_mp4(tmp_path / "a.stem.mp4", master, stems, 192000)
    with pytest.raises(AudioSaveError, match="vocals missing"):
        write_stem_mp4(tmp_path / "b.stem.mp4", master, {k: v for k, v in stems.items() if k != "vocals"}, SR)
    assert list(tmp_path.iterdir()) == []


def test_reading_a_file_that_is_not_a_stem_file_names_it(tmp_path):
    plain = tmp_path / "plain.stem.mp4"
    t = np.arange(SR) / SR
    sf.write(tmp_path / "x.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1) * 0.2, SR)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "x.wav"), "-c:a", "aac", str(plain)], check=True)
    with pytest.raises(AudioLoadError) as err:
        read_stem_mp4(plain)
    assert str(plain) in str(err.value) and "5 audio tracks" in str(err.value) and "\n" not in str(err.value)
    garbage = tmp_path / "garbage.stem.mp4"
    garbage.write_bytes(b"not an mp4 at all" * 100)
    with pytest.raises(AudioLoadError, match="garbage.stem.mp4"):
        read_stem_mp4(garbage)
