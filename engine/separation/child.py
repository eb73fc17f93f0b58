"""The separation child process: what it runs, the cancel flag it shares with its parent, and how its end is told.

:class:`~engine.separation.streaming.StreamingSeparator` spawns :func:`child_main` (``multiprocessing`` "spawn")
in process mode. The child loads the model (a catalogue name is loaded here, so the app process never holds the
weights), separates the spans it is asked for into the stem store's file and reports regions, blocks and the end
through a pipe. It ignores SIGINT (Ctrl-C reaches the whole process group; the parent stops it) and ends quietly
when the parent closes the pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import SeparationCancelled, ShotokuError
from engine.separation.apply import iter_separated_blocks
from engine.separation.cache import drop_pages, region_crc

if TYPE_CHECKING:
    from engine.separation.runner import ChunkRunner


class ChildProcessDied(ShotokuError):
    """The separation child process ended without being asked to (killed, crashed); the message says how."""


def describe_exit(exitcode: int | None) -> str:
    """One line saying how the separation process ended, from ``multiprocessing``'s ``exitcode``
    (negative: the signal that killed it)."""
    if exitcode is None:
        return "the separation process stopped answering"
    if exitcode < 0:
        try:
            name = f", {signal.Signals(-exitcode).name}"
        except ValueError:
            name = ""
        return f"the separation process was killed (signal {-exitcode}{name})"
    return f"the separation process exited unexpectedly (exit code {exitcode})"


class SharedFlag:
    """A cancel flag both processes see: one byte of shared memory, no lock (a child killed at any moment can
    never leave it locked, as it could a ``multiprocessing.Event``). ``is_set``/``set``/``clear`` like an Event."""

    def __init__(self, ctx: multiprocessing.context.BaseContext) -> None:
        self._value = ctx.RawValue("b", 0)

    def is_set(self) -> bool:
        return bool(self._value.value)

    def set(self) -> None:
        self._value.value = 1

    def clear(self) -> None:
        self._value.value = 0


def child_main(conn, cancel, model, mix_path: str, mix_shape, stems_path: str, stems_shape, segment_samples: int,
                overlap: float, n_threads: int, nice: int, region_samples: int, device: str | None = None) -> None:
    """The separation process: runs ``model`` on requested spans and writes the stems into the store's file.

    ``model`` is a module, or a catalogue name loaded here (so the app process never holds the weights), run on
    ``device`` through a :class:`~engine.separation.runner.ChunkRunner` built on the first run (a failure there is
    reported as that run's error). For each region it completes it sends ``("region", k, crc)``, then drops those
    pages from its own mapping.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    mix = np.memmap(mix_path, dtype=np.float32, mode="r", shape=tuple(mix_shape))
    stems = np.memmap(stems_path, dtype=np.float32, mode="r+", shape=tuple(stems_shape))
    state: dict = {"model_fn": None}
    try:
        while True:
            message = conn.recv()
            if message[0] != "run":
                return
            _child_run(conn, cancel, model, device, n_threads, mix, stems, message[1], message[2], segment_samples,
                       overlap, region_samples, state)
    except (EOFError, ConnectionError):  # the parent closed the pipe (it stopped, or it died): nothing left to do
        return


def _child_run(conn, cancel, model, device: str | None, n_threads: int, mix: np.ndarray, stems: np.ndarray,
               start: int, stop: int, segment_samples: int, overlap: float, region_samples: int, state: dict) -> None:
    """One run of the child: separate ``[start, stop)`` into ``stems``, reporting regions, blocks and the end."""
    region = start // region_samples  # runs start on a region boundary
    n_samples = stems.shape[2]
    try:
        if state["model_fn"] is None:
            state["model_fn"] = _child_runner(model, device, n_threads)
        for block_start, block in iter_separated_blocks(
            state["model_fn"], mix, stems.shape[0], segment_samples, overlap, start=start, stop=stop,
            cancel=cancel, n_out_channels=stems.shape[1],
        ):
            done_until = block_start + block.shape[-1]
            stems[:, :, block_start:done_until] = block
            while region * region_samples < done_until:
                a, b = region * region_samples, min(n_samples, (region + 1) * region_samples)
                if b > done_until:
                    break
                conn.send(("region", region, region_crc(stems, a, b)))
                drop_pages(stems, a, b)
                region += 1
            drop_pages(mix, start, max(start, block_start - segment_samples))
            conn.send(("block", done_until))
        conn.send(("end",))
    except SeparationCancelled:
        conn.send(("cancelled",))
    except (EOFError, ConnectionError):
        raise  # the pipe: the caller ends the process
    except Exception as err:  # reported to the parent, which reports it to the user
        conn.send(("error", f"{type(err).__name__}: {err}"))


def _child_runner(model, device: str | None, n_threads: int) -> ChunkRunner:
    """The child's chunk runner: a catalogue name is loaded here; it runs on ``device`` (None: where it is)."""
    from engine.separation.runner import ChunkRunner

    if isinstance(model, str):
        from engine.models.catalogue import load_model

        model = load_model(model)
    target = None
    if device is not None:
        from engine.separation.device import select_device

        target = select_device(None if device == "auto" else device)
    return ChunkRunner(model, device=target, n_threads=n_threads)
