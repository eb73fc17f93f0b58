"""Run ``shotoku`` as a child process the way a user does, and read what it left behind.

:func:`run_shotoku` fails the test (instead of hanging it) when the command runs past a generous limit, and can
run the command without root's right to ignore file permissions (:func:`drop_permission_override`): the tests run
as root here and in CI, where ``chmod 000`` stops nobody.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
#: ``python -m app`` through a wrapper that reports the child's own peak memory (see peak_main.py).
CLI = [sys.executable, str(Path(__file__).with_name("peak_main.py"))]
#: Seconds without any output that count as a hang (a refusal takes about a second; a long run prints progress).
HANG_SECONDS = 240.0
#: A run that keeps printing is still stopped after this long (a loop that never ends).
MAX_RUN_SECONDS = 3600.0
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


@dataclass
class Result:
    """A finished command: exit code, stdout, stderr, and the child's peak resident memory in MB."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float

    def lines(self, prefix: str = "") -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(prefix)]


def drop_permission_override() -> None:
    """In a child before ``exec``: give up CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so root obeys file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def permissions_bind(tmp: Path) -> str | None:
    """None when a command run by :func:`run_shotoku` with ``unprivileged=True`` is stopped by ``chmod 000``;
    otherwise why not (the reason to skip)."""
    probe = tmp / "probe-unreadable"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        result = subprocess.run([sys.executable, "-c", f"open({str(probe)!r}, 'rb')"], capture_output=True,
                                preexec_fn=drop_permission_override if os.geteuid() == 0 else None, timeout=60)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as err:
        return f"cannot run a child without root's permission override ({err})"
    finally:
        probe.chmod(0o600)
        probe.unlink()
    return None if result.returncode != 0 else "a mode-000 file stays readable here"


def run_shotoku(*args: str | Path, unprivileged: bool = False, timeout: float = HANG_SECONDS,
                env: dict[str, str] | None = None) -> Result:  # fmt: skip
    """Run ``python -m app ARGS`` from the repository root and wait for it; fail the test if it runs past
    ``timeout`` seconds without a byte of output (a hang; progress lines keep a slow run on a busy machine alive,
    up to ``MAX_RUN_SECONDS``). The result carries the child's own peak RSS (``VmHWM``, see peak_main.py)."""
    import pytest

    command = [*CLI, *(os.fspath(a) for a in args)]
    fd, peak_file = tempfile.mkstemp(prefix="shotoku-peak-", suffix=".txt")
    os.close(fd)
    process = start_shotoku(*args, unprivileged=unprivileged, env={**(env or {}), "SHOTOKU_PEAK_RSS_FILE": peak_file})
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    last_output = [time.monotonic()]

    def drain(name: str, stream: IO[bytes]) -> None:
        while block := stream.read1(65536):  # type: ignore[attr-defined]
            chunks[name].append(block)
            last_output[0] = time.monotonic()

    readers = [threading.Thread(target=drain, args=item, daemon=True)
               for item in (("out", process.stdout), ("err", process.stderr))]  # fmt: skip
    for reader in readers:
        reader.start()
    hung, done = threading.Event(), threading.Event()

    def watch() -> None:  # a hang is silence, not slowness: a busy machine may take long, with progress lines
        started = time.monotonic()
        while not done.wait(1.0):
            now = time.monotonic()
            if now - last_output[0] > timeout or now - started > MAX_RUN_SECONDS:
                hung.set()
                process.kill()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        done.set()
        watcher.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(30)
    stderr = b"".join(chunks["err"]).decode("utf-8", "surrogateescape")
    if hung.is_set():
        pytest.fail(f"`shotoku {' '.join(map(ascii, command[3:]))}` hung (no output for {timeout:.0f} s); "
                    f"stderr: {stderr[-2000:]}")  # fmt: skip
    peak_kb = Path(peak_file).read_text(encoding="ascii").strip()
    os.unlink(peak_file)
    # a child killed before its atexit ran reports nothing: fall back on ru_maxrss (an upper bound, see peak_main.py)
    peak_mb = int(peak_kb) / 1024 if peak_kb.isdigit() else usage.ru_maxrss / 1024
    return Result(process.returncode, b"".join(chunks["out"]).decode("utf-8", "surrogateescape"), stderr, peak_mb)


def start_shotoku(*args: str | Path, unprivileged: bool = False, env: dict[str, str] | None = None,
                  **popen: Any) -> subprocess.Popen:  # fmt: skip
    """Start ``python -m app ARGS`` (stdout and stderr piped, stdin closed) and return the process."""
    drop = unprivileged and os.geteuid() == 0

    def preexec() -> None:  # Ctrl-C reaches the child even when this run was started in the background
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if drop:
            drop_permission_override()

    return subprocess.Popen([*CLI, *(os.fspath(a) for a in args)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), **popen)  # fmt: skip


def error_lines(result: Result) -> list[str]:
    """The ``shotoku: error:`` lines of a run's stderr."""
    return [line for line in result.stderr.splitlines() if re.match(r"shotoku( \w+)?: error:", line)]


def leftovers(folder: Path) -> list[Path]:
    """Hidden files or folders and temporary ``.part`` files anywhere under ``folder``."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".part"))
