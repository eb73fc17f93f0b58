"""Load audio files into ``(n_channels, n_samples)`` float32 arrays; read their headers; save them atomically.

WAV, FLAC, OGG (Vorbis/Opus), MP3 and AIFF are read with soundfile (libsndfile). Everything libsndfile refuses
(M4A/AAC, MP4, WMA, ...) is decoded by the ``ffmpeg`` command when it is on PATH. Every failure becomes an
:class:`~engine.errors.AudioLoadError` naming the file and a reason a musician understands; nothing is silently
changed: what loading did to the audio (resampling, downmixing, repairing NaNs, silence where damage could not be
decoded) is listed in :attr:`Audio.notes`. Decoding itself lives in :mod:`engine.audio.stream` (shared with
:func:`~engine.audio.open_audio_stream`, the way to read long songs), :mod:`engine.audio._decode` and
:mod:`engine.audio._files` (what is refused before any decoder runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio import _ffmpeg
from engine.audio._decode import (
    EXACT_LENGTH_FORMATS,
    check_announced_length,
    refuse_unopenable,
    sndfile_reason,
)
from engine.audio._decode import Source as _Source
from engine.audio._files import check_input_file, sndfile_name
from engine.audio._quiet import quiet_decoder
from engine.audio.save import MAX_SAMPLERATE, MIN_SAMPLERATE, save_audio
from engine.audio.stream import ArraySink, SampleShape, as_path, check_arguments, check_samplerate, decode
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



@dataclass
class Audio(SampleShape):
    """Decoded audio: ``samples`` is float32 ``(n_channels, n_samples)``, C-contiguous.

    ``notes`` lists, in words, what loading changed ("resampled 48000 Hz -> 44100 Hz", ...); empty when nothing.
    """

    samples: np.ndarray
    samplerate: int
    path: Path | None = None
    notes: list[str] = field(default_factory=list)


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


def load_audio(
    path: str | bytes | os.PathLike, samplerate: int | None = None, n_channels: int | None = 2
) -> Audio:
    """Load an audio file as float32 ``(n_channels, n_samples)`` in memory (for long songs use
    :func:`engine.audio.open_audio_stream`, which decodes the same way into a temporary memory-mapped file).

    ``samplerate``: ``None`` keeps the file's rate, otherwise the audio is resampled with soxr (HQ).
    ``n_channels``: 2 (default) turns mono into two identical channels and downmixes more than two to stereo
    (ITU-R BS.775, see :mod:`engine.audio._channels`); 1 mixes down to mono; ``None`` keeps the file's channels.
    NaN/Inf samples are replaced by 0 (with a note); damage in the middle is decoded around (silence, with a note
    naming where). Raises :class:`AudioLoadError` for a missing, empty, damaged, truncated or non-audio file, a
    FIFO/device, an unsupported codec, all-NaN audio or an impossible samplerate; ``ValueError`` for an impossible
    ``samplerate``/``n_channels`` argument.
    """
    check_arguments(samplerate, n_channels)
    path = as_path(path)
    sinks: list[ArraySink] = []

    def make_sink(n_out: int, expected: int) -> ArraySink:
        try:
            sinks.append(ArraySink(n_out, expected))
        except (MemoryError, ValueError) as err:
            gib = n_out * expected * 4 / 2**30
            raise AudioLoadError(
                path, f"too long to load into memory: the decoded audio needs {gib:.1f} GiB"
            ) from err
        return sinks[0]

    _, rate, notes = decode(path, samplerate, n_channels, make_sink)
    return Audio(samples=sinks[0].array, samplerate=rate, path=path, notes=notes)


def audio_info(path: str | bytes | os.PathLike) -> AudioInfo:
    """Read a file's header (samplerate, channels, length, format) without decoding samples.

    Raises :class:`AudioLoadError` for the same bad files :func:`load_audio` refuses, as far as the header shows.
    """
    path = as_path(path)
    head, _ = check_input_file(path)
    try:
        with quiet_decoder():
            info = sf.info(sndfile_name(path))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        return _ffprobe_info(path, head, sndfile_reason(err))
    samplerate = int(info.samplerate)
    check_samplerate(path, samplerate)
    if info.format in EXACT_LENGTH_FORMATS:
        check_announced_length(
            path, _Source(samplerate, int(info.channels), int(info.frames), str(info.format), "", True)
        )
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


def _ffprobe_info(path: Path, head: bytes, sndfile_why: str) -> AudioInfo:
    ffprobe = _ffmpeg.find_ffprobe()
    if ffprobe is None:
        raise refuse_unopenable(path, head, sndfile_why, None)
    try:
        probed = _ffmpeg.probe(path, ffprobe)
    except _ffmpeg.FFmpegError as err:
        raise refuse_unopenable(path, head, sndfile_why, str(err)) from None
    if probed.samplerate <= 0 or probed.n_channels <= 0:
        raise refuse_unopenable(path, head, sndfile_why, "is damaged or not an audio file")
    if probed.codec in ("UNKNOWN", "NONE"):
        raise AudioLoadError(path, "uses an audio codec that cannot be decoded")
    check_samplerate(path, probed.samplerate)
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
