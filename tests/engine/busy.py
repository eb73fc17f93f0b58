"""What the playback tests need to play on a busy machine: a CPU load they start themselves, models whose chunks
take as long as the test says (importable by the separation child process), and waits on states, not clocks.

``busy_cores()`` starts one busy-loop process per core (at the test's own niceness, so they compete as equals) and
stops them by PID. ``SleepyModel`` marks a file when it enters a chunk and then sleeps (a model chunk that cannot
be interrupted); ``GainModel`` gives each stem a fixed multiple of the input, optionally held by a gate.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from engine.models.base import set_audio_format

#: Seconds a test waits for a state before it calls it a hang (never a correctness deadline).
HANG_TIMEOUT = 180.0


@contextlib.contextmanager
def busy_cores(n: int | None = None) -> Iterator[list[int]]:
    """Keep ``n`` cores (default: every core) busy with busy-loop processes for the block; yields their PIDs."""
    count = n or os.cpu_count() or 2
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        wait_for(lambda: all(_cpu_seconds(p.pid) >= 0.05 for p in procs), "the load processes to spin", 60)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def _cpu_seconds(pid: int) -> float:
    """CPU time a process has used (Linux ``/proc``); elsewhere 1.0, i.e. assume it runs."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 1.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = HANG_TIMEOUT, step: float = 0.01) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it never does within ``timeout`` (a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def pid_exists(pid: int) -> bool:
    """True while a process with this PID exists (a zombie not yet reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class SleepyModel(nn.Module):
    """Every stem is the input, but each chunk first touches ``marker`` and sleeps ``seconds``: a model chunk that
    takes long and cannot be interrupted. Picklable: the separation child process runs it."""

    def __init__(self, marker: str, seconds: float, segment_seconds: float = 0.5) -> None:
        super().__init__()
        set_audio_format(self, None, 44100, 2, segment_seconds)
        self.marker, self.seconds = marker, seconds
        self.scale = nn.Parameter(torch.ones(1), requires_grad=False)  # keys the stem cache on the instance

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``(n_batch, n_channels, n)`` -> ``(n_batch, n_stems, n_channels, n)``."""
        Path(self.marker).touch()
        time.sleep(self.seconds)
        return (mix * self.scale).unsqueeze(1).expand(-1, len(self.sources), -1, -1).clone()


class GainModel(nn.Module):
    """Stem ``s`` is ``gains[s]`` times the input. With a ``gate`` (thread mode only), each chunk waits for it.

    E.g. ``GainModel([1, 0, 0, 0])``: the vocals are the whole song and everything else is silent, so a karaoke
    mix (vocals muted) of its stems is silence, and anything audible came from elsewhere.
    """

    def __init__(self, gains: list[float], gate: threading.Event | None = None, segment_seconds: float = 0.5) -> None:
        super().__init__()
        set_audio_format(self, None, 44100, 2, segment_seconds)
        self.gains = nn.Parameter(torch.tensor(gains, dtype=torch.float32), requires_grad=False)
        self.gate = gate

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``(n_batch, n_channels, n)`` -> ``(n_batch, n_stems, n_channels, n)``."""
        if self.gate is not None and not self.gate.wait(HANG_TIMEOUT):
            raise RuntimeError("the test never opened the gate")
        return mix.unsqueeze(1) * self.gains.view(1, -1, 1, 1)
