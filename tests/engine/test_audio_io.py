"""load_audio / audio_info: every format, channel and samplerate conversion, and every kind of bad file.

Each test writes its own input into ``tmp_path``: real files cut short, junk bytes, patched headers.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.audio import SUPPORTED_EXTENSIONS, Audio, audio_info, load_audio
from engine.audio import _ffmpeg as ffmpeg_module
from engine.audio._channels import convert_channels
from engine.errors import AudioLoadError

RATE = 44100
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command is not installed")


def tone(freq: float, seconds: float = 1.0, rate: int = RATE, n_channels: int = 2) -> np.ndarray:
    """A sine at ``freq`` Hz, amplitude 0.5, ``(n_channels, n_samples)`` float32; channel k is shifted in phase."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * t + k) for k in range(n_channels)]).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = RATE, **kwargs) -> Path:
    sf.write(path, samples.T, rate, **kwargs)
    return path


def make_m4a(tmp_path: Path, name: str = "song.m4a") -> tuple[Path, np.ndarray]:
    source = write(tmp_path / "source.wav", tone(440.0), subtype="FLOAT")
    target = tmp_path / name
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", f"file:{source}", "-c:a", "aac", "-b:a", "192k",
         f"file:{target}"],
        check=True,
    )  # fmt: skip
    return target, tone(440.0)


# ---------------------------------------------------------------------------------------------- good files


@pytest.mark.parametrize(
    ("suffix", "kwargs", "tolerance"),
    [
        (".wav", {"subtype": "PCM_16"}, 2.0**-14),
        (".wav", {"subtype": "PCM_24"}, 2.0**-22),
        (".wav", {"subtype": "FLOAT"}, 0.0),
        (".flac", {"subtype": "PCM_24"}, 2.0**-22),
        (".aiff", {"subtype": "PCM_16"}, 2.0**-14),
    ],
)
def test_lossless_formats_load_exactly(tmp_path: Path, suffix: str, kwargs: dict, tolerance: float) -> None:
    original = tone(330.0)
    audio = load_audio(write(tmp_path / f"x{suffix}", original, **kwargs))
    assert isinstance(audio, Audio)
    assert audio.samples.dtype == np.float32 and audio.samples.flags.c_contiguous
    assert audio.samples.shape == original.shape and audio.samplerate == RATE
    assert np.max(np.abs(audio.samples - original)) <= tolerance
    assert audio.notes == [] and audio.path == tmp_path / f"x{suffix}"


@pytest.mark.parametrize(("suffix", "kwargs"), [(".ogg", {}), (".mp3", {"format": "MP3"})])
def test_lossy_formats_load_close_to_original(tmp_path: Path, suffix: str, kwargs: dict) -> None:
    original = tone(440.0)
    audio = load_audio(write(tmp_path / f"x{suffix}", original, **kwargs))
    assert audio.samples.shape[0] == 2 and abs(audio.samples.shape[1] - RATE) < 2048
    n = min(audio.samples.shape[1], RATE)
    spectrum = np.abs(np.fft.rfft(audio.samples[0, :n]))
    assert abs(np.argmax(spectrum) * RATE / n - 440.0) < 2.0


def test_mono_becomes_two_identical_channels(tmp_path: Path) -> None:
    audio = load_audio(write(tmp_path / "mono.wav", tone(220.0, n_channels=1), subtype="FLOAT"))
    assert audio.samples.shape == (2, RATE)
    np.testing.assert_array_equal(audio.samples[0], audio.samples[1])
    assert any("mono" in note for note in audio.notes)


def test_n_channels_none_keeps_and_one_averages(tmp_path: Path) -> None:
    original = tone(220.0, n_channels=2)
    path = write(tmp_path / "st.wav", original, subtype="FLOAT")
    assert load_audio(path, n_channels=None).samples.shape == (2, RATE)
    mono = load_audio(path, n_channels=1)
    assert mono.samples.shape == (1, RATE)
    np.testing.assert_allclose(mono.samples[0], original.mean(axis=0), atol=1e-7)
    mono_file = write(tmp_path / "m.wav", original[:1], subtype="FLOAT")
    assert load_audio(mono_file, n_channels=None).samples.shape == (1, RATE)
    with pytest.raises(ValueError):
        load_audio(path, n_channels=3)


