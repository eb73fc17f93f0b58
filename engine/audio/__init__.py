"""Audio file I/O: ``load_audio`` / ``audio_info`` (soundfile, soxr, ffmpeg fallback) and atomic ``save_audio``.

Arrays are float32 ``(n_channels, n_samples)``; see :mod:`engine.audio.io`.
"""

from engine.audio.io import (
    FFMPEG_EXTENSIONS,
    NATIVE_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    Audio,
    AudioInfo,
    audio_info,
    load_audio,
)
from engine.audio.save import SAVE_FORMATS, AudioFileWriter, save_audio

__all__ = [
    "FFMPEG_EXTENSIONS",
    "NATIVE_EXTENSIONS",
    "SAVE_FORMATS",
    "SUPPORTED_EXTENSIONS",
    "Audio",
    "AudioFileWriter",
    "AudioInfo",
    "audio_info",
    "load_audio",
    "save_audio",
]
