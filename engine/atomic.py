"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every write that replaces a file the user or the program relies on (model cards and weights, the stem cache's
meta, training checkpoints, session files, exported audio) goes through this module. The bytes go to a hidden
temporary file in the target's folder (``.<name>.<random><suffix>``), are flushed to disk, and replace the target in
one ``os.replace``; the folder is then flushed so the rename itself survives a power cut. On any exception the
temporary file is removed and the target keeps what it held before.

The new file gets the existing target's permissions, else ``0o666`` minus the process umask (not the ``0o600`` of
``tempfile.mkstemp``).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def file_mode(path: Path) -> int:
    """Permissions for a file written at ``path``: the existing file's, else ``0o666`` minus the process umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        pass
    umask = 0o022
    try:  # reading the umask without setting it (os.umask would race with other threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o666 & ~umask


def make_temp(path: str | Path, *, suffix: str = ".part") -> Path:
    """Create an empty hidden temporary file ``.<name>.<random><suffix>`` in ``path``'s folder and return its path."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # Windows needs write access to flush
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # folders cannot be opened for fsync there; NTFS journals the rename
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (network, FUSE) refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def publish(temp: Path, path: str | Path, *, mode: int | None = None, fsync: bool = True) -> Path:
    """Move the finished ``temp`` onto ``path`` in one ``os.replace``; returns ``path``.

    ``mode``: the permissions to give it (default :func:`file_mode` of ``path``). ``fsync``: flush the file before
    the rename and the folder after it (turn off only for data that is recomputed when lost, like a cache).
    """
    path = Path(path)
    if fsync:
        _fsync_file(temp)
    os.chmod(temp, file_mode(path) if mode is None else mode)
    os.replace(temp, path)
    if fsync:
        _fsync_folder(path.parent)
    return path


def discard(temp: Path) -> None:
    """Remove a temporary file if it is still there."""
    try:
        temp.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".part", fsync: bool = True) -> Iterator[Path]:
    """Yield a hidden temporary path in ``path``'s folder (``.<name>.<random><suffix>``) to write the new file to.

    On normal exit it is flushed (``fsync``) and ``os.replace``-d onto ``path`` (then the folder is flushed); on an
    exception (KeyboardInterrupt included) it is unlinked and the exception re-raised, leaving ``path`` untouched.
    The folder must exist.
    """
    path = Path(path)
    mode = file_mode(path)
    temp = make_temp(path, suffix=suffix)
    try:
        yield temp
        publish(temp, path, mode=mode, fsync=fsync)
    except BaseException:
        discard(temp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically; returns ``path``."""
    with atomic_path(path, fsync=fsync) as temp:
        temp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj: Any, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``obj`` as JSON (``indent=2``, trailing newline) atomically; returns ``path``."""
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n", fsync=fsync)
