"""A song's stem files, committed as one set: how ``shotoku separate`` writes ``OUT/<song>/``.

Layout of the output folder ``OUT``::

    OUT/<song>/vocals.wav ...                  the stems
    OUT/<song>/stems.json                      the manifest, written last: the set it lists is complete
    OUT/.shotoku-partial-<pid>-<random>/       a run in progress (hidden; gone when the run ends)

:class:`StemSetWriter` commits a set in four steps:

1. every stem is written, flushed and closed in the run's staging folder (a kill here leaves only that folder);
2. under an exclusive lock on ``OUT/<song>`` (two runs commit one after the other) the old manifest is removed;
3. the stems are renamed into ``OUT/<song>`` one by one (each ``os.replace`` is atomic), the folder is flushed;
4. the new manifest (each stem's file name, size and sha256, the model, the input; written and flushed in the
   staging folder before step 2, so the commit needs no new space) is renamed in last.

A set is complete when ``stems.json`` exists and its files match it (:func:`read_stem_set`). A kill between the
renames of step 3 leaves new stems beside old ones *without* a manifest: visibly incomplete, and the next run
replaces them. No file ever sits under a final name half-written.

Stale staging folders (a run killed with SIGKILL, a power cut) are removed by the next run into the same ``OUT``
(:func:`remove_stale`), and only when their owner is gone: the process named by the PID in the folder's name no
longer runs, and the folder's lock (``flock``, held by its owner while it runs and released by the kernel when it
dies, however it dies) can be taken.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from engine.atomic import atomic_write_json, file_mode
from engine.errors import AudioSaveError

try:
    import fcntl
except ImportError:  # Windows: no flock; the PID check alone decides what is stale
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST_FILE = "stems.json"
MANIFEST_FORMAT = "shotoku-stems/1"
STAGING_PREFIX = ".shotoku-partial-"
_STAGING_RE = re.compile(re.escape(STAGING_PREFIX) + r"(\d+)-[0-9a-f]+$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


def song_folder_name(path: Path) -> str:
    """The folder ``OUT/<song>`` of an input file: its name without the extension, made safe.

    Separators (``/``, ``\\``) and control characters become ``_``; leading dots become ``_`` (no ``.``/``..``,
    no hidden folder); everything else, unicode and bytes that are not UTF-8 included, is kept. Never empty.
    """
    name = path.name
    lowered = name.lower()
    base = name[: -len(".stem.mp4")] if lowered.endswith(".stem.mp4") else name.rsplit(".", 1)[0]
    base = _UNSAFE.sub("_", base or name)
    stripped = base.lstrip(".")
    base = "_" * (len(base) - len(stripped)) + stripped
    return base or "song"


def _is_stale(folder: Path) -> bool:
    """True when the run that owns staging ``folder`` is gone (see the module docstring)."""
    match = _STAGING_RE.match(folder.name)
    if match is None or not folder.is_dir() or folder.is_symlink():
        return False
    if psutil.pid_exists(int(match.group(1))):
        return False  # its process runs (or its PID was reused: then it waits until that one ends)
    if fcntl is None:
        return True
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # still locked: a process (in another PID namespace?) holds it
    finally:
        os.close(fd)  # releases the lock we may have taken
    return True


def remove_stale(out_dir: Path) -> list[tuple[Path, int]]:
    """Remove the staging folders in ``out_dir`` whose run is gone; returns ``(folder, bytes)`` for each."""
    removed: list[tuple[Path, int]] = []
    try:
        candidates = [p for p in out_dir.iterdir() if p.name.startswith(STAGING_PREFIX)]
    except OSError:
        return removed
    for folder in candidates:
        if not _is_stale(folder):
            continue
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append((folder, size))
    return removed


def _flush_folder(folder: Path) -> None:
    """fsync a folder so the renames in it survive a power cut (where folders can be flushed)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(err: OSError) -> str:
    """One readable reason for a failed write in the output folder."""
    if err.errno == errno.ENOSPC:
        return "no space left on device"
    if err.errno == getattr(errno, "EDQUOT", -1):
        return "disk quota exceeded"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: cannot write here"
    if err.errno == errno.EROFS:
        return "the drive is read-only"
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        return "a file is in the way where a folder should be"
    if err.errno == errno.ENAMETOOLONG:
        return "the name is too long"
    return f"cannot write here ({err.strerror or err})"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (blocking); no lock where flock is missing or refused (NFS)."""
    fd = -1
    if fcntl is not None:
        try:
            fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            if fd >= 0:
                os.close(fd)
            fd = -1
    try:
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StemSet:
    """A complete set read back from ``OUT/<song>/stems.json``: ``{stem name: file path}`` and the manifest."""

    folder: Path
    files: dict[str, Path]
    manifest: dict


def read_stem_set(folder: Path, verify: bool = False) -> StemSet | None:
    """The complete set in ``folder``, or None when there is none (no manifest, or files that do not match it).

    ``verify`` also checks each file's sha256 (reads every byte); by default the sizes are compared.
    """
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("stems"), dict):
            return None
        files = {}
        for stem, entry in manifest["stems"].items():
            path = folder / str(entry["file"])
            if Path(entry["file"]).name != entry["file"] or path.stat().st_size != int(entry["bytes"]):
                return None
            if verify and sha256_of(path) != entry["sha256"]:
                return None
            files[str(stem)] = path
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return StemSet(folder, files, manifest)


class StemSetWriter:
    """One song's set of stems on its way into ``out_dir/<song>`` (see the module docstring).

    Use :meth:`path_for` for each stem file to write (in the staging folder), then :meth:`commit`; :meth:`close`
    (also on any exception, as a context manager) removes the staging folder and whatever is left in it.
    """

    def __init__(self, out_dir: Path, song: str, info: dict | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.target = self.out_dir / song
        self.info = dict(info or {})
        self._fd = -1
        self._names: dict[str, str] = {}
        self.staging = self.out_dir / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        if song in ("", ".", "..") or Path(song).name != song:
            raise AudioSaveError(self.target, "is not a folder name inside the output folder")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.target.is_symlink() or self.target.resolve().parent != self.out_dir.resolve():
                raise AudioSaveError(self.target, "is a link out of the output folder: remove it or choose -o")
            self.staging.mkdir()
        except OSError as err:
            raise AudioSaveError(self.out_dir, _reason(err)) from None
        if fcntl is not None:
            try:
                self._fd = os.open(self.staging, os.O_RDONLY)
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # no flock here: the PID in the name protects the folder
                pass

    def path_for(self, stem: str, file_name: str) -> Path:
        """Where to write ``stem``'s file (``file_name``, e.g. ``vocals.wav``) before the commit."""
        self._names[stem] = file_name
        return self.staging / file_name

    def commit(self) -> list[Path]:
        """Move the written stems into ``out_dir/<song>`` as one set and write the manifest; returns their paths.

        Raises:
            AudioSaveError: naming the song folder and the reason (no space, read-only, a file in the way).
        """
        stems = {}
        for stem, name in self._names.items():
            staged = self.staging / name
            stems[stem] = {"file": name, "bytes": staged.stat().st_size, "sha256": sha256_of(staged)}
        manifest = {"format": MANIFEST_FORMAT, **self.info, "stems": stems,
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        final = []
        try:
            # Written in the staging folder first: the commit below needs no new space, only renames.
            atomic_write_json(self.staging / MANIFEST_FILE, manifest)
            self.target.mkdir(exist_ok=True)
            with _locked(self.target):
                (self.target / MANIFEST_FILE).unlink(missing_ok=True)
                _flush_folder(self.target)
                for name in self._names.values():
                    path = self.target / name
                    if path.is_dir():
                        raise AudioSaveError(path, "is a folder: remove it or choose another -o")
                    os.chmod(self.staging / name, file_mode(path))
                    os.replace(self.staging / name, path)
                    final.append(path)
                _flush_folder(self.target)
                os.replace(self.staging / MANIFEST_FILE, self.target / MANIFEST_FILE)
                _flush_folder(self.target)
        except OSError as err:
            raise AudioSaveError(self.target, _reason(err)) from None
        return final

    def close(self) -> None:
        """Remove the staging folder (after a commit it holds nothing) and release its lock."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> StemSetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