def test_six_channels_are_downmixed_itu_style(tmp_path: Path) -> None:
    n = 1000
    # one constant per channel: L R C LFE Ls Rs
    levels = np.array([0.1, 0.2, 0.3, 0.9, 0.05, 0.07], dtype=np.float32)
    samples = np.repeat(levels[:, None], n, axis=1)
    audio = load_audio(write(tmp_path / "surround.wav", samples, subtype="FLOAT"))
    c = np.sqrt(0.5)
    norm = 1 + 2 * c
    expected_left = (0.1 + c * 0.3 + c * 0.05) / norm  # LFE (0.9) is dropped
    expected_right = (0.2 + c * 0.3 + c * 0.07) / norm
    assert audio.samples.shape == (2, n)
    np.testing.assert_allclose(audio.samples[0], expected_left, rtol=1e-5)
    np.testing.assert_allclose(audio.samples[1], expected_right, rtol=1e-5)
    assert any("downmixed 6 channels" in note for note in audio.notes)
    assert audio_info(tmp_path / "surround.wav").n_channels == 6


@settings(max_examples=30, deadline=None)
@given(
    n_in=st.integers(min_value=3, max_value=12),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_downmix_is_never_louder_than_the_loudest_input(n_in: int, seed: int) -> None:
    samples = np.random.default_rng(seed).uniform(-1, 1, size=(n_in, 257)).astype(np.float32)
    stereo, note = convert_channels(samples, 2)
    assert stereo.shape == (2, 257) and note is not None
    assert np.max(np.abs(stereo)) <= np.max(np.abs(samples)) + 1e-6


def test_resample_48k_to_44k1_keeps_duration_and_pitch(tmp_path: Path) -> None:
    path = write(tmp_path / "48k.wav", tone(1000.0, seconds=2.0, rate=48000), 48000, subtype="FLOAT")
    audio = load_audio(path, samplerate=44100)
    assert audio.samplerate == 44100
    assert audio.samples.shape == (2, 88200)
    spectrum = np.abs(np.fft.rfft(audio.samples[0]))
    assert abs(np.argmax(spectrum) * 44100 / 88200 - 1000.0) <= 0.5
    assert "resampled 48000 Hz -> 44100 Hz" in audio.notes
    assert load_audio(path).samplerate == 48000  # None keeps the file's rate
    with pytest.raises(ValueError):
        load_audio(path, samplerate=0)


def test_nan_and_inf_are_replaced_with_zero_and_noted(tmp_path: Path) -> None:
    samples = tone(100.0)
    samples[0, 10] = np.nan
    samples[1, 20:25] = np.inf
    samples[1, 30] = -np.inf
    audio = load_audio(write(tmp_path / "nan.wav", samples, subtype="FLOAT"))
    assert np.isfinite(audio.samples).all()
    assert audio.samples[0, 10] == 0 and (audio.samples[1, 20:25] == 0).all()
    assert "replaced 7 NaN/Inf samples with 0" in audio.notes


def test_all_nan_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "allnan.wav", np.full((2, 100), np.nan, dtype=np.float32), subtype="FLOAT")
    with pytest.raises(AudioLoadError, match="NaN or infinite"):
        load_audio(path)


def test_audio_info_reads_the_header_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "x.flac", tone(220.0, seconds=1.5, rate=48000), 48000, subtype="PCM_24")

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio_info decoded samples")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    info = audio_info(path)
    assert (info.samplerate, info.n_channels, info.n_samples) == (48000, 2, 72000)
    assert info.duration_seconds == pytest.approx(1.5)
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")


def test_supported_extensions_cover_the_promised_formats() -> None:
    for ext in (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".m4a", ".aac", ".mp4", ".opus", ".wma"):
        assert ext in SUPPORTED_EXTENSIONS


# ---------------------------------------------------------------------------------------------- ffmpeg


