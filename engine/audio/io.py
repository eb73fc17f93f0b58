"""Load audio files into ``(n_channels, n_samples)`` float32 arrays; read their headers; save them atomically.

WAV, FLAC, OGG (Vorbis/Opus), MP3 and AIFF are read with soundfile (libsndfile). Everything libsndfile refuses
(M4A/AAC, MP4, WMA, ...) is decoded by the ``ffmpeg`` command when it is on PATH. Every failure becomes an
:class:`~engine.errors.AudioLoadError` naming the file and a reason a musician understands; nothing is silently
changed: what loading did to the audio (resampling, downmixing, repairing NaNs) is listed in :attr:`Audio.notes`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from engine.audio import _ffmpeg
from engine.audio._channels import convert_channels
from engine.audio._headers import declared_frames, describe_non_audio
from engine.audio.save import MAX_SAMPLERATE, MIN_SAMPLERATE, save_audio
from engine.errors import AudioLoadError

__all__ = [
    "Audio",
    "AudioInfo",
    "FFMPEG_EXTENSIONS",
    "MAX_SAMPLERATE",
    "MIN_SAMPLERATE",
    "NATIVE_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "audio_info",
    "load_audio",
    "save_audio",
]

log = logging.getLogger(__name__)

#: Extensions libsndfile reads itself (the file's content decides, the extension is only a hint).
NATIVE_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".w64", ".rf64", ".caf",
    ".au",
)  # fmt: skip
#: Extensions that need the ``ffmpeg`` command.
FFMPEG_EXTENSIONS: tuple[str, ...] = (
    ".m4a", ".aac", ".mp4", ".m4b", ".alac", ".wma", ".webm", ".mka", ".mkv", ".mov", ".ac3", ".ape", ".wv",
)  # fmt: skip
#: Every extension :func:`load_audio` accepts (the ffmpeg ones need ffmpeg installed).
SUPPORTED_EXTENSIONS: tuple[str, ...] = NATIVE_EXTENSIONS + FFMPEG_EXTENSIONS

#: Formats whose header frame count is exact, so fewer decoded frames means the file was cut short.
#: (MP3's is an estimate from the bitrate; OGG's comes from the last page present, so a cut file looks shorter.)
_EXACT_LENGTH_FORMATS = frozenset({"WAV", "WAVEX", "AIFF", "FLAC", "W64", "RF64", "CAF", "AU"})
_BLOCK_FRAMES = 1 << 16
_HEAD_BYTES = 4096


@dataclass
class Audio:
    """Decoded audio: ``samples`` is float32 ``(n_channels, n_samples)``, C-contiguous.

    ``notes`` lists, in words, what loading changed ("resampled 48000 Hz -> 44100 Hz", ...); empty when nothing.
    """

    samples: np.ndarray
    samplerate: int
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_seconds(self) -> float:
        return self.n_samples / self.samplerate


@dataclass(frozen=True)
class AudioInfo:
    """A file's header: no samples are decoded to get it.

    ``format``/``subtype`` are libsndfile's names (``"FLAC"``, ``"PCM_24"``), or for ffmpeg-decoded files the
    extension and codec (``"M4A"``, ``"AAC"``). ``n_samples`` of MP3 and ffmpeg files is an estimate.
    """

    samplerate: int
    n_channels: int
    n_samples: int
    duration_seconds: float
    format: str
    subtype: str
    path: Path | None = None


def _check_file(path: Path) -> bytes:
    """Open ``path`` and return its first bytes; raise AudioLoadError for missing, folder, unreadable or empty."""
    if path.is_dir():
        raise AudioLoadError(path, "is a folder, not an audio file")
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except FileNotFoundError as err:
        raise AudioLoadError(path, "file not found") from err
    except PermissionError as err:
        raise AudioLoadError(path, "permission denied: the file cannot be read") from err
    except OSError as err:
        raise AudioLoadError(path, f"cannot be read ({err.strerror or err})") from err
    if not head:
        raise AudioLoadError(path, "the file is empty (0 bytes)")
    return head


def _sndfile_reason(err: Exception) -> str:
    """libsndfile's message without its "Error opening 'path': " prefix."""
    text = getattr(err, "error_string", None) or str(err)
    if text.startswith("Error opening") and "': " in text:
        text = text.split("': ", 1)[1]
    return text.strip().rstrip(".") or type(err).__name__


