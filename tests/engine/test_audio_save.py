"""save_audio: every format round-trips, bad requests are refused, and a failed write changes nothing on disk."""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import load_audio, save_audio
from engine.audio import save as save_module
from engine.errors import AudioSaveError

RATE = 44100


def tone(
    freq: float = 440.0, seconds: float = 1.0, n_channels: int = 2, amplitude: float = 0.5
) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([amplitude * np.sin(2 * np.pi * freq * t + k) for k in range(n_channels)]).astype(
        np.float32
    )


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize(
    ("name", "bit_depth", "subtype", "tolerance"),
    [
        ("x.wav", None, "PCM_24", 2.0**-22),
        ("x.wav", 16, "PCM_16", 2.0**-14),
        ("x.wav", "float", "FLOAT", 0.0),
        ("x.flac", None, "PCM_24", 2.0**-22),
        ("x.flac", 16, "PCM_16", 2.0**-14),
        ("x.aiff", 24, "PCM_24", 2.0**-22),
        ("x.aif", "float", "FLOAT", 0.0),
    ],
)
def test_lossless_round_trip(tmp_path: Path, name: str, bit_depth, subtype: str, tolerance: float) -> None:
    original = tone()
    written = save_audio(tmp_path / name, original, RATE, bit_depth=bit_depth)
    assert written == tmp_path / name
    assert sf.info(str(written)).subtype == subtype
    loaded = load_audio(written, n_channels=None)
    assert loaded.samples.shape == original.shape
    assert np.max(np.abs(loaded.samples - original)) <= tolerance
    assert leftovers(tmp_path, {name}) == []


@pytest.mark.parametrize(("name", "sf_format"), [("x.ogg", "OGG"), ("x.mp3", "MP3")])
def test_lossy_round_trip(tmp_path: Path, name: str, sf_format: str) -> None:
    original = tone(1000.0)
    written = save_audio(tmp_path / name, original, RATE, bit_depth=24)  # bit depth is ignored for lossy
    assert sf.info(str(written)).format == sf_format
    loaded = load_audio(written)
    assert abs(loaded.samples.shape[1] - RATE) < 2048
    n = min(loaded.samples.shape[1], RATE)
    spectrum = np.abs(np.fft.rfft(loaded.samples[0, :n]))
    assert abs(np.argmax(spectrum) * RATE / n - 1000.0) < 2.0
    assert 0.3 < np.max(np.abs(loaded.samples)) < 0.7


def test_explicit_format_overrides_the_extension(tmp_path: Path) -> None:
    written = save_audio(tmp_path / "stem.bin", tone(), RATE, format="flac", bit_depth=16)
    assert sf.info(str(written)).format == "FLAC"


def test_mono_1d_array_is_saved_as_one_channel(tmp_path: Path) -> None:
    written = save_audio(tmp_path / "m.wav", tone(n_channels=1)[0], RATE)
    assert sf.info(str(written)).channels == 1


