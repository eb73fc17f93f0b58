"""Where a decoded input lives while it is used: a temporary float32 file, channels first, in one folder.

The folder is ``$SHOTOKU_TMPDIR`` when set, else the system's temporary folder (``tempfile.gettempdir()``, which
follows ``TMPDIR``), plus ``shotoku-audio-<uid>`` (mode 0700). Each file is named
``input-<pid>-<process start time>-<random>.f32``: :meth:`DecodedAudio.close` (and garbage collection, and the
interpreter's exit) removes it; a process killed before that (SIGKILL, a crash, a power cut) leaves it behind, and
the next :func:`remove_stale` — run by every :func:`~engine.audio.open_audio_stream` — removes every file whose
process is gone (a PID reused by another process does not keep it: the start time must match too).

:class:`SpoolWriter` writes ``(n_channels, n_samples)`` blocks with plain file writes (the page cache holds them,
not the process: its resident memory stays flat) into a sparse file sized for the expected length, grows it when
an estimate was short and compacts it to the exact length at the end, so the result is one C-order array. Silent
blocks are not written at all (the sparse file reads as zeros there): a long silent input costs no disk.

Free space is therefore checked as the file really fills, not against the whole expected size up front (that
refused a 3.4 h silent WAV on a disk with 3 GiB free, which it fits): before the first written block and then every
:data:`_CHECK_BYTES` written, the disk must hold the next step plus :data:`_SPARE_BYTES`, else the writer raises
:class:`SpoolFull` with the reason in words (the expected whole size and what is free).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np
import psutil

#: Environment variable naming the folder for decoded inputs (default: the system's temporary folder).
TMPDIR_ENV = "SHOTOKU_TMPDIR"
_NAME = re.compile(r"^input-(\d+)-(\d+)-[0-9a-f]+\.f32$")
_ITEM = 4  # bytes per float32 sample
_COPY_SAMPLES = 1 << 20  # samples moved per step when a file grows or is compacted
#: Free space kept on the disk beyond the decoded file (a full temporary disk breaks other programs too).
_SPARE_BYTES = 64 << 20
#: Bytes written between two looks at the free space.
_CHECK_BYTES = 64 << 20


class SpoolFull(OSError):
    """The spool's disk has no room for the rest of the decoded audio; ``strerror`` says so in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.ENOSPC, reason)


def spool_folder() -> Path:
    """The folder decoded inputs are written to (created, private to this user)."""
    base = Path(os.environ.get(TMPDIR_ENV) or tempfile.gettempdir())
    uid = getattr(os, "getuid", None)
    folder = base / (f"shotoku-audio-{uid()}" if uid is not None else "shotoku-audio")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (whole seconds since the epoch), ``None`` if there is no such process."""
    try:
        return int(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None
    except (psutil.Error, OSError):
        return -1  # exists but cannot be inspected: treat as alive


def _alive(pid: int, started: int) -> bool:
    now = _start_time(pid)
    return now is not None and (now == -1 or abs(now - started) <= 1)


def remove_stale(folder: Path | None = None) -> list[Path]:
    """Remove the decoded inputs left by processes that no longer run; returns the removed paths."""
    folder = folder or spool_folder()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or _alive(int(match[1]), int(match[2])):
            continue
        try:
            os.unlink(entry.path)
        except OSError:  # gone already, or (Windows) still mapped by a live process
            continue
        removed.append(Path(entry.path))
    return removed


def new_spool_path(folder: Path) -> Path:
    """A fresh file name in ``folder`` carrying this process's PID and start time."""
    pid = os.getpid()
    started = _start_time(pid) or 0
    return folder / f"input-{pid}-{max(started, 0)}-{secrets.token_hex(6)}.f32"


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def unlink_if_owner(path: Path, owner_pid: int) -> None:
    """Remove ``path`` only from the process that made it (a forked child that drops its copy must not)."""
    if os.getpid() == owner_pid:
        unlink_quietly(path)


