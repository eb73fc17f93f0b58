"""Write long audio block by block to a temporary file that replaces the target only when complete."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import AudioSaveError

#: extension -> (libsndfile format, {bit depth: subtype}, default bit depth)
WRITE_FORMATS: dict[str, tuple[str, dict[str, str], str]] = {
    "wav": ("WAV", {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}, "24"),
    "flac": ("FLAC", {"16": "PCM_16", "24": "PCM_24"}, "24"),
    "aiff": ("AIFF", {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}, "24"),
    "ogg": ("OGG", {"vorbis": "VORBIS"}, "vorbis"),
    "mp3": ("MP3", {"mp3": "MPEG_LAYER_III"}, "mp3"),
}


def resolve_format(path: Path, format: str | None = None, bit_depth: int | str | None = None) -> tuple[str, str]:
    """``(libsndfile format, subtype)`` for a target path; AudioSaveError naming the file if unsupported."""
    ext = (format or path.suffix.lstrip(".")).lower()
    ext = "aiff" if ext == "aif" else ext
    if ext not in WRITE_FORMATS:
        raise AudioSaveError(path, f"cannot write format {ext!r}; choose one of {', '.join(WRITE_FORMATS)}")
    sf_format, subtypes, default = WRITE_FORMATS[ext]
    depth = default if bit_depth is None or len(subtypes) == 1 else str(bit_depth).lower()
    if depth not in subtypes:
        raise AudioSaveError(path, f"{ext} cannot be written at bit depth {bit_depth!r}; choose {', '.join(subtypes)}")
    return sf_format, subtypes[depth]


def describe_os_error(err: OSError) -> str:
    """A short reason for a failed write: 'no space left on device', 'permission denied', ..."""
    if err.errno == errno.ENOSPC:
        return "no space left on device"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return err.strerror or str(err)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class StreamingAudioWriter:
    """Appends ``(n_channels, n)`` blocks to a temporary file beside ``path``; :meth:`commit` renames it.

    Until :meth:`commit`, an existing file at ``path`` is untouched; :meth:`abort` (safe to call after commit)
    removes the temporary file.
    """

    def __init__(
        self,
        path: str | Path,
        samplerate: int,
        n_channels: int,
        format: str | None = None,
        bit_depth: int | str | None = None,
    ) -> None:
        self.path = Path(path)
        sf_format, subtype = resolve_format(self.path, format, bit_depth)
        self._integer = subtype.startswith("PCM")
        self.clipped_samples = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
            os.close(fd)
        except OSError as err:
            raise AudioSaveError(self.path, describe_os_error(err)) from None
        self._tmp: Path | None = Path(tmp)
        try:
            self._file = sf.SoundFile(tmp, "w", samplerate, n_channels, subtype=subtype, format=sf_format)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            self.abort()
            raise AudioSaveError(self.path, f"cannot open for writing: {err}") from None

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``(n_channels, n)`` (float, clipped to [-1, 1] for integer formats)."""
        data = np.asarray(block, dtype=np.float32).T
        if self._integer:
            over = np.abs(data) > 1.0
            if over.any():
                self.clipped_samples += int(over.sum())
                data = np.clip(data, -1.0, 1.0)
        try:
            self._file.write(data)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            reason = describe_os_error(err) if isinstance(err, OSError) else str(err)
            self.abort()
            raise AudioSaveError(self.path, f"write failed: {reason}") from None

    def commit(self) -> Path:
        """Close and move the finished file to ``path`` (atomic on one filesystem); returns ``path``."""
        if self._tmp is None:
            return self.path
        try:
            self._file.close()
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
            os.replace(self._tmp, self.path)
        except (OSError, RuntimeError) as err:
            self.abort()
            raise AudioSaveError(self.path, f"could not finish writing: {err}") from None
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target keeps whatever it held before."""
        if self._tmp is None:
            return
        try:
            if not self._file.closed:
                self._file.close()
        except (AttributeError, RuntimeError, OSError):
            pass
        self._tmp.unlink(missing_ok=True)
        self._tmp = None
