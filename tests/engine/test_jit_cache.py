"""numba's cache for librosa: Shotoku's own folder, and one compiling process at a time (engine.analysis.jit_cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import filelock
import pytest

from engine.analysis import jit_cache
from engine.errors import SeparationCancelled

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A process state with nothing compiled yet and the cache in ``tmp_path``."""
    monkeypatch.setenv("SHOTOKU_CACHE", str(tmp_path))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(jit_cache, "_compiled", threading.Event())
    monkeypatch.setattr(jit_cache, "_locks", {})
    return tmp_path


def test_cache_folder_is_under_the_user_cache_unless_numba_cache_dir_is_set(fresh, monkeypatch) -> None:
    assert jit_cache.jit_cache_dir() == fresh / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "mine"))
    assert jit_cache.jit_cache_dir() == fresh / "mine"


def test_first_body_waits_for_the_lock_and_honours_cancel(fresh) -> None:
    holder = filelock.FileLock(str(jit_cache.configure() / jit_cache.LOCK_NAME))
    holder.acquire()  # another process compiling
    cancel = threading.Event()
    outcome: list[str] = []
    waiting = threading.Event()

    def first() -> None:
        waiting.set()
        try:
            with jit_cache.compiling(cancel):
                outcome.append("entered")
        except SeparationCancelled:
            outcome.append("cancelled")

    worker = threading.Thread(target=first)
    worker.start()
    waiting.wait()
    cancel.set()
    worker.join()
    assert outcome == ["cancelled"]  # it never entered while the lock was held
    holder.release()
    with jit_cache.compiling(threading.Event()):
        pass
    assert jit_cache._compiled.is_set()
    holder.acquire()  # once compiled, the process takes no lock
    try:
        with jit_cache.compiling(cancel):
            outcome.append("entered")
    finally:
        holder.release()
    assert outcome == ["cancelled", "entered"]


_ANALYSE = (
    "import numpy as np\n"
    "from engine.analysis.tempo_key import analyse\n"
    "t = np.arange(6 * 22050) / 22050\n"
    "x = (np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)[None]\n"
    "print(analyse(x, 22050).bpm > 0)\n"
)


def test_processes_started_together_leave_a_cache_later_processes_can_load(tmp_path) -> None:
    """numba issue #10128: two processes compiling librosa at once on an empty cache used to leave files that made
    the next process segfault (reproduced in 1 of 3 rounds before the lock)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["SHOTOKU_CACHE"] = str(tmp_path / "cache")
    run = [sys.executable, "-X", "faulthandler", "-c", _ANALYSE]
    together = [subprocess.Popen(run, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    results = [p.communicate() + (p.returncode,) for p in together]
    after = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True)
    results.append((after.stdout, after.stderr, after.returncode))
    for out, err, rc in results:
        assert rc == 0, err[-2000:]
        assert out.strip() == "True"
    assert list((tmp_path / "cache" / "numba").rglob("*.nbi")), "librosa's kernels were not cached in Shotoku's folder"