@needs_ffmpeg
def test_m4a_is_decoded_with_ffmpeg(tmp_path: Path) -> None:
    path, original = make_m4a(tmp_path)
    audio = load_audio(path)
    assert audio.samplerate == RATE and audio.samples.shape[0] == 2
    assert RATE <= audio.samples.shape[1] <= RATE + 2048  # AAC pads the last frame
    assert any("ffmpeg" in note for note in audio.notes)
    # time-aligned with the source (the encoder's priming samples are trimmed) and close to it
    error = audio.samples[:, 2048:40000] - original[:, 2048:40000]
    assert np.sqrt(np.mean(error**2)) < 0.05
    info = audio_info(path)
    assert (info.samplerate, info.n_channels, info.format, info.subtype) == (RATE, 2, "M4A", "AAC")
    assert info.duration_seconds == pytest.approx(1.0, abs=0.05)


@needs_ffmpeg
def test_ffmpeg_handles_names_that_look_like_options(tmp_path: Path) -> None:
    path, _ = make_m4a(tmp_path, name="-i weird:name.m4a")
    assert load_audio(path).samples.shape[0] == 2


@needs_ffmpeg
def test_video_without_audio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "silent_film.mp4"
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=size=32x32:duration=0.2", "-c:v", "mpeg4",
         f"file:{path}"],
        check=True,
    )  # fmt: skip
    with pytest.raises(AudioLoadError, match="no audio stream"):
        load_audio(path)
    with pytest.raises(AudioLoadError, match="no audio stream"):
        audio_info(path)


def test_missing_ffmpeg_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "song.m4a"
    # the start of a real MP4/M4A header: libsndfile cannot read it, ffmpeg could
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2" + bytes(2000))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(AudioLoadError) as caught:
        load_audio(path)
    message = str(caught.value)
    assert str(path) in message
    assert "needs ffmpeg to decode .m4a" in message and "apt-get install ffmpeg" in message
    with pytest.raises(AudioLoadError, match="needs ffmpeg"):
        audio_info(path)


def test_missing_ffmpeg_still_recognises_a_text_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    path = tmp_path / "lyrics.m4a"
    path.write_text("la la la\n" * 50)
    with pytest.raises(AudioLoadError, match="text file"):
        load_audio(path)
    odd = tmp_path / "thing.xyz"
    odd.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(AudioLoadError, match="not a supported audio file"):
        load_audio(odd)


# ---------------------------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioLoadError, match="file not found") as caught:
        load_audio(path)
    assert caught.value.path == path
    with pytest.raises(AudioLoadError, match="file not found"):
        audio_info(path)


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "album.wav"
    folder.mkdir()
    with pytest.raises(AudioLoadError, match="is a folder"):
        load_audio(folder)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.flac"
    path.touch()
    with pytest.raises(AudioLoadError, match="empty"):
        load_audio(path)
    with pytest.raises(AudioLoadError, match="empty"):
        audio_info(path)


def test_zero_frame_file(tmp_path: Path) -> None:
    path = write(tmp_path / "zero.wav", np.zeros((2, 0), dtype=np.float32))
    with pytest.raises(AudioLoadError, match="no audio"):
        load_audio(path)
    with pytest.raises(AudioLoadError, match="no audio"):
        audio_info(path)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_truncated_wav(tmp_path: Path, subtype: str) -> None:
    whole = write(tmp_path / "whole.wav", tone(220.0), subtype=subtype)
    cut = tmp_path / "cut.wav"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioLoadError, match="truncated"):
        load_audio(cut)
    with pytest.raises(AudioLoadError, match="truncated"):
        audio_info(cut)


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFFFFF, 0])
def test_unfinalised_wav_header_is_not_called_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placeholder: int
) -> None:
    """A recorder that crashed leaves a placeholder data size in the header: the audio after it is recovered."""
    path = write(tmp_path / "rec.wav", tone(220.0), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data_chunk = data.index(b"data")
    data[data_chunk + 4 : data_chunk + 8] = struct.pack("<I", placeholder)
    path.write_bytes(bytes(data))
    if placeholder == 0:  # libsndfile reads 0 frames; only ffmpeg recovers it
        if FFMPEG is not None:
            assert load_audio(path).samples.shape == (2, RATE)
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
        with pytest.raises(AudioLoadError, match="no audio"):
            load_audio(path)
    else:
        assert load_audio(path).samples.shape == (2, RATE)


def test_truncated_flac(tmp_path: Path) -> None:
    whole = write(
        tmp_path / "whole.flac",
        tone(220.0) + 0.01 * np.random.default_rng(0).standard_normal((2, RATE)).astype(np.float32),
    )
    cut = tmp_path / "cut.flac"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioLoadError, match="damaged or truncated"):
        load_audio(cut)


