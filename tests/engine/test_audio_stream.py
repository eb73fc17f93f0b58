"""open_audio_stream: the same audio as load_audio, in a temporary memory map that is removed, with memory flat
in the song's length; its temporary files are removed even after the process that made them was killed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import DecodedAudio, _spool, load_audio, open_audio_stream
from engine.audio import _ffmpeg as ffmpeg_module
from engine.errors import AudioLoadError

RATE = 44100
FFMPEG = shutil.which("ffmpeg")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test decodes into its own folder (``$SHOTOKU_TMPDIR``)."""
    base = tmp_path / "spool-base"
    base.mkdir()
    monkeypatch.setenv(_spool.TMPDIR_ENV, str(base))
    return _spool.spool_folder()


def noise(seconds: float, rate: int = RATE, n_channels: int = 2, seed: int = 0) -> np.ndarray:
    """``(n_channels, n_samples)`` float32 noise at -20 dBFS."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((n_channels, int(seconds * rate)))).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = RATE, **kwargs) -> Path:
    sf.write(path, samples.T, rate, **kwargs)
    return path


@pytest.mark.parametrize(
    ("rate", "n_in", "n_out", "target"),
    [(48000, 2, 2, 44100), (44100, 1, 2, None), (22050, 6, 2, 44100), (44100, 2, 1, None), (96000, 3, None, 48000)],
)
def test_stream_gives_load_audio_samples_in_a_read_only_memmap(
    tmp_path: Path, spool: Path, rate: int, n_in: int, n_out: int | None, target: int | None
) -> None:
    path = write(tmp_path / "in.wav", noise(3.3, rate, n_in), rate, subtype="FLOAT")
    expected = load_audio(path, target, n_out)
    with open_audio_stream(path, target, n_out) as audio:
        assert isinstance(audio, DecodedAudio) and isinstance(audio.samples, np.memmap)
        assert audio.samples.dtype == np.float32 and audio.samples.flags.c_contiguous
        assert not audio.samples.flags.writeable
        assert audio.samplerate == expected.samplerate and audio.notes == expected.notes
        np.testing.assert_array_equal(audio.samples, expected.samples)
        assert audio.duration_seconds == pytest.approx(expected.duration_seconds)
        assert audio.path == path and audio.filename.parent == spool and audio.filename.exists()
        filename = audio.filename
    assert audio.closed and not filename.exists()
    assert list(spool.iterdir()) == []


def test_resampling_in_blocks_equals_the_one_shot_resampler(tmp_path: Path) -> None:
    import soxr

    original = noise(5.0, 48000)
    path = write(tmp_path / "48k.wav", original, 48000, subtype="FLOAT")
    with open_audio_stream(path, 44100, 2) as audio:
        whole = np.stack([soxr.resample(row, 48000, 44100, quality="HQ") for row in original])
        assert audio.samples.shape == whole.shape
        np.testing.assert_allclose(audio.samples, whole, atol=1e-6)


def test_close_is_idempotent_and_garbage_collection_removes_the_file(tmp_path: Path, spool: Path) -> None:
    path = write(tmp_path / "x.flac", noise(0.5))
    audio = open_audio_stream(path, None, 2)
    filename = audio.filename
    audio.close()
    audio.close()
    assert not filename.exists()
    audio = open_audio_stream(path, None, 2)
    filename = audio.filename
    del audio
    assert not filename.exists()


@pytest.mark.parametrize(("capacity", "n_blocks", "block"), [(10, 5, 7), (100, 3, 9), (35, 5, 7)])
def test_spool_writer_grows_and_compacts_to_one_c_order_array(
    tmp_path: Path, capacity: int, n_blocks: int, block: int
) -> None:
    writer = _spool.SpoolWriter(tmp_path / "w.f32", 3, capacity)
    data = np.arange(3 * n_blocks * block, dtype=np.float32).reshape(3, -1) + 1
    data[:, block : 2 * block] = 0  # a silent block is skipped (sparse) and must still read as zeros
    for k in range(n_blocks):
        writer.write(data[:, k * block : (k + 1) * block])
    assert writer.finish() == n_blocks * block
    stored = np.fromfile(tmp_path / "w.f32", dtype=np.float32).reshape(3, -1)
    np.testing.assert_array_equal(stored, data)


def test_stale_files_of_dead_processes_are_removed(spool: Path) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)
    mine = _spool.new_spool_path(spool)
    started = mine.name.split("-")[2]
    files = {
        "dead": spool / f"input-{dead_pid}-{started}-0a.f32",
        "reused_pid": spool / f"input-{os.getpid()}-12345-0b.f32",  # this PID, another start time
        "mine": mine,
        "other": spool / "notes.txt",
    }
    for path in files.values():
        path.write_bytes(b"x")
    removed = _spool.remove_stale(spool)
    assert sorted(removed) == sorted([files["dead"], files["reused_pid"]])
    assert files["mine"].exists() and files["other"].exists()


def test_a_killed_process_leaves_a_file_that_the_next_open_removes(tmp_path: Path, spool: Path) -> None:
    path = write(tmp_path / "song.wav", noise(1.0), subtype="FLOAT")
    script = textwrap.dedent(f"""
        import os, signal
        from engine.audio import open_audio_stream
        audio = open_audio_stream({str(path)!r}, 44100, 2)
        print(audio.filename, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, _spool.TMPDIR_ENV: os.environ[_spool.TMPDIR_ENV]}
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                           timeout=120)  # fmt: skip
    assert child.returncode == -9, child.stderr
    left = Path(child.stdout.strip())
    assert left.exists() and left.parent == spool  # SIGKILL runs no cleanup
    with open_audio_stream(path, 44100, 2) as audio:
        assert not left.exists()
        assert list(spool.iterdir()) == [audio.filename]