def check_space(folder: Path, n_bytes: int, *, total_bytes: int | None = None, written: int = 0) -> str | None:
    """``None`` when ``folder``'s disk has room for ``n_bytes`` more (plus a margin), else the reason in words.

    ``total_bytes`` (default ``n_bytes``) is the whole expected size named in the reason; ``written`` what this
    file holds already (counted as free: it was free before this file took it).
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if n_bytes + _SPARE_BYTES <= free:
        return None
    total = n_bytes if total_bytes is None else total_bytes
    return (
        f"not enough free disk space in {folder} for the decoded audio ({total / 2**30:.2f} GiB needed, "
        f"{(free + written) / 2**30:.2f} GiB free); free some space or set {TMPDIR_ENV} to a folder on a bigger disk"
    )


class SpoolWriter:
    """Write float32 ``(n_channels, n)`` blocks into ``path`` as one C-order ``(n_channels, n_samples)`` array.

    ``capacity`` is the expected number of samples (an estimate is fine: the file grows or is compacted).
    ``folder`` (default: ``path``'s) is where free space is checked as the file fills (:class:`SpoolFull`).
    """

    def __init__(self, path: Path, n_channels: int, capacity: int, folder: Path | None = None) -> None:
        self.path = path
        self.folder = path.parent if folder is None else folder
        self.n_channels = int(n_channels)
        self.capacity = max(int(capacity), 1)
        self.n_samples = 0
        self._written = 0  # bytes really written (silence is not)
        self._next_check = 0  # the first written block looks at the disk
        self._untouched = True  # nothing but zeros past each row's end (until rows move: they leave data behind)
        self._file = open(path, "xb+")  # noqa: SIM115 - closed in finish()/abort()
        self._file.truncate(self.n_channels * self.capacity * _ITEM)  # sparse: costs nothing until written

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``(n_channels, n)`` float32."""
        n = block.shape[1]
        if n == 0:
            return
        if self.n_samples + n > self.capacity:
            self._move_rows(max(2 * self.capacity, self.n_samples + n))
        if self._untouched and not block.any():  # silence: the sparse file already reads as zeros there
            self.n_samples += n
            return
        self._room_for(self.n_channels * n * _ITEM)
        for channel in range(self.n_channels):
            self._file.seek((channel * self.capacity + self.n_samples) * _ITEM)
            self._file.write(np.ascontiguousarray(block[channel], dtype=np.float32).data)
        self.n_samples += n

    def _room_for(self, n_bytes: int) -> None:
        """Raise :class:`SpoolFull` when the disk cannot take ``n_bytes`` more (looked at every few MB)."""
        self._written += n_bytes
        if self._written < self._next_check:
            return
        step = max(_CHECK_BYTES, n_bytes)
        expected = self.n_channels * max(self.capacity, self.n_samples) * _ITEM
        reason = check_space(self.folder, step, total_bytes=expected, written=self._written - n_bytes)
        if reason is not None:
            raise SpoolFull(reason)
        self._next_check = self._written + step

    def _move_rows(self, new_capacity: int) -> None:
        """Give every row ``new_capacity`` samples of room (rows keep their first ``n_samples`` values)."""
        old, f, n = self.capacity, self._file, self.n_samples
        if new_capacity > old:
            self._room_for((self.n_channels - 1) * n * _ITEM)  # the moved rows are written again
            f.truncate(self.n_channels * new_capacity * _ITEM)
            self._untouched = False
            rows = range(self.n_channels - 1, 0, -1)  # rows move later: last row first, each from its end
        else:
            rows = range(1, self.n_channels)  # rows move earlier: first row first, each from its start
        buffer, there = bytearray(_COPY_SAMPLES * _ITEM), bytearray(_COPY_SAMPLES * _ITEM)
        for row in rows:
            spans = range(0, n, _COPY_SAMPLES)
            for start in reversed(spans) if new_capacity > old else spans:
                size = min(_COPY_SAMPLES, n - start) * _ITEM
                view = memoryview(buffer)[:size]
                f.seek((row * old + start) * _ITEM)
                f.readinto(view)
                f.seek((row * new_capacity + start) * _ITEM)
                if not np.frombuffer(view, np.uint8).any():  # silence onto silence: keep the hole unwritten
                    f.readinto(memoryview(there)[:size])
                    if not np.frombuffer(there, np.uint8, size).any():
                        continue
                    f.seek((row * new_capacity + start) * _ITEM)
                f.write(view)
        if new_capacity < old:
            f.truncate(self.n_channels * new_capacity * _ITEM)
        self.capacity = new_capacity

    def finish(self) -> int:
        """Compact the file to exactly ``n_samples`` per row, close it; returns ``n_samples``."""
        if self.n_samples != self.capacity and self.n_samples > 0:
            self._move_rows(self.n_samples)
        self._file.flush()
        self._file.close()
        return self.n_samples

    def abort(self) -> None:
        """Close and remove the file."""
        try:
            self._file.close()
        finally:
            unlink_quietly(self.path)