def test_truncated_aiff(tmp_path: Path) -> None:
    whole = write(tmp_path / "whole.aiff", tone(220.0))
    cut = tmp_path / "cut.aiff"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioLoadError, match="truncated"):
        load_audio(cut)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.wav", b"This is a text file renamed to .wav\n" * 40, "text file"),
        ("cover.flac", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG image"),
        ("noise.flac", np.random.default_rng(1).bytes(5000), "damaged or not a valid FLAC"),
        (
            "noise.wav",
            b"RIFF\x00\x10\x00\x00WAVEjunk" + np.random.default_rng(2).bytes(3000),
            "damaged or not a valid WAV",
        ),
    ],
)
def test_not_audio(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for reader in (load_audio, audio_info):
        with pytest.raises(AudioLoadError, match=expected) as caught:
            reader(path)
        assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize("rate", [1, 10_000_000])
def test_absurd_samplerate(tmp_path: Path, rate: int) -> None:
    path = write(tmp_path / "rate.wav", tone(220.0), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", rate)  # the fmt chunk's samplerate field
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).samplerate == rate  # libsndfile itself accepts it
    with pytest.raises(AudioLoadError, match=f"impossible samplerate of {rate} Hz"):
        load_audio(path)
    with pytest.raises(AudioLoadError, match="impossible samplerate"):
        audio_info(path)


def test_unsupported_codec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "codec.wav", tone(220.0), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[20:22] = struct.pack("<H", 0x1234)  # a format tag nobody implements
    path.write_bytes(bytes(data))
    if FFMPEG is not None:
        with pytest.raises(AudioLoadError, match="codec"):
            load_audio(path)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(AudioLoadError, match="damaged or not a valid WAV"):
        load_audio(path)


def test_errors_never_leak_raw_library_exceptions(tmp_path: Path) -> None:
    """Every bad input above surfaces as AudioLoadError, never RuntimeError/LibsndfileError."""
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"OggS" + np.random.default_rng(3).bytes(4000))
    with pytest.raises(AudioLoadError) as caught:
        load_audio(bad)
    assert type(caught.value) is AudioLoadError
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


def test_ffmpeg_failure_reasons_are_readable() -> None:
    explain = ffmpeg_module._explain
    assert explain("Stream map '0:a:0' matches no streams.") == "contains no audio stream"
    assert "codec" in explain("Decoder (codec none) not found for input stream #0:0")
    assert "damaged or not an audio file" in explain("x.m4a: Invalid data found when processing input")


def test_frozen_app_runs_ffmpeg_without_its_bundled_library_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyInstaller points LD_LIBRARY_PATH at the bundle; the system's ffmpeg must not load those libraries."""
    assert ffmpeg_module.subprocess_env() is None  # from source: inherit everything
    monkeypatch.setattr("sys.frozen", True, raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/shotoku/_internal")
    monkeypatch.delenv("LD_LIBRARY_PATH_ORIG", raising=False)
    env = ffmpeg_module.subprocess_env()
    assert env is not None and "LD_LIBRARY_PATH" not in env and env["PATH"] == os.environ["PATH"]
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/home/me/lib")
    env = ffmpeg_module.subprocess_env()
    assert env is not None and env["LD_LIBRARY_PATH"] == "/home/me/lib" and "LD_LIBRARY_PATH_ORIG" not in env
    seen: list[dict | None] = []

    def fake_run(command, **kwargs):
        seen.append(kwargs.get("env"))
        return subprocess.CompletedProcess(command, 1, b"", b"x: Invalid data found when processing input")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(ffmpeg_module.FFmpegError):
        ffmpeg_module.decode_to_wav(Path("x.m4a"), Path("y.wav"), "ffmpeg")
    assert seen and seen[0] is not None and seen[0]["LD_LIBRARY_PATH"] == "/home/me/lib"
