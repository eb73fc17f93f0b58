"""The ffmpeg fallback: decode what libsndfile cannot (M4A/AAC, MP4, WMA, ...) by running the ``ffmpeg`` command.

No shell is involved: arguments are passed as a list, and paths get ffmpeg's ``file:`` prefix so a name that starts
with ``-`` or holds a ``:`` is never read as an option or a protocol.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "install ffmpeg (Linux: apt-get install ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg) "
    "and make sure it is on PATH"
)


class FFmpegError(Exception):
    """ffmpeg or ffprobe failed; ``str(err)`` is a reason a musician can read."""


@dataclass(frozen=True)
class ProbeResult:
    """What ffprobe says about the first audio stream of a file."""

    samplerate: int
    n_channels: int
    n_samples: int
    duration_seconds: float
    format: str
    codec: str


def find_ffmpeg() -> str | None:
    """Path of the ``ffmpeg`` executable on PATH, or ``None``."""
    return shutil.which("ffmpeg")


def find_ffprobe() -> str | None:
    """Path of ``ffprobe``: on PATH, else beside ffmpeg; ``None`` when missing."""
    found = shutil.which("ffprobe")
    if found:
        return found
    ffmpeg = find_ffmpeg()
    if ffmpeg:
        sibling = Path(ffmpeg).with_name("ffprobe" + Path(ffmpeg).suffix)
        if sibling.is_file():
            return str(sibling)
    return None


def subprocess_env() -> dict[str, str] | None:
    """The environment for running ffmpeg: ``None`` (inherit) normally; in a frozen (PyInstaller) app, a copy with
    the bundle's library path removed, so the system's ffmpeg loads the system's libraries, not the bundled ones.
    """
    if not getattr(sys, "frozen", False):
        return None
    env = dict(os.environ)
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "LIBPATH"):
        original = env.pop(name + "_ORIG", None)  # PyInstaller keeps the user's own value here
        if original is not None:
            env[name] = original
        else:
            env.pop(name, None)
    return env


def _explain(stderr: str) -> str:
    """Turn ffmpeg's stderr into one short reason."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines).lower()
    last = lines[-1] if lines else "no message"
    if "matches no streams" in text or "does not contain any stream" in text or "no audio stream" in text:
        return "contains no audio stream"
    if "decoder (codec" in text or "unknown codec" in text or "codec not currently supported" in text:
        return f"uses an audio codec that cannot be decoded (ffmpeg: {last})"
    if "invalid data found" in text or "moov atom not found" in text or "end of file" in text:
        return f"is damaged or not an audio file (ffmpeg: {last})"
    return f"ffmpeg could not decode it ({last})"


def decode_to_wav(path: Path, wav_path: Path, ffmpeg: str) -> list[str]:
    """Decode the first audio stream of ``path`` into a float32 WAV (RF64 when large) at ``wav_path``.

    Keeps the file's samplerate and channels. Returns ffmpeg's non-fatal warnings (decoding errors it skipped over);
    raises :class:`FFmpegError` with a readable reason when it fails.
    """
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-i", f"file:{path.resolve()}",
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-c:a", "pcm_f32le", "-rf64", "auto", "-f", "wav",
        f"file:{wav_path.resolve()}",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, check=False, env=subprocess_env()
        )
    except OSError as err:
        raise FFmpegError(f"could not run ffmpeg ({err.strerror or err})") from err
    stderr = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0 or not wav_path.is_file():
        raise FFmpegError(_explain(stderr))
    return [line.strip() for line in stderr.splitlines() if line.strip()]


def probe(path: Path, ffprobe: str) -> ProbeResult:
    """Read the header of ``path``'s first audio stream with ffprobe (decodes no samples)."""
    command = [
        ffprobe, "-v", "error", "-select_streams", "a:0",
        "-show_entries", "stream=codec_name,sample_rate,channels,duration,duration_ts,time_base:format=format_name,duration",
        "-of", "json", f"file:{path.resolve()}",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            env=subprocess_env(),
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FFmpegError(f"could not run ffprobe ({err})") from err
    if result.returncode != 0:
        raise FFmpegError(_explain(result.stderr.decode("utf-8", "replace")))
    try:
        data = json.loads(result.stdout or b"{}")
    except json.JSONDecodeError as err:
        raise FFmpegError("ffprobe gave an unreadable answer") from err
    streams = data.get("streams") or []
    if not streams:
        raise FFmpegError("contains no audio stream")
    stream, fmt = streams[0], data.get("format") or {}
    samplerate = int(stream.get("sample_rate") or 0)
    n_channels = int(stream.get("channels") or 0)
    duration = _float(stream.get("duration")) or _float(fmt.get("duration")) or 0.0
    return ProbeResult(
        samplerate=samplerate,
        n_channels=n_channels,
        n_samples=int(round(duration * samplerate)),
        duration_seconds=duration,
        format=str(fmt.get("format_name", "unknown")).split(",")[0].upper(),
        codec=str(stream.get("codec_name", "unknown")).upper(),
    )


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