def _check_samplerate(path: Path, samplerate: int) -> None:
    if not MIN_SAMPLERATE <= samplerate <= MAX_SAMPLERATE:
        raise AudioLoadError(
            path,
            f"the header gives an impossible samplerate of {samplerate} Hz (expected {MIN_SAMPLERATE}-"
            f"{MAX_SAMPLERATE} Hz): the file is damaged",
        )


def _check_length(path: Path, info_frames: int, samplerate: int) -> None:
    """Refuse a WAV/AIFF whose header announces more audio than the file holds."""
    announced = declared_frames(path)
    if announced is not None and announced > info_frames + 1:
        raise _truncated(path, announced, info_frames, samplerate)


def _truncated(path: Path, announced: int, present: int, samplerate: int) -> AudioLoadError:
    return AudioLoadError(
        path,
        f"the file is truncated (incomplete download or copy?): the header announces "
        f"{announced / samplerate:.2f} s of audio but only {present / samplerate:.2f} s is there",
    )


def _refuse_unopenable(
    path: Path, head: bytes, sndfile_reason: str, ffmpeg_reason: str | None
) -> AudioLoadError:
    """The error for a file neither libsndfile nor ffmpeg could open."""
    ext = path.suffix.lower()
    other = describe_non_audio(head)
    if other:
        return AudioLoadError(path, f"is not an audio file (it looks like {other})")
    if ffmpeg_reason is None and ext in FFMPEG_EXTENSIONS:
        return AudioLoadError(path, f"needs ffmpeg to decode {ext} files; {_ffmpeg.INSTALL_HINT}")
    if ffmpeg_reason is not None and ("codec" in ffmpeg_reason or "no audio stream" in ffmpeg_reason):
        return AudioLoadError(path, ffmpeg_reason)
    if ext in NATIVE_EXTENSIONS:
        name = ext.lstrip(".").upper()
        return AudioLoadError(path, f"is damaged or not a valid {name} file ({sndfile_reason})")
    if ffmpeg_reason is None:
        supported = ", ".join(e.lstrip(".") for e in NATIVE_EXTENSIONS)
        return AudioLoadError(
            path,
            f"is not a supported audio file ({sndfile_reason}); readable formats: {supported}, "
            f"and more once ffmpeg is installed",
        )
    return AudioLoadError(path, ffmpeg_reason)


@contextmanager
def _open(path: Path) -> Iterator[tuple[sf.SoundFile, list[str]]]:
    """Open ``path`` with libsndfile, or decode it to a temporary WAV with ffmpeg first; yields the file and notes."""
    head = _check_file(path)
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        sndfile_reason = _sndfile_reason(err)
    else:
        # A recording that was never finalised has "0 bytes of audio" in its header but audio after it:
        # libsndfile then reads nothing, ffmpeg reads to the end of the file.
        unfinished = (
            handle.frames == 0 and path.stat().st_size > _HEAD_BYTES and _ffmpeg.find_ffmpeg() is not None
        )
        if not unfinished:
            with handle:
                yield handle, []
            return
        handle.close()
        sndfile_reason = "the header announces no audio"
    ffmpeg = _ffmpeg.find_ffmpeg()
    if ffmpeg is None:
        raise _refuse_unopenable(path, head, sndfile_reason, None)
    with tempfile.TemporaryDirectory(prefix="shotoku-decode-") as tmp:
        wav_path = Path(tmp) / "decoded.wav"
        try:
            warnings = _ffmpeg.decode_to_wav(path, wav_path, ffmpeg)
        except _ffmpeg.FFmpegError as err:
            raise _refuse_unopenable(path, head, sndfile_reason, str(err)) from None
        notes = [f"decoded with ffmpeg ({path.suffix.lower() or 'no extension'})"]
        if warnings:
            log.warning("%s: ffmpeg reported decoding errors: %s", path, warnings[0])
            notes.append(f"ffmpeg skipped damaged data while decoding ({warnings[0]})")
        try:
            handle = sf.SoundFile(wav_path)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioLoadError(
                path, f"ffmpeg's output could not be read ({_sndfile_reason(err)})"
            ) from None
        with handle:
            yield handle, notes


