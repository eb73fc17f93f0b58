"""A JACK server on the dummy driver, started and stopped by PID: real-time pacing without a sound card.

Used by the playback integration tests (fixtures ``jack_tools`` and ``jack`` in ``tests/conftest.py``) and by
``bench/realtime.py``. ``jackd2`` must be installed (CI's set-up installs it); when it is not, tests fail with a
message saying so, unless ``SHOTOKU_ALLOW_NO_JACK=1`` is set, in which case they are skipped with that reason.

The server runs with real-time scheduling (``jackd -R``, and so its clients' process threads, our audio callback
among them) where this process may use it, as a musician's sound server does; else ``--no-realtime``
(:data:`server_realtime` says which). Without it, every core kept busy by another program at the same priority
makes the callback late now and then whatever Shotoku does (measured: 6-36 underflows in 4 s with nothing but
the mixture playing, 0 with ``-R``), so only a real-time server can tell Shotoku's underruns from the machine's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

JACK_RATE = 44100
JACK_PERIOD = 512

#: Whether the server last started here runs with real-time scheduling (None before one started).
server_realtime: bool | None = None


@functools.cache
def realtime_allowed() -> bool:
    """True if processes started from here may use SCHED_FIFO (root, CAP_SYS_NICE or an rtprio limit)."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def jack_missing_reason() -> str | None:
    """Why a JACK dummy server cannot be started here, or None."""
    for tool in ("jackd", "jack_wait"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install jackd2)"
    return None


def require_jack() -> None:
    """Fail the calling test when JACK cannot run here, or skip it when ``SHOTOKU_ALLOW_NO_JACK=1`` says so."""
    import pytest

    reason = jack_missing_reason()
    if reason:
        if os.environ.get("SHOTOKU_ALLOW_NO_JACK") == "1":
            pytest.skip(f"JACK dummy server unavailable: {reason}")
        pytest.fail(f"JACK dummy server unavailable: {reason} (or set SHOTOKU_ALLOW_NO_JACK=1 to skip)")


def _portaudio():
    try:
        import sounddevice as sd
    except OSError:
        return None
    return sd


def _terminate_portaudio(sd) -> None:
    try:
        sd._terminate()
    except Exception:
        pass


def _reinit_portaudio() -> None:
    sd = _portaudio()
    if sd is not None:
        _terminate_portaudio(sd)
        sd._initialize()


def start_jack(rate: int = JACK_RATE, period: int = JACK_PERIOD, realtime: bool | None = None) -> subprocess.Popen:
    """Start ``jackd -d dummy`` (``-R`` when ``realtime``, default: when :func:`realtime_allowed`), wait until it
    answers, re-initialise PortAudio; returns the process."""
    global server_realtime
    reason = jack_missing_reason()
    if reason:
        raise RuntimeError(reason)
    realtime = realtime_allowed() if realtime is None else realtime
    # A server of this process's own: another test run on the machine (its own server) never shares our graph,
    # and we never connect to its server. libjack (PortAudio, jack_wait) reads the name from the environment.
    os.environ["JACK_DEFAULT_SERVER"] = f"shotoku-test-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(
        ["jackd", "-n", os.environ["JACK_DEFAULT_SERVER"], "-R" if realtime else "--no-realtime", "-d", "dummy",
         "-r", str(rate), "-p", str(period)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    ok = subprocess.run(["jack_wait", "-w", "-t", "10"], env=env, capture_output=True, timeout=15)
    if ok.returncode != 0 or proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None else ""
        kill_jack(proc)
        raise RuntimeError(f"jackd did not come up: {ok.stdout.decode().strip()} {err}")
    server_realtime = realtime
    time.sleep(0.2)
    _reinit_portaudio()
    return proc


def kill_jack(proc: subprocess.Popen) -> None:
    """Stop the server ``proc`` by its PID (SIGTERM, then SIGKILL), without touching PortAudio."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()


@contextlib.contextmanager
def jack_server(rate: int = JACK_RATE, period: int = JACK_PERIOD) -> Iterator[int]:
    """Run a JACK dummy server for the duration of the block; yields its PID.

    PortAudio is re-initialised once the server is up, and terminated *before* the server is stopped
    (PortAudio's JACK back end aborts the process if it is terminated after its server vanished).
    """
    proc = start_jack(rate, period)
    try:
        yield proc.pid
    finally:
        sd = _portaudio()
        if sd is not None:
            _terminate_portaudio(sd)
        kill_jack(proc)
        if sd is not None:
            sd._initialize()
