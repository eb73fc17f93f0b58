"""Audio file I/O: ``open_audio_stream`` (decode into a temporary memory map: any length, flat memory),
``load_audio`` / ``audio_info`` (soundfile, soxr, ffmpeg fallback) and atomic ``save_audio``.

Arrays are float32 ``(n_channels, n_samples)``; see :mod:`engine.audio.stream` and :mod:`engine.audio.io`.
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
from engine.audio.stream import DecodedAudio, open_audio_stream

__all__ = [
    "FFMPEG_EXTENSIONS",
    "NATIVE_EXTENSIONS",
    "SAVE_FORMATS",
    "SUPPORTED_EXTENSIONS",
    "Audio",
    "AudioFileWriter",
    "AudioInfo",
    "DecodedAudio",
    "audio_info",
    "load_audio",
    "open_audio_stream",
    "save_audio",
]
