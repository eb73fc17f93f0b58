"""Streaming separation: a background worker that fills a stem store region by region, ahead of the play position.

The worker (a plain ``threading.Thread``; no Qt) repeatedly picks the first region at or after the priority
position (wrapping to the start of the song) that is not ready, then either re-verifies it (a region recorded by an
earlier session: CRC check) or separates a run of regions from there up to the next ready one with
:func:`engine.separation.apply.iter_separated_blocks`. Each region is announced through ``on_ready(k)`` as soon as
its samples are final. :meth:`StreamingSeparator.prioritise` (called on seek) cancels the current run when the new
position is not just ahead of it, so the work always starts where the listener is.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import SeparationCancelled
from engine.separation.apply import ModelFn, iter_separated_blocks
from engine.separation.cache import DATA_FILE, StemEntry, drop_pages, region_crc

if TYPE_CHECKING:
    from engine.separation.runner import ChunkRunner

log = logging.getLogger(__name__)


def default_worker_threads() -> int:
    """Torch threads for the separation worker: all cores but one (the audio thread's), at least 1."""
    return max(1, (os.cpu_count() or 1) - 1)


class StreamingSeparator:
    """Separates ``mix`` into ``entry`` in the background, starting at a priority position.

    Args:
        model_fn: chunk function ``(n_in_channels, n) -> (n_stems, n_channels, n)``, usually a
            :class:`~engine.separation.runner.ChunkRunner` (thread mode; None in process mode).
        mix: ``(n_channels, n_samples)`` float32 at the model's rate (``entry.n_samples`` long).
        entry: the stem store entry to fill (regions recorded by earlier sessions are re-verified, not recomputed).
        segment_samples: the model's chunk length.
        overlap: chunk overlap for the overlap-add.
        on_ready: called from the worker thread with a region index when that region's stems are final.
        on_error: called from the worker thread with a message if the separation fails (the worker then stops).
        nice: niceness added to the thread (or child process) running the model, so the audio thread and the
            sound server win the CPU when cores are short. 0 leaves it alone.
        process_model: a picklable model (nn.Module) or a catalogue name; when given, the model runs in a child
            process (spawned once per separator, through a :class:`~engine.separation.runner.ChunkRunner`) instead
            of ``model_fn`` in this process. The child writes the stem samples straight into the store's file;
            this process records regions and announces them. The audio callback then never waits for the GIL
            behind the model (see docs: real-time).
        n_threads: torch threads of the child process (process mode; default :func:`default_worker_threads`).
        device: compute device the child process runs the model on (process mode; None/"auto": the best one).
            An unusable device is reported through ``on_error`` like any other failure.

    ``mix`` may have more channels than the stems (an oracle model's mixture followed by its reference stems):
    the model's output has ``entry``'s channel count.
    """

    def __init__(
        self,
        model_fn: ModelFn | None,
        mix: np.ndarray,
        entry: StemEntry,
        segment_samples: int,
        overlap: float = 0.25,
        on_ready: Callable[[int], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        nice: int = 10,
        process_model=None,
        n_threads: int | None = None,
        device: str | None = None,
    ) -> None:
        if mix.shape[-1] != entry.n_samples:
            raise ValueError(f"mix has {mix.shape[-1]} samples, the store entry {entry.n_samples}")
        self.model_fn = model_fn
        self.mix = mix
        self.entry = entry
        self.segment_samples = int(segment_samples)
        self.overlap = overlap
        self.on_ready = on_ready
        self.on_error = on_error
        self.nice = int(nice)
        self.process_model = process_model
        self.n_threads = n_threads or default_worker_threads()
        self.device = device
        self._child = None
        self._conn = None
        self._child_crcs: dict[int, int] = {}
        #: ``(n_regions,)`` uint8: 1 once the region is final *and* verified in this session.
        self.ready = np.zeros(entry.n_regions, dtype=np.uint8)
        self.error: str | None = None
        self.regions_separated = 0  #: regions computed by the model in this session
        self.regions_verified = 0  #: regions taken from the cache after a CRC check
        self.busy_seconds = 0.0  #: time spent separating (wall clock)
        self._priority = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        if process_model is not None:
            import multiprocessing

            self._ctx = multiprocessing.get_context("spawn")
            self._run_cancel = self._ctx.Event()
        else:
            self._run_cancel = threading.Event()
        self._run_cursor = -1  # next sample of the current run, -1 when not in a run
        self._run_stop = -1
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    @property
    def cursor(self) -> int:
        """How far the current run is final (model-rate samples): the next sample it will finish; -1 between runs.

        A player compares it with the play position to notice that playback overtook the work
        (see :meth:`engine.playback.background.BackgroundSeparation.follow`).
        """
        return self._run_cursor

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="shotoku-separation", daemon=True)
            self._thread.start()

    def prioritise(self, sample: int) -> None:
        """Work from ``sample`` (model-rate samples) next: cancels the current run unless it is just ahead."""
        self._priority = int(min(max(0, sample), max(0, self.entry.n_samples - 1)))
        cursor, stop = self._run_cursor, self._run_stop
        region = self.entry.region_samples
        if cursor >= 0 and not (cursor - region <= self._priority < min(stop, cursor + 2 * region)):
            self._run_cancel.set()
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the worker and wait for it (it stops between chunks)."""
        self._stop.set()
        self._run_cancel.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def done(self) -> bool:
        """True when every region is ready."""
        return bool(self.ready.all())

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block until every region is ready, the worker failed or ``timeout`` passed; returns :attr:`done`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done and self.error is None and self.alive:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return self.done

    # ------------------------------------------------------------------ worker
    def _next_region(self) -> int | None:
        n = self.entry.n_regions
        first = self.entry.region_of(self._priority)
        for i in range(n):
            k = (first + i) % n
            if not self.ready[k]:
                return k
        return None

    def _announce(self, k: int) -> None:
        self.ready[k] = 1
        if self.on_ready is not None:
            self.on_ready(k)

    def _lower_priority(self) -> None:
        if self.nice <= 0 or not hasattr(os, "setpriority"):
            return
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
        except OSError as err:  # not permitted, or not Linux semantics: run at normal priority
            log.info("could not lower the separation thread's priority: %s", err)

    def _main(self) -> None:
        if self.process_model is None:
            self._lower_priority()
        try:
            while not self._stop.is_set():
                k = self._next_region()
                if k is None:
                    self._wake.wait(0.5)  # all done: nothing to do but exit when told
                    self._wake.clear()
                    if self.done:
                        break
                    continue
                if self.entry.recorded[k]:
                    if self.entry.verify(k):
                        self.regions_verified += 1
                        self._announce(k)
                        continue
                self._separate_run(k)
        except Exception as err:  # the worker must never die silently: report and stop
            self.error = f"separation failed: {err}"
            log.exception("streaming separation failed")
            if self.on_error is not None:
                self.on_error(self.error)
        finally:
            self._run_cursor = -1
            self._stop_child()

    def _separate_run(self, k: int) -> None:
        """Separate regions ``k, k+1, ...`` up to the next ready or recorded region (or the end)."""
        entry = self.entry
        last = k
        while last + 1 < entry.n_regions and not self.ready[last + 1] and not entry.recorded[last + 1]:
            last += 1
        start = entry.region_bounds(k)[0]
        stop = entry.region_bounds(last)[1]
        self._run_cancel.clear()
        self._run_cursor, self._run_stop = start, stop
        region = k
        started = time.perf_counter()
        try:
            blocks = self._remote_run(start, stop) if self.process_model is not None else self._local_run(start, stop)
            for done_until in blocks:
                if self._stop.is_set():
                    return
                self._run_cursor = done_until
                while region <= last and entry.region_bounds(region)[1] <= done_until:
                    entry.mark_done(region, self._child_crcs.pop(region, None))
                    self.regions_separated += 1
                    self._announce(region)
                    region += 1
        except SeparationCancelled:
            pass
        finally:
            self.busy_seconds += time.perf_counter() - started
            self._run_cursor = -1

    def _local_run(self, start: int, stop: int) -> Iterator[int]:
        """Separate ``[start, stop)`` in this thread, writing the store; yields how far it is final."""
        for block_start, block in iter_separated_blocks(
            self.model_fn, self.mix, len(self.entry.sources), self.segment_samples, self.overlap,
            start=start, stop=stop, cancel=self._run_cancel, n_out_channels=self.entry.stems.shape[1],
        ):
            self.entry.write(block_start, block)
            yield block_start + block.shape[-1]

    # ------------------------------------------------------------------ process mode
    def _start_child(self) -> None:
        mix_file = tempfile.NamedTemporaryFile(prefix="shotoku-mix-", suffix=".f32", delete=False)
        with mix_file:
            flat = np.ascontiguousarray(self.mix, dtype=np.float32).reshape(-1).view(np.uint8)
            for offset in range(0, flat.size, 1 << 22):  # file writes release the GIL; one big tofile may not
                mix_file.write(flat[offset:offset + (1 << 22)].data)
        self._mix_path = mix_file.name
        parent, child = self._ctx.Pipe()
        self._conn = parent
        child_process = self._ctx.Process(
            target=_child_main, name="shotoku-separation",
            args=(child, self._run_cancel, self.process_model, self._mix_path, self.mix.shape,
                  str(self.entry.path / DATA_FILE), self.entry.stems.shape, self.segment_samples, self.overlap,
                  self.n_threads, self.nice, self.entry.region_samples, self.device),
            daemon=True,
        )
        try:
            child_process.start()
        finally:
            child.close()
        self._child = child_process

    def _remote_run(self, start: int, stop: int) -> Iterator[int]:
        """Ask the child process to separate ``[start, stop)``; yields how far it is final."""
        if self._child is None:
            self._start_child()
        conn = self._conn
        conn.send(("run", start, stop))
        while True:
            while not conn.poll(0.2):
                if self._stop.is_set():
                    self._run_cancel.set()
                if not self._child.is_alive():
                    raise RuntimeError(f"the separation process died (exit code {self._child.exitcode})")
            message = conn.recv()
            if message[0] == "region":
                self._child_crcs[message[1]] = message[2]
            elif message[0] == "block":
                yield message[1]
            elif message[0] == "end":
                return
            elif message[0] == "cancelled":
                raise SeparationCancelled()
            else:
                raise RuntimeError(message[1])

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return
        try:
            self._conn.send(("quit",))
        except OSError:
            pass
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join(5)
        self._conn.close()
        try:
            os.unlink(self._mix_path)
        except OSError:
            pass


def _child_main(conn, cancel, model, mix_path: str, mix_shape, stems_path: str, stems_shape, segment_samples: int,
                overlap: float, n_threads: int, nice: int, region_samples: int, device: str | None = None) -> None:
    """The separation process: runs ``model`` on requested spans and writes the stems into the store's file.

    ``model`` is a module, or a catalogue name loaded here (so the app process never holds the weights), run on
    ``device`` through a :class:`~engine.separation.runner.ChunkRunner` built on the first run (a failure there is
    reported as that run's error). For each region it completes it sends ``("region", k, crc)``, then drops those
    pages from its own mapping.
    """
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    mix = np.memmap(mix_path, dtype=np.float32, mode="r", shape=tuple(mix_shape))
    stems = np.memmap(stems_path, dtype=np.float32, mode="r+", shape=tuple(stems_shape))
    model_fn = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] != "run":
            return
        _, start, stop = message
        region = start // region_samples  # runs start on a region boundary
        n_samples = stems_shape[2]
        try:
            if model_fn is None:
                model_fn = _child_runner(model, device, n_threads)
            for block_start, block in iter_separated_blocks(
                model_fn, mix, stems_shape[0], segment_samples, overlap, start=start, stop=stop, cancel=cancel,
                n_out_channels=stems_shape[1],
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
