"""Named errors. Each carries a one-line message naming the file (if any) and the reason."""

from __future__ import annotations

from pathlib import Path


class ShotokuError(Exception):
    """Base class of every error the CLI and GUI show to a person as a one-line message."""


class _FileError(ShotokuError):
    """An error about one file: ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


class AudioLoadError(_FileError):
    """An audio file could not be read (missing, empty, corrupt, unsupported, not audio, ...)."""


class AudioSaveError(_FileError):
    """An audio file could not be written (disk full, no permission, bad format, ...)."""


class ModelLoadError(_FileError):
    """A model card or its weights could not be loaded (unknown name, corrupt file, checksum mismatch)."""


class DatasetError(_FileError):
    """Training or evaluation data is missing or inconsistent."""


class PlaybackError(ShotokuError):
    """The audio output could not be opened or was lost."""


class SeparationCancelled(ShotokuError):
    """Raised from a progress/cancel check when the user cancelled a separation."""

    def __init__(self, reason: str = "separation cancelled") -> None:
        super().__init__(reason)