def _read_all(path: Path, f: sf.SoundFile) -> tuple[np.ndarray, int]:
    """Read every frame of ``f`` into ``(n_channels, n_samples)`` float32, block by block; count non-finite samples.

    Non-finite samples are already replaced by 0 in the result.
    """
    n_channels, expected = f.channels, max(int(f.frames), 0)
    capacity = expected if expected > 0 else _BLOCK_FRAMES
    try:
        out = np.empty((n_channels, capacity), dtype=np.float32)
    except (MemoryError, ValueError) as err:
        minutes = expected / f.samplerate / 60
        gib = n_channels * expected * 4 / 2**30
        raise AudioLoadError(
            path, f"too long to load: {minutes:.0f} min of audio needs {gib:.1f} GiB of memory"
        ) from err
    block = np.empty((_BLOCK_FRAMES, n_channels), dtype=np.float32)
    position, n_bad = 0, 0
    while True:
        try:
            chunk = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True, out=block)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioLoadError(
                path,
                f"the file is damaged or truncated: decoding failed after {position / f.samplerate:.2f} s "
                f"({_sndfile_reason(err)})",
            ) from None
        n = chunk.shape[0]
        if n == 0:
            break
        if position + n > capacity:  # MP3 frame counts are estimates: grow
            capacity = max(2 * capacity, position + n)
            grown = np.empty((n_channels, capacity), dtype=np.float32)
            grown[:, :position] = out[:, :position]
            out = grown
        target = out[:, position : position + n]
        target[...] = chunk.T
        finite = np.isfinite(target)
        if not finite.all():
            n_bad += int(finite.size - np.count_nonzero(finite))
            target[~finite] = 0.0
        position += n
    if position < capacity:
        out = out[:, :position].copy()  # a slice of the rows is not C-contiguous
    return out, n_bad


def load_audio(path: str | Path, samplerate: int | None = None, n_channels: int | None = 2) -> Audio:
    """Load an audio file as float32 ``(n_channels, n_samples)``.

    ``samplerate``: ``None`` keeps the file's rate, otherwise the audio is resampled with soxr (HQ).
    ``n_channels``: 2 (default) turns mono into two identical channels and downmixes more than two to stereo
    (ITU-R BS.775, see :mod:`engine.audio._channels`); 1 mixes down to mono; ``None`` keeps the file's channels.
    NaN/Inf samples are replaced by 0 (with a note). Raises :class:`AudioLoadError` for a missing, empty, damaged,
    truncated or non-audio file, an unsupported codec, all-NaN audio or an impossible samplerate; ``ValueError`` for
    an impossible ``samplerate``/``n_channels`` argument.
    """
    path = Path(path)
    if samplerate is not None and not MIN_SAMPLERATE <= samplerate <= MAX_SAMPLERATE:
        raise ValueError(
            f"samplerate must be {MIN_SAMPLERATE}-{MAX_SAMPLERATE} Hz or None, got {samplerate!r}"
        )
    if n_channels not in (None, 1, 2):
        raise ValueError(f"n_channels must be 1, 2 or None, got {n_channels!r}")
    with _open(path) as (f, notes):
        file_rate = int(f.samplerate)
        _check_samplerate(path, file_rate)
        if f.format in _EXACT_LENGTH_FORMATS:
            _check_length(path, int(f.frames), file_rate)
        announced, file_format = int(f.frames), f.format
        samples, n_bad = _read_all(path, f)
    n_read = samples.shape[1]
    if n_read == 0:
        raise AudioLoadError(path, "contains no audio (0 samples)")
    if file_format in _EXACT_LENGTH_FORMATS and announced > n_read + 1:
        raise _truncated(path, announced, n_read, file_rate)
    if file_format == "MP3" and n_read < 0.9 * announced:
        message = (
            f"decoded {n_read / file_rate:.2f} s but the header announces {announced / file_rate:.2f} s: "
            "the file may be truncated"
        )
        log.warning("%s: %s", path, message)
        notes.append(message)
    if n_bad:
        if n_bad == samples.size:
            raise AudioLoadError(path, "every sample is NaN or infinite: the file holds no usable audio")
        notes.append(f"replaced {n_bad} NaN/Inf samples with 0")
        log.warning("%s: replaced %d NaN/Inf samples with 0", path, n_bad)
    samples, channel_note = convert_channels(samples, n_channels)
    if channel_note:
        notes.append(channel_note)
    rate = file_rate
    if samplerate is not None and samplerate != file_rate:
        samples = _resample(samples, file_rate, samplerate)
        notes.append(f"resampled {file_rate} Hz -> {samplerate} Hz")
        rate = samplerate
    return Audio(
        samples=np.ascontiguousarray(samples, dtype=np.float32), samplerate=rate, path=path, notes=notes
    )


