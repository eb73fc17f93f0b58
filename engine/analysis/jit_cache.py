"""numba's on-disk cache for librosa's kernels: a folder of Shotoku's own, compiled by one process at a time.

librosa compiles its kernels with numba (``cache=True``). By default numba writes the compiled code beside
librosa's sources: inside the venv, or inside a PyInstaller bundle. And numba's cache is not safe when two
processes compile the same gufunc at once (numba issue #10128, open at numba 0.68: the two processes number the
functions differently, the ``.nbc`` files they leave behind disagree, and every later process that loads them
calls a null pointer). Reproduced here: two analyses of the demo song started together on an empty cache, then a
third one alone; in one of three rounds the third process segfaulted in librosa's ``_parabolic_interpolation``
(``chroma_cqt`` -> ``estimate_tuning``), and so did every process after it. The app crashed in the same place
after the test suite had filled the venv's cache.

So librosa is imported only through :func:`import_librosa`, which first points numba at
``cache_dir()/numba`` (unless ``NUMBA_CACHE_DIR`` is already set), and the first analysis of each process runs
inside :func:`compiling`, an inter-process lock on a file in that folder (``filelock``, the well-kept library
for this). It serialises only the compiling: once one analysis has finished in a process, its kernels are in
memory and later analyses take no lock. Written here because neither numba nor librosa offers either guard.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from engine.errors import SeparationCancelled
from engine.paths import cache_dir

log = logging.getLogger(__name__)

#: Name of the lock file inside the numba cache folder.
LOCK_NAME = "compile.lock"
#: How often a wait for the lock looks at its cancel event (seconds).
POLL_SECONDS = 0.2

_compiled = threading.Event()  # set once an analysis has run to its end in this process


def jit_cache_dir() -> Path:
    """numba's cache folder for Shotoku: ``NUMBA_CACHE_DIR`` when set, else ``cache_dir()/numba``."""
    override = os.environ.get("NUMBA_CACHE_DIR")
    return Path(override) if override else cache_dir() / "numba"


def configure() -> Path | None:
    """Point numba at :func:`jit_cache_dir` before librosa is imported; the folder, or None when it cannot be
    made (numba then falls back to its own locations).

    Sets ``NUMBA_CACHE_DIR`` (child processes inherit it) and, when numba is already imported, its config.
    """
    folder = jit_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.info("numba cache folder %s not usable (%s): numba's default is used", folder, err)
        return None
    os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None and not getattr(numba_config, "CACHE_DIR", ""):
        numba_config.CACHE_DIR = str(folder)
    return folder


def import_librosa() -> ModuleType:
    """librosa, imported after :func:`configure`."""
    if "librosa" not in sys.modules:
        configure()
    import librosa

    return librosa


@contextlib.contextmanager
def compiling(cancel: threading.Event | None = None) -> Iterator[None]:
    """Hold the inter-process compile lock around the body until one body has finished in this process.

    Waiting for the lock watches ``cancel`` and raises :class:`SeparationCancelled` when it is set. A lock
    file that cannot be made is logged and skipped (the body then runs unguarded, as without this module).
    """
    if _compiled.is_set():
        yield
        return
    lock = _lock()
    with _held(lock, cancel) if lock is not None else contextlib.nullcontext():
        yield
        _compiled.set()


@contextlib.contextmanager
def _held(lock, cancel: threading.Event | None) -> Iterator[None]:
    """``lock`` held around the body; the wait for it polls ``cancel`` every :data:`POLL_SECONDS`."""
    import filelock

    while True:
        if cancel is not None and cancel.is_set():
            raise SeparationCancelled()
        try:
            lock.acquire(timeout=POLL_SECONDS)
            break
        except filelock.Timeout:
            continue
    try:
        yield
    finally:
        lock.release()


_locks: dict[str, object] = {}
_locks_guard = threading.Lock()


def _lock():
    """The process's :class:`filelock.FileLock` on the compile lock file (one per folder), or None."""
    import filelock

    folder = configure()
    if folder is None:
        return None
    path = str(folder / LOCK_NAME)
    with _locks_guard:
        lock = _locks.get(path)
        if lock is None:
            try:
                Path(path).touch(exist_ok=True)
            except OSError as err:
                log.info("numba compile lock %s not usable (%s): compiling unguarded", path, err)
                return None
            # thread_local (the default): threads of this process wait for each other like processes do
            lock = _locks[path] = filelock.FileLock(path)
        return lock
