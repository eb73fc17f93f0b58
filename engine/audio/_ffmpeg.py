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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


@dataclass
class PipeDecoder:
    """ffmpeg decoding the first audio stream of ``path`` to float32 on a pipe, read block by block.

    Nothing is written to disk: ffmpeg's output goes through a pipe, its messages to a small temporary file. The
    rate and channel count are ffprobe's (``-ar``/``-ac`` keep them fixed even if the stream changes mid-file);
    ``aresample=async=1`` fills a hole in the timestamps (a damaged packet ffmpeg skipped) with silence, so what
    follows stays in place. ``source`` has :class:`engine.audio._decode.Source`'s fields.
    """

    path: Path
    ffmpeg: str
    source: object
    notes: list[str] = field(default_factory=list)
    _process: subprocess.Popen | None = None
    _stderr: object = None

    @classmethod
    def open(cls, path: Path, ffmpeg: str) -> PipeDecoder:
        """Probe ``path`` (raises :class:`FFmpegError` with a readable reason) and get ready to decode it."""
        from engine.audio._decode import Source

        ffprobe = find_ffprobe()
        if ffprobe is None:
            raise FFmpegError("ffprobe (which comes with ffmpeg) is missing; " + INSTALL_HINT)
        probed = probe(path, ffprobe)
        if probed.samplerate <= 0 or probed.n_channels <= 0:
            raise FFmpegError("is damaged or not an audio file (no samplerate or channels in its audio stream)")
        if probed.codec in ("UNKNOWN", "NONE"):
            raise FFmpegError("uses an audio codec that cannot be decoded")
        source = Source(
            samplerate=probed.samplerate,
            n_channels=probed.n_channels,
            n_frames=max(probed.n_samples, 0),
            format=path.suffix.lstrip(".").upper() or probed.format,
            subtype=probed.codec,
            exact_length=False,
        )
        notes = [f"decoded with ffmpeg ({path.suffix.lower() or 'no extension'})"]
        return cls(path=path, ffmpeg=ffmpeg, source=source, notes=notes)

    def blocks(self, block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
        src = self.source
        command = [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-i", f"file:{self.path.resolve()}",
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-af", "aresample=async=1",
            "-ac", str(src.n_channels), "-ar", str(src.samplerate),
            "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1",
        ]  # fmt: skip
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=subprocess_env(),
            )
        except OSError as err:
            raise FFmpegError(f"could not run ffmpeg ({err.strerror or err})") from err
        frame_bytes = 4 * src.n_channels
        buffer = np.empty((block_frames, src.n_channels), dtype=np.float32)
        raw = memoryview(buffer.reshape(-1).view(np.uint8))
        stdout = self._process.stdout
        assert stdout is not None
        filled, n_read = 0, 0
        while True:
            got = stdout.readinto(raw[filled:])
            if got:
                filled += got
                if filled < len(raw):
                    continue
            n = filled // frame_bytes
            if n:
                n_read += n
                yield buffer[:n]
                rest = filled - n * frame_bytes
                raw[:rest] = raw[n * frame_bytes : filled]
                filled = rest
            if not got:
                break
        returncode = self._process.wait()
        messages = self._messages()
        if returncode != 0 and n_read == 0:
            raise FFmpegError(_explain("\n".join(messages)))
        if messages:
            self.notes.append(f"ffmpeg skipped damaged data while decoding ({messages[0]})")

    def _messages(self) -> list[str]:
        if self._stderr is None:
            return []
        self._stderr.seek(0)
        text = self._stderr.read(64 << 10).decode("utf-8", "replace")
        return [line.strip() for line in text.splitlines() if line.strip()]

    def finish_notes(self) -> list[str]:
        return self.notes

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


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