def _resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(n_channels, n_samples)`` with soxr HQ, one channel at a time (no transposed copy).

    The output has ``round(n_samples * rate_out / rate_in)`` samples (soxr's own length).
    """
    out: np.ndarray | None = None
    for channel, row in enumerate(samples):
        resampled = soxr.resample(row, rate_in, rate_out, quality="HQ")
        if out is None:
            out = np.empty((samples.shape[0], resampled.shape[0]), dtype=np.float32)
        out[channel] = resampled
    assert out is not None
    return out


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header (samplerate, channels, length, format) without decoding samples.

    Raises :class:`AudioLoadError` for the same bad files :func:`load_audio` refuses, as far as the header shows.
    """
    path = Path(path)
    head = _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        return _ffprobe_info(path, head, _sndfile_reason(err))
    samplerate = int(info.samplerate)
    _check_samplerate(path, samplerate)
    if info.format in _EXACT_LENGTH_FORMATS:
        _check_length(path, int(info.frames), samplerate)
    if info.frames <= 0:
        raise AudioLoadError(path, "contains no audio (0 samples)")
    return AudioInfo(
        samplerate=samplerate,
        n_channels=int(info.channels),
        n_samples=int(info.frames),
        duration_seconds=float(info.frames) / samplerate,
        format=str(info.format),
        subtype=str(info.subtype),
        path=path,
    )


def _ffprobe_info(path: Path, head: bytes, sndfile_reason: str) -> AudioInfo:
    ffprobe = _ffmpeg.find_ffprobe()
    if ffprobe is None:
        raise _refuse_unopenable(path, head, sndfile_reason, None)
    try:
        probed = _ffmpeg.probe(path, ffprobe)
    except _ffmpeg.FFmpegError as err:
        raise _refuse_unopenable(path, head, sndfile_reason, str(err)) from None
    if probed.samplerate <= 0 or probed.n_channels <= 0:
        raise _refuse_unopenable(path, head, sndfile_reason, "is damaged or not an audio file")
    if probed.codec in ("UNKNOWN", "NONE"):
        raise AudioLoadError(path, "uses an audio codec that cannot be decoded")
    _check_samplerate(path, probed.samplerate)
    if probed.n_samples <= 0:
        raise AudioLoadError(path, "contains no audio (0 samples)")
    return AudioInfo(
        samplerate=probed.samplerate,
        n_channels=probed.n_channels,
        n_samples=probed.n_samples,
        duration_seconds=probed.duration_seconds,
        format=path.suffix.lstrip(".").upper() or probed.format,
        subtype=probed.codec,
        path=path,
    )
