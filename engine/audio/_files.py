"""The input file before any decoder sees it: only a regular, readable, non-empty file gets through.

A FIFO, socket or device would block a decoder forever (opening a FIFO waits for a writer) or read endlessly, so
each is refused at once from ``stat``; the file is then opened with ``O_NONBLOCK`` and checked again on the open
descriptor, so a path swapped for a FIFO in between cannot block either. Names are handled as bytes on POSIX
(:func:`sndfile_name`): a name that is not valid UTF-8 (``os.fsdecode``'s surrogate escapes) is read like any other.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from engine.errors import AudioLoadError

#: How many leading bytes :func:`check_input_file` returns (enough to recognise images, text, archives).
HEAD_BYTES = 4096

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(path: Path, mode: int) -> AudioLoadError:
    if stat.S_ISDIR(mode):
        return AudioLoadError(path, "is a folder, not an audio file")
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return AudioLoadError(path, f"is not a regular file ({kind}): only audio files can be opened")


def _stat_error(path: Path, err: OSError) -> AudioLoadError:
    if err.errno == errno.ELOOP:
        return AudioLoadError(path, "is a symbolic link loop (the link points back to itself)")
    if err.errno == errno.ENOENT:
        if os.path.islink(path):
            return AudioLoadError(path, "is a broken symbolic link (its target does not exist)")
        return AudioLoadError(path, "file not found")
    if err.errno in (errno.EACCES, errno.EPERM):
        return AudioLoadError(path, "permission denied: the file cannot be read")
    if err.errno == errno.ENAMETOOLONG:
        return AudioLoadError(path, "the file name is too long")
    if err.errno == errno.ENOTDIR:
        return AudioLoadError(path, "file not found (a part of the path is a file, not a folder)")
    return AudioLoadError(path, f"cannot be read ({err.strerror or err})")


def check_input_file(path: Path) -> tuple[bytes, os.stat_result]:
    """Refuse anything but a readable, non-empty regular file; return its first :data:`HEAD_BYTES` bytes and its
    ``stat`` (size and modification time, to notice a file that changes while it is read).

    Raises :class:`AudioLoadError` naming the file: not found, a folder, a FIFO/socket/device ("not a regular
    file"), a symbolic link loop, permission denied, empty.
    """
    try:
        info = os.stat(path)
    except OSError as err:
        raise _stat_error(path, err) from None
    except ValueError as err:  # an embedded NUL byte
        raise AudioLoadError(path, f"is not a valid file name ({err})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise _stat_error(path, err) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        head = os.read(fd, HEAD_BYTES)
    except OSError as err:
        raise AudioLoadError(path, f"cannot be read ({err.strerror or err})") from None
    finally:
        os.close(fd)
    if not head:
        raise AudioLoadError(path, "the file is empty (0 bytes)")
    return head, info


def sndfile_name(path: Path) -> str | bytes:
    """The name to give libsndfile: bytes on POSIX (soundfile would encode a ``str`` strictly and fail on a name
    that is not valid UTF-8), the ``str`` on Windows (soundfile opens it with the wide-character API)."""
    if sys.platform == "win32":
        return str(path)
    return os.fsencode(path)


def changed_since(path: Path, before: os.stat_result) -> bool:
    """Whether the file's size or modification time differs from ``before`` (it is being written)."""
    try:
        now = os.stat(path)
    except OSError:
        return True
    return now.st_size != before.st_size or now.st_mtime_ns != before.st_mtime_ns