def test_a_full_temporary_disk_is_a_clear_refusal(tmp_path: Path, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "song.wav", noise(1.0), subtype="FLOAT")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(AudioLoadError, match="not enough free disk space") as caught:
        open_audio_stream(path, 44100, 2)
    assert str(caught.value).startswith(str(path)) and _spool.TMPDIR_ENV in str(caught.value)
    assert list(spool.iterdir()) == []


def test_a_silent_input_needs_no_disk_room(tmp_path: Path, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Silence is not written (the spool is sparse), so the free space is not asked for it up front."""
    path = write(tmp_path / "quiet.wav", np.zeros((2, 44100 * 20), np.float32), subtype="FLOAT")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with open_audio_stream(path, 44100, 2) as audio:
        assert audio.n_samples == 44100 * 20
        assert not np.asarray(audio.samples[:, ::4410]).any()
        assert os.stat(audio.filename).st_blocks * 512 < 1 << 20  # 7 MB of zeros, nothing on the disk


def test_the_disk_is_looked_at_as_the_file_fills(tmp_path: Path, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Room at the start but not for the rest: the same clear refusal, part way, and nothing left behind."""
    data = np.zeros((2, 44100 * 12), np.float32)
    data[:, -44100 * 2 :] = noise(2.0)  # sound only at the end
    path = write(tmp_path / "late.wav", data, subtype="FLOAT")
    monkeypatch.setattr(_spool, "_CHECK_BYTES", 1 << 16)
    seen = []

    def usage(p):
        seen.append(1)
        free = 10**9 if len(seen) == 1 else 1000  # the disk fills after the first look
        return shutil._ntuple_diskusage(10**9, 10**9 - free, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    with pytest.raises(AudioLoadError, match="not enough free disk space") as caught:
        open_audio_stream(path, 44100, 2)
    assert len(seen) >= 2 and str(caught.value).startswith(str(path))
    assert list(spool.iterdir()) == []


def test_a_disk_that_fills_while_decoding_leaves_nothing(
    tmp_path: Path, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "song.wav", noise(3.0), subtype="FLOAT")
    real_write = _spool.SpoolWriter.write
    calls = []

    def filling(self, block: np.ndarray) -> None:
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real_write(self, block)

    monkeypatch.setattr(_spool.SpoolWriter, "write", filling)
    with pytest.raises(AudioLoadError, match="filled up") as caught:
        open_audio_stream(path, 44100, 2)
    assert str(spool) in str(caught.value)
    assert list(spool.iterdir()) == []


@pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command is not installed")
def test_ffmpeg_formats_stream_through_a_pipe(tmp_path: Path, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "source.wav", noise(2.0), subtype="FLOAT")
    target = tmp_path / "song.m4a"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", f"file:{source}", "-c:a", "aac", f"file:{target}"],
                   check=True)  # fmt: skip

    def no_temporary_wav(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded through a temporary WAV")

    monkeypatch.setattr(ffmpeg_module, "decode_to_wav", no_temporary_wav)
    expected = load_audio(target, 48000, 2)
    with open_audio_stream(target, 48000, 2) as audio:
        np.testing.assert_array_equal(audio.samples, expected.samples)
        assert any("ffmpeg" in note for note in audio.notes) and audio.samplerate == 48000
        assert abs(audio.n_samples - 2 * 48000) < 4096


@pytest.mark.slow
def test_memory_stays_flat_for_an_hour_long_input(tmp_path: Path) -> None:
    """A sparse 60-minute 48 kHz WAV, resampled to 44.1 kHz and read through as the chunked engine reads it.
    load_audio held 3.2 GB at its peak for this input; the stream must stay within 300 MB of an empty run."""
    path = tmp_path / "hour.wav"
    n_bytes = 48000 * 3600 * 4
    header = (b"RIFF" + (36 + n_bytes).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + np.array([1, 2], "<u2").tobytes() + np.array([48000, 48000 * 4], "<u4").tobytes()
              + np.array([4, 16], "<u2").tobytes() + b"data" + n_bytes.to_bytes(4, "little"))  # fmt: skip
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + n_bytes)
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from engine.audio import open_audio_stream
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.argv[1] == "decode":
            with open_audio_stream({str(path)!r}, 44100, 2) as audio:
                assert audio.n_samples == 44100 * 3600, audio.n_samples
                step = 44100 * 30
                for start in range(0, audio.n_samples, step):
                    np.abs(audio.samples[:, start:start + step]).max()
                    audio.drop_pages(0, start + step)
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    peaks = []
    for mode in ("baseline", "decode"):
        child = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, cwd=ROOT,
                               env=os.environ.copy(), timeout=600)  # fmt: skip
        assert child.returncode == 0, child.stderr
        peaks.append(int(child.stdout.split()[1]) * 1024)
    assert peaks[1] - peaks[0] < 300 * 2**20, f"peak RSS {peaks[1] / 2**20:.0f} MiB vs {peaks[0] / 2**20:.0f} MiB"


def test_spool_writer_keeps_silence_and_sound_exact_through_growth_and_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random blocks, half of them silent, short and long estimates: the file is the exact concatenation."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        monkeypatch.setattr(_spool, "_COPY_SAMPLES", int(rng.integers(1, 9)))
        n_channels = int(rng.integers(1, 4))
        writer = _spool.SpoolWriter(tmp_path / f"w{trial}.f32", n_channels, int(rng.integers(1, 50)))
        parts = []
        for _ in range(int(rng.integers(1, 12))):
            shape = (n_channels, int(rng.integers(0, 20)))
            sound = rng.random() < 0.5
            parts.append(rng.standard_normal(shape).astype(np.float32) if sound else np.zeros(shape, np.float32))
            writer.write(parts[-1])
        n = writer.finish()
        want = np.concatenate(parts, axis=1)
        assert n == want.shape[1]
        if n:
            got = np.fromfile(tmp_path / f"w{trial}.f32", np.float32).reshape(n_channels, n)
            np.testing.assert_array_equal(got, want)
