"""``BackgroundSeparation``: one song separated by one model into the stem store, off the playback path (no Qt).

Starting it returns at once; a thread of its own first closes the separation it replaces (so two workers never
write one store entry), hashes the model input for the cache key, opens the store entry and starts the streaming
worker (:class:`~engine.separation.streaming.StreamingSeparator`) at the play position. What a player needs of it
is small: :attr:`stems` and :attr:`regions_ready` to read, :attr:`cursor` and :meth:`follow` to keep the work ahead
of the listener, :meth:`seek` when the listener jumps, :attr:`done` / :attr:`error`, and :meth:`close`.

:meth:`BackgroundSeparation.close` is bounded (:data:`CLOSE_BOUND`) whatever the machine's load: the hashing is
cancelled between slices, the worker never waits on a model chunk and its child process is terminated, then
killed, when it does not answer. After closing, :attr:`~BackgroundSeparation.stems` and
:attr:`~BackgroundSeparation.regions_ready` still show what it separated (a player keeps playing, and the app
keeps drawing, the replaced model's stems until the new ones are ready).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from engine.errors import SeparationCancelled
from engine.playback.models import CardModel, ResolvedModel
from engine.separation.cache import StemCache, StemEntry, cache_key
from engine.separation.runner import default_threads
from engine.separation.streaming import STOP_BOUND, StreamingSeparator

log = logging.getLogger(__name__)

#: What :meth:`BackgroundSeparation.close` promises (seconds, process mode): when it returns, its opener thread,
#: its worker thread and the worker's child process have ended, whatever the load. The worker's own bound
#: (:data:`~engine.separation.streaming.STOP_BOUND`) plus the opener's (it may be closing the separation this one
#: replaced, itself bounded by ``STOP_BOUND``; its hashing is cancelled between 4 MB slices).
CLOSE_BOUND = 2 * STOP_BOUND


class BackgroundSeparation:
    """Separates ``model_in`` with ``resolved`` into a stem-store entry, from the play position onwards.

    Args:
        generation: a number the owner gives each separation it starts (a poller clears its views when it moves).
        resolved: the model (a :class:`~engine.playback.models.CardModel` runs in the child process by name).
        model_in: ``(n_in_channels, n_samples)`` float32 at the model's rate: the mixture, or what the model's
            :func:`~engine.models.base.prepare_input` made of it (an oracle's mixture and reference stems).
        cache: the stem store.
        samplerate: the model's rate.
        region_samples: store region length (model-rate samples).
        play_sample: the play position (model-rate samples) when the worker starts: it works from there first.
        title: recorded in the store entry's metadata.
        n_channels: channels of each stem.
        worker_process: run the model in a child process (the default of the session) or in a thread here.
        n_threads: torch threads of the model (None: the one thread rule,
            :func:`~engine.separation.runner.default_threads`).
        compute_device: where the model runs (process mode; None/"auto": the best available).
        previous: the separation this one replaces; it is closed (in this one's thread) before anything opens.
        on_started: called from this one's thread once the store entry exists and just before the worker starts;
            returning False abandons the separation (the owner moved on).
        on_region: called from the worker thread with each region index whose stems became final.
        on_error: called from a background thread with a one-line message when the separation fails.
    """

    def __init__(
        self,
        generation: int,
        resolved: ResolvedModel,
        model_in: np.ndarray,
        cache: StemCache,
        samplerate: int,
        region_samples: int,
        play_sample: Callable[[], int],
        title: str = "",
        n_channels: int = 2,
        worker_process: bool = True,
        n_threads: int | None = None,
        compute_device: str | None = None,
        previous: BackgroundSeparation | None = None,
        on_started: Callable[[BackgroundSeparation], bool] | None = None,
        on_region: Callable[[BackgroundSeparation, int], None] | None = None,
        on_error: Callable[[BackgroundSeparation, str], None] | None = None,
    ) -> None:
        self.generation = generation
        self.resolved = resolved
        self.model_name: str = resolved.name  #: the model separating (its card's name)
        self.samplerate = int(samplerate)
        self._model_in = model_in
        self._cache, self._title, self._n_channels = cache, title, n_channels
        self._region_samples = int(region_samples)
        self._play_sample = play_sample
        self._worker_process, self._compute_device = worker_process, compute_device
        self._n_threads = n_threads or default_threads()
        self._previous = previous
        self._on_started, self._on_region, self._on_error = on_started, on_region, on_error
        self._entry: StemEntry | None = None
        self._worker: StreamingSeparator | None = None
        self._error: str | None = None
        self._closed = False
        self._closing = threading.Event()  # set once close() has finished (a second caller waits for it)
        self._close_started = False
        self._final: tuple[np.ndarray | None, np.ndarray] | None = None  # (stems, ready) frozen by close()
        self._lock = threading.Lock()  # entry/worker hand-over between the opener thread and close()
        self._opener: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the opener thread (returns at once; idempotent)."""
        if self._opener is None:
            self._opener = threading.Thread(target=self._open, name="shotoku-open", daemon=True)
            self._opener.start()

    def close(self, timeout: float = CLOSE_BOUND) -> bool:
        """Stop the worker and release the store entry (what was separated stays in the store); idempotent.

        Returns within ``timeout`` seconds (default :data:`CLOSE_BOUND`), True when every thread and process it
        started has ended (always, in process mode, within the bound). A second caller waits for the first.
        :attr:`stems` and :attr:`regions_ready` keep showing what was separated.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            first, self._close_started = not self._close_started, True
            worker, entry = self._worker, self._entry
            self._worker = self._entry = None
            if first:
                self._final = (entry.stems if entry is not None else None,
                               worker.ready.astype(bool) if worker is not None else np.zeros(0, dtype=bool))
        if not first:
            if threading.current_thread() is not self._opener:
                self._closing.wait(max(0.0, deadline - time.monotonic()))
            return self._closing.is_set()
        try:
            stopped = True
            if worker is not None:
                stopped = worker.stop(max(0.0, deadline - time.monotonic()))
            opener = self._opener
            if opener is not None and opener is not threading.current_thread():
                opener.join(max(0.0, deadline - time.monotonic()))
                stopped = stopped and not opener.is_alive()
            if entry is not None:
                entry.close()
            if not stopped:
                log.warning("separation %s (%s) did not stop within %.1f s", self.generation, self.model_name, timeout)
            return stopped
        finally:
            self._closing.set()

    def _open(self) -> None:  # opener thread
        previous, self._previous = self._previous, None
        if previous is not None:
            previous.close()
        model = self.resolved.model
        try:
            key = cache_key(self._model_in, self.samplerate, self.resolved.name, self.resolved.sha256,
                            cancel=lambda: self._closed)
            if self._closed:
                return
            entry = self._cache.open(
                key, list(model.sources), self._n_channels, self._model_in.shape[-1], self.samplerate,
                self._region_samples, info={"model": self.resolved.name, "title": self._title},
            )
        except SeparationCancelled:
            return
        except (OSError, ValueError) as err:
            self._fail(f"stem cache unavailable ({err}); playing the original only")
            return
        worker = self._make_worker(entry)
        with self._lock:
            if self._closed:
                entry.close()
                return
            self._entry, self._worker = entry, worker
        if self._on_started is not None and not self._on_started(self):
            self.close()
            return
        with self._lock:
            if self._closed:
                return  # close() took the worker and the entry: it stops and closes them
            worker.prioritise(self._play_sample())
            worker.start()

    def _make_worker(self, entry: StemEntry) -> StreamingSeparator:
        model = self.resolved.model
        if self._worker_process:
            runner = None
            in_child = self.resolved.name if isinstance(model, CardModel) else model  # weights load in the child
        else:
            from engine.separation.runner import ChunkRunner

            runner, in_child = ChunkRunner(model, n_threads=self._n_threads), None
        return StreamingSeparator(
            runner, self._model_in, entry, int(model.segment_samples),
            on_ready=self._region_ready, on_error=self._fail, process_model=in_child, n_threads=self._n_threads,
            device=self._compute_device,
        )

    def _region_ready(self, k: int) -> None:  # worker thread
        if self._on_region is not None:
            self._on_region(self, k)

    def _fail(self, message: str) -> None:  # a background thread
        self._error = message
        if self._on_error is not None:
            self._on_error(self, message)

    # ------------------------------------------------------------------ following the listener
    def follow(self, play_sample: int) -> None:
        """Playback is at ``play_sample`` (model rate): if it overtook the current run, work just ahead of it."""
        worker = self._worker
        if worker is None:
            return
        cursor = worker.cursor
        if 0 <= cursor < play_sample:
            worker.prioritise(play_sample + self._region_samples // 2)

    def seek(self, sample: int) -> None:
        """The listener jumped to ``sample`` (model rate): work from there next (before the worker starts, it
        starts from the play position anyway)."""
        worker = self._worker
        if worker is not None:
            worker.prioritise(sample)

    # ------------------------------------------------------------------ what a player reads
    @property
    def stems(self) -> np.ndarray | None:
        """The stem store ``(n_stems, n_channels, n_samples)`` float32, memory-mapped, model rate, in the model's
        ``sources`` order; None until the entry is open. Read-only for callers; a region's samples are final once
        :attr:`regions_ready` says so. After :meth:`close`, the stems as they were (still readable)."""
        entry, final = self._entry, self._final
        if final is not None:
            return final[0]
        return entry.stems if entry is not None else None

    @property
    def regions_ready(self) -> np.ndarray:
        """``(n_regions,)`` bool copy: True where a region of :attr:`stems` is final (empty before the worker).
        After :meth:`close`, the regions that were final then."""
        worker, final = self._worker, self._final
        if final is not None:
            return final[1].copy()
        return worker.ready.astype(bool) if worker is not None else np.zeros(0, dtype=bool)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the stems and regions shown are then final)."""
        return self._final is not None

    @property
    def region_samples(self) -> int:
        """Samples (model rate) per region of :attr:`regions_ready`."""
        entry = self._entry
        return entry.region_samples if entry is not None else self._region_samples

    @property
    def cursor(self) -> int:
        """How far the worker's current run is final (model-rate samples); -1 between runs or before it starts."""
        worker = self._worker
        return worker.cursor if worker is not None else -1

    @property
    def done(self) -> bool:
        """True once every region is separated (or verified from the store)."""
        worker, final = self._worker, self._final
        if final is not None:
            return bool(final[1].size and final[1].all())
        return bool(worker is not None and worker.done)

    @property
    def error(self) -> str | None:
        """Why the separation stopped, if it failed (one line)."""
        worker = self._worker
        return self._error or (worker.error if worker is not None else None)

    @property
    def worker(self) -> StreamingSeparator | None:
        """The streaming worker, for diagnostics (``regions_separated``, ``regions_verified``, ``busy_seconds``)."""
        return self._worker
