"""Streaming separation: a background worker that fills a stem store region by region, ahead of the play position.

The worker (a plain ``threading.Thread``; no Qt) repeatedly picks the first region at or after the priority
position (wrapping to the start of the song) that is not ready, then either re-verifies it (a region recorded by an
earlier session: CRC check) or separates a run of regions from there up to the next ready one with
:func:`engine.separation.apply.iter_separated_blocks`. Each region is announced through ``on_ready(k)`` as soon as
its samples are final. :meth:`StreamingSeparator.prioritise` (called on seek) cancels the current run when the new
position is not just ahead of it, so the work always starts where the listener is.

Stopping is bounded (:data:`STOP_BOUND`): the worker never waits on a model chunk. In process mode a child that
does not answer within :data:`CHILD_GRACE` is terminated, then killed, so :meth:`StreamingSeparator.stop` returns
with the thread and the child gone whatever the machine's load (a half-written region is never recorded: the store
records a region only once the child announced it complete). A child that dies on its own ends the worker with a
one-line :attr:`~StreamingSeparator.error` naming the exit code or signal.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from engine.errors import SeparationCancelled, ShotokuError
from engine.separation.apply import ModelFn, iter_separated_blocks
from engine.separation.cache import DATA_FILE, StemEntry
from engine.separation.child import ChildProcessDied, SharedFlag, child_main, describe_exit
from engine.separation.runner import default_threads

log = logging.getLogger(__name__)

#: Seconds the child process gets to answer (a cancel, a quit) before it is terminated, and then again before it
#: is killed.
CHILD_GRACE = 1.0
#: What :meth:`StreamingSeparator.stop` promises in process mode (seconds): the worker thread and the child
#: process have ended when it returns. (Poll 0.1 + cancel grace + terminate grace + kill grace, with a margin.)
STOP_BOUND = 5.0


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
        n_threads: torch threads of the child process (process mode; default: the one thread rule,
            :func:`~engine.separation.runner.default_threads`).
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
        self.n_threads = n_threads or default_threads()
        self.device = device
        self._child = None
        self._conn = None
        self._child_idle = False  # the child waits for a command (it answered the last run)
        self._child_lock = threading.Lock()  # the child's hand-over between the worker thread and stop()
        self._mix_path: str | None = None
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
        self._run_cancel: SharedFlag | threading.Event
        if process_model is not None:
            self._ctx = multiprocessing.get_context("spawn")
            self._run_cancel = SharedFlag(self._ctx)
        else:
            self._run_cancel = threading.Event()
        self._run_cursor = -1  # next sample of the current run, -1 when not in a run
        self._run_stop = -1
        # Choosing the next run and publishing its cursor is one step for prioritise(): a seek that arrives in
        # between would otherwise find no run to cancel and the worker would carry on from the old position.
        self._plan_lock = threading.Lock()
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
        with self._plan_lock:
            self._priority = int(min(max(0, sample), max(0, self.entry.n_samples - 1)))
            cursor, stop = self._run_cursor, self._run_stop
            region = self.entry.region_samples
            if cursor >= 0 and not (cursor - region <= self._priority < min(stop, cursor + 2 * region)):
                self._run_cancel.set()
        self._wake.set()

    def stop(self, timeout: float | None = STOP_BOUND) -> bool:
        """Stop the worker and wait for it, at most ``timeout`` seconds; True when everything it ran has ended.

        Process mode: within :data:`STOP_BOUND` the worker thread has ended and the child process is gone
        (asked to quit, else terminated, else killed; it is never waited on for a model chunk). Thread mode: the
        model runs in the worker thread, which stops after the chunk in progress (``timeout`` bounds the wait;
        False when the chunk outlasts it: the daemon thread then ends by itself after that chunk).
        """
        self._stop.set()
        self._run_cancel.set()
        self._wake.set()
        thread = self._thread
        deadline = None if timeout is None else time.monotonic() + timeout
        if thread is not None and thread is not threading.current_thread():
            # leave time for the backstop below to kill the child if the thread is stuck elsewhere
            reserve = 3 * CHILD_GRACE if self.process_model is not None else 0.0
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic() - reserve))
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            self._stop_child()  # no-op when the worker thread did it
        else:
            self._stop_child(kill=True)  # backstop: the thread is stuck (in the mix file write, in a callback)
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.alive and self._child is None

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

    def _lower_priority(self) -> bool:
        """Add :attr:`nice` to the calling thread's niceness (Linux: per thread); True if it did."""
        if self.nice <= 0 or not hasattr(os, "setpriority"):
            return False
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
            return True
        except OSError as err:  # not permitted, or not Linux semantics: run at normal priority
            log.info("could not lower the separation thread's priority: %s", err)
            return False

    def _main(self) -> None:
        if self.process_model is None:
            self._lower_priority()
        try:
            while not self._stop.is_set():
                with self._plan_lock:
                    k = self._next_region()
                    if k is not None and not self.entry.recorded[k]:
                        last = self._plan_run(k)
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
                    continue  # else verify() forgot the region: it is planned like any other, where the listener is
                self._separate_run(k, last)
        except Exception as err:  # the worker must never die silently: report (one line) and stop
            self.error = str(err) if isinstance(err, ShotokuError) else f"{type(err).__name__}: {err}"
            if isinstance(err, ShotokuError):
                log.warning("streaming separation stopped: %s", self.error)
            else:
                log.warning("streaming separation failed: %s", self.error)
                log.debug("streaming separation failed", exc_info=True)
            if self.on_error is not None:
                self.on_error(self.error)
        finally:
            self._run_cursor = -1
            self._stop_child()

    def _plan_run(self, k: int) -> int:
        """The run from region ``k`` up to the next ready or recorded region: publish it (cursor, stop, a clear
        cancel flag) and return its last region. Call with ``_plan_lock`` held."""
        entry = self.entry
        last = k
        while last + 1 < entry.n_regions and not self.ready[last + 1] and not entry.recorded[last + 1]:
            last += 1
        self._run_cancel.clear()
        self._run_cursor, self._run_stop = entry.region_bounds(k)[0], entry.region_bounds(last)[1]
        return last

    def _separate_run(self, k: int, last: int) -> None:
        """Separate regions ``k .. last`` (planned by :meth:`_plan_run`), announcing each as it becomes final."""
        entry = self.entry
        start, stop = self._run_cursor, self._run_stop
        if self._run_cancel.is_set():  # the listener moved between planning and here
            self._run_cursor = -1
            return
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
        """Write the model input to a temporary file and spawn the child process (niced from its first instruction)."""
        mix_file = tempfile.NamedTemporaryFile(prefix="shotoku-mix-", suffix=".f32", delete=False)
        self._mix_path = mix_file.name
        with mix_file:
            flat = np.ascontiguousarray(self.mix, dtype=np.float32).reshape(-1).view(np.uint8)
            for offset in range(0, flat.size, 1 << 22):  # file writes release the GIL; one big tofile may not
                if self._stop.is_set():
                    raise SeparationCancelled()
                mix_file.write(flat[offset:offset + (1 << 22)].data)
        parent, child = self._ctx.Pipe()
        started: list = []

        def spawn() -> None:
            # A child inherits the niceness of the thread that forks it: lowered here (a thread that only
            # spawns), the child's interpreter start-up and torch import already yield to the audio thread.
            child_nice = 0 if self._lower_priority() else self.nice
            process = self._ctx.Process(
                target=child_main, name="shotoku-separation",
                args=(child, self._run_cancel, self.process_model, self._mix_path, self.mix.shape,
                      str(self.entry.path / DATA_FILE), self.entry.stems.shape, self.segment_samples, self.overlap,
                      self.n_threads, child_nice, self.entry.region_samples, self.device),
                daemon=True,
            )
            process.start()
            started.append(process)

        errors: list[BaseException] = []
        spawner = threading.Thread(target=_capture, args=(spawn, errors), name="shotoku-spawn", daemon=True)
        try:
            spawner.start()
            spawner.join()
        finally:
            child.close()
        if errors or not started:
            parent.close()
            raise errors[0] if errors else ShotokuError("the separation process did not start")
        child_process = started[0]
        with self._child_lock:
            self._conn, self._child, self._child_idle = parent, child_process, True

    def _remote_run(self, start: int, stop: int) -> Iterator[int]:
        """Ask the child process to separate ``[start, stop)``; yields how far it is final.

        Raises :class:`ChildProcessDied` (one line: exit code or signal) when the child ends on its own. Once
        :meth:`stop` is asked for, it waits at most :data:`CHILD_GRACE` for the child to acknowledge, then returns
        (the child is then terminated by :meth:`_stop_child`): it never waits for a model chunk to finish.
        """
        if self._child is None:
            self._start_child()
        conn, child = self._conn, self._child
        assert conn is not None and child is not None
        self._child_idle = False
        self._send(conn, child, ("run", start, stop))
        stop_asked: float | None = None
        while True:
            while not conn.poll(0.1):
                if self._stop.is_set():
                    self._run_cancel.set()
                    stop_asked = stop_asked or time.monotonic()
                    if time.monotonic() - stop_asked > CHILD_GRACE:
                        return
                if not child.is_alive():
                    if self._stop.is_set():
                        return  # stop() ended it
                    raise ChildProcessDied(self._death(child))
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the child closed its end: it died (or is dying)
                if self._stop.is_set():
                    return
                raise ChildProcessDied(self._death(child)) from None
            if message[0] == "region":
                self._child_crcs[message[1]] = message[2]
            elif message[0] == "block":
                yield message[1]
            elif message[0] == "end":
                self._child_idle = True
                return
            elif message[0] == "cancelled":
                self._child_idle = True
                raise SeparationCancelled()
            else:
                self._child_idle = True
                raise ShotokuError(message[1])

    def _send(self, conn, child, message: tuple) -> None:
        try:
            conn.send(message)
        except (OSError, ValueError):  # broken pipe: the child is gone
            raise ChildProcessDied(self._death(child)) from None

    @staticmethod
    def _death(child) -> str:
        """How ``child`` ended (it may still be exiting: give it a moment to be reaped)."""
        child.join(CHILD_GRACE)
        return describe_exit(child.exitcode)

    def _stop_child(self, kill: bool = False) -> None:
        """End the child process: ask it to quit when it is idle, else (or if it does not) terminate it, then kill
        it; bounded by ``3 * CHILD_GRACE``. ``kill``: skip the polite steps. Idempotent, any thread."""
        with self._child_lock:
            child, self._child = self._child, None
            conn, self._conn = self._conn, None
            idle = self._child_idle and not kill
        if child is not None:
            if idle and conn is not None:
                try:
                    conn.send(("quit",))
                    child.join(CHILD_GRACE)
                except (OSError, ValueError):
                    pass
            if child.is_alive() and not kill:
                child.terminate()
                child.join(CHILD_GRACE)
            if child.is_alive():
                child.kill()
                child.join(CHILD_GRACE)
            if child.is_alive():
                log.warning("the separation process %s did not end after SIGKILL", child.pid)
        if conn is not None:
            conn.close()
        if child is not None and self._mix_path is not None:
            try:
                os.unlink(self._mix_path)
            except OSError:
                pass


def _capture(function: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        function()
    except BaseException as err:  # handed to the calling thread
        errors.append(err)