def test_clipping_is_logged_for_integer_formats(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loud = tone(amplitude=1.5)
    with caplog.at_level(logging.WARNING, logger="engine.audio.save"):
        save_audio(tmp_path / "loud.wav", loud, RATE)
    assert any("clipped" in r.getMessage() for r in caplog.records)
    assert np.max(np.abs(load_audio(tmp_path / "loud.wav").samples)) <= 1.0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.audio.save"):
        save_audio(tmp_path / "loud_float.wav", loud, RATE, bit_depth="float")
    assert not any("clipped" in r.getMessage() for r in caplog.records)
    assert np.max(np.abs(load_audio(tmp_path / "loud_float.wav").samples)) == pytest.approx(1.5, abs=1e-4)


def test_non_finite_samples_are_written_as_silence(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    samples = tone()
    samples[0, :5] = np.nan
    samples[1, 7] = np.inf
    with caplog.at_level(logging.WARNING, logger="engine.audio.save"):
        save_audio(tmp_path / "n.wav", samples, RATE, bit_depth="float")
    loaded = load_audio(tmp_path / "n.wav").samples
    assert (loaded[0, :5] == 0).all() and loaded[1, 7] == 0 and np.isfinite(loaded).all()
    assert any("6 NaN/Inf" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("name", "kwargs", "samples", "rate", "expected"),
    [
        ("x.xyz", {}, tone(), RATE, "unknown file type"),
        ("x", {}, tone(), RATE, "no extension"),
        ("x.wav", {"format": "wma"}, tone(), RATE, "unknown format"),
        ("x.wav", {"bit_depth": 12}, tone(), RATE, "bit depth 12"),
        ("x.flac", {"bit_depth": "float"}, tone(), RATE, "bit depth 'float'"),
        ("x.mp3", {}, tone(), 96000, "MP3 cannot store 96000 Hz"),
        ("x.mp3", {}, tone(n_channels=3), RATE, "cannot store 3 channels"),
        ("x.flac", {}, tone(n_channels=9), RATE, "cannot store 9 channels"),
        ("x.wav", {}, tone().T, RATE, r"look like \(n_samples, n_channels\)"),
        ("x.wav", {}, np.zeros((2, 0), np.float32), RATE, "empty"),
        ("x.wav", {}, (tone() * 32767).astype(np.int16), RATE, "floating point"),
        ("x.wav", {}, np.zeros((2, 2, 2), np.float32), RATE, "shaped"),
        ("x.wav", {}, tone(), 0, "impossible samplerate"),
    ],
)
def test_bad_requests_are_refused_before_touching_disk(
    tmp_path: Path, name: str, kwargs: dict, samples: np.ndarray, rate: int, expected: str
) -> None:
    with pytest.raises(AudioSaveError, match=expected) as caught:
        save_audio(tmp_path / name, samples, rate, **kwargs)
    assert caught.value.path == tmp_path / name
    assert leftovers(tmp_path, set()) == []


def test_target_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out.wav").mkdir()
    with pytest.raises(AudioSaveError, match="is a folder"):
        save_audio(tmp_path / "out.wav", tone(), RATE)


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    written = save_audio(tmp_path / "a" / "b" / "vocals.flac", tone(), RATE)
    assert written.is_file()


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(AudioSaveError, match="not a folder"):
        save_audio(tmp_path / "file" / "x.wav", tone(), RATE)


def test_new_file_gets_normal_permissions_and_existing_mode_is_kept(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        fresh = save_audio(tmp_path / "fresh.wav", tone(), RATE)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0o600
    private = tmp_path / "private.wav"
    save_audio(private, tone(), RATE)
    private.chmod(0o600)
    save_audio(private, tone(220.0), RATE)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


# ---------------------------------------------------------------------------------------------- atomicity


@pytest.fixture
def existing(tmp_path: Path) -> tuple[Path, bytes]:
    target = save_audio(tmp_path / "mix.flac", tone(220.0), RATE)
    return target, target.read_bytes()


def test_failure_midway_keeps_the_old_file(
    tmp_path: Path, existing: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, before = existing
    calls = {"n": 0}
    real_write = sf.SoundFile.write

    def write_then_fill_disk(self, data):
        calls["n"] += 1
        if calls["n"] == 2:  # one block is already in the temporary file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write_then_fill_disk)
    with pytest.raises(AudioSaveError, match="no space left on device") as caught:
        save_audio(target, tone(440.0, seconds=4.0), RATE)
    assert calls["n"] == 2
    assert str(target) in str(caught.value)
    assert target.read_bytes() == before
    assert leftovers(tmp_path, {target.name}) == []


def test_interrupt_midway_removes_the_temporary_file(
    tmp_path: Path, existing: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, before = existing

    def interrupted(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(sf.SoundFile, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_audio(target, tone(), RATE)
    assert target.read_bytes() == before
    assert leftovers(tmp_path, {target.name}) == []


def test_permission_denied(
    tmp_path: Path, existing: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, before = existing
    if os.geteuid() != 0:  # a real read-only folder (root ignores the mode bits, so fake it there)
        tmp_path.chmod(0o500)
    else:

        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        with pytest.raises(AudioSaveError, match="permission denied"):
            save_audio(target, tone(), RATE)
    finally:
        tmp_path.chmod(0o700)
    assert target.read_bytes() == before
    assert leftovers(tmp_path, {target.name}) == []


def test_libsndfile_refusal_is_translated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, data):
        raise sf.LibsndfileError(2, "")  # what libsndfile reports for a system error

    monkeypatch.setattr(sf.SoundFile, "write", broken)
    monkeypatch.setattr(save_module.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    with pytest.raises(AudioSaveError, match="no space left on device"):
        save_audio(tmp_path / "x.wav", tone(), RATE)
    assert leftovers(tmp_path, set()) == []


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 256 KiB tmpfs: a real "disk full". Needs root and a kernel that lets us mount."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill a real disk needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.parametrize("name", ["full.wav", "full.flac", "full.mp3"])
def test_real_disk_full(tiny_disk: Path, name: str) -> None:
    target = save_audio(tiny_disk / name, tone(seconds=0.2), RATE)  # small enough to fit
    before = target.read_bytes()
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    (tiny_disk / "filler").write_bytes(bytes(max(free - 16384, 0)))  # leave 16 KiB
    with pytest.raises(AudioSaveError, match="no space left on device"):
        save_audio(target, tone(seconds=10.0), RATE)  # even 10 s of MP3 (~160 KB) does not fit
    assert target.read_bytes() == before
    assert leftovers(tiny_disk, {name, "filler"}) == []
