"""A JACK server on the dummy driver, started and stopped by PID: real-time pacing without a sound card.

Used by the playback integration tests (fixtures ``jack_tools`` and ``jack`` in ``tests/conftest.py``) and by
``bench/realtime.py``. ``jackd2`` must be installed (CI's set-up installs it); when it is not, tests fail with a
message saying so, unless ``SHOTOKU_ALLOW_NO_JACK=1`` is set, in which case they are skipped with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

JACK_RATE = 44100
JACK_PERIOD = 512


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


def start_jack(rate: int = JACK_RATE, period: int = JACK_PERIOD) -> subprocess.Popen:
    """Start ``jackd --no-realtime -d dummy``, wait until it answers, re-initialise PortAudio; returns the process."""
    reason = jack_missing_reason()
    if reason:
        raise RuntimeError(reason)
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-d", "dummy", "-r", str(rate), "-p", str(period)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    ok = subprocess.run(["jack_wait", "-w", "-t", "10"], env=env, capture_output=True, timeout=15)
    if ok.returncode != 0 or proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None else ""
        kill_jack(proc)
        raise RuntimeError(f"jackd did not come up: {ok.stdout.decode().strip()} {err}")
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
