"""The Qt side of the engine's :class:`~engine.playback.session.PlaybackSession`: a poller that turns its state into
signals for the window.

The session does the real work (the mixture plays at once, a child process separates from the play position into
the memory-mapped stem store, regions cross-fade to stems when ready, a silent clock runs without an audio
output). The window calls :meth:`SessionPoller.poll` from its timer; the poller watches the separation (a new
generation clears the stem lanes, newly separated regions are drawn by a :class:`~app.workers.StemColumnsWorker`,
never in the GUI thread) and the output state.

After a model change with the same stems the replaced model's stems keep playing where the new ones are not
ready: :attr:`SessionPoller.previous_separation` is then that (closed) separation, whose lanes a window may keep
drawn until the new columns replace them, and :meth:`SessionPoller.unseparated_spans` can leave out what it covers.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from app import spectrum
from app.workers import StemColumnsWorker, WorkerHost
from engine.playback.session import PlaybackSession, SessionState


class SessionPoller(QObject):
    """Polls a :class:`PlaybackSession` (GUI thread) and draws separated stems in the background.

    Args:
        session: the session the window drives.
        host: starts (and on shutdown joins) the spectrogram workers.
    """

    separation_started = Signal()  #: a new separation began (new song, model or device): clear the stem lanes
    columns_ready = Signal(int, object)  #: first frame, {stem: dB columns} of the current separation
    progress = Signal(float)  #: fraction of the song separated, 0..1
    separated = Signal(str)  #: every region separated and drawn; the model's name
    failed = Signal(str)  #: the separation stopped with this reason
    output_changed = Signal(str, str)  #: SessionState value, message

    def __init__(self, session: PlaybackSession, host: WorkerHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.host = session, host
        self.grid: spectrum.SpectrogramGrid | None = None
        self.generation = -1
        self.drawn = np.zeros(0, dtype=bool)  #: frames of the grid already drawn (or being drawn)
        self.done = False  #: the current separation is complete and drawn
        self._worker: StemColumnsWorker | None = None
        self._reported_error: str | None = None
        self._output: tuple[str, str] = ("", "")
        self._n_ready = -1

    def set_grid(self, grid: spectrum.SpectrogramGrid | None) -> None:
        """A new song: its spectrogram grid (the session's separation is polled against it)."""
        self.grid = grid
        self.generation = -1
        self.done = False

    def poll(self) -> None:
        """Emit what changed since the last call (call from a ~30 ms timer)."""
        session = self.session
        state = (session.state.value, session.message)
        if state != self._output:
            self._output = state
            self.output_changed.emit(*state)
        separation = session.separation
        if self.grid is None or separation is None:
            return
        if separation.generation != self.generation:
            self.generation = separation.generation
            self.drawn = np.zeros(self.grid.n_frames, dtype=bool)
            self.done, self._reported_error, self._n_ready = False, None, -1
            if self._worker is not None:
                self._worker.cancel()
                self._worker = None
            self.separation_started.emit()
        error = separation.error
        if error and error != self._reported_error:
            self._reported_error = error
            self.failed.emit(error)
        stems = separation.stems
        if stems is None or self.done or self._worker is not None:
            return
        ready = separation.regions_ready
        if ready.size == 0:  # the stem store exists a moment before its worker: nothing to report yet
            return
        n_ready = int(ready.sum())
        if n_ready != self._n_ready:
            self._n_ready = n_ready
            self.progress.emit(n_ready / ready.size)
        new = spectrum.computable_frames(self.grid, ready, separation.region_samples) & ~self.drawn
        if new.any():
            self.drawn |= new
            worker = StemColumnsWorker(stems, list(session.stems), spectrum.runs(new), self.grid, self.generation)
            worker.columns_ready.connect(self._on_columns)
            worker.done.connect(self._on_worker_done)
            self._worker = worker
            self.host.start(worker)
        elif ready.all() and separation.done:
            self.done = True
            self.separated.emit(separation.model_name)

    @Slot(int, int, object)
    def _on_columns(self, generation: int, first: int, columns: dict) -> None:
        if generation == self.generation:
            self.columns_ready.emit(first, columns)

    @Slot()
    def _on_worker_done(self) -> None:
        if self.sender() is self._worker:
            self._worker = None

    @property
    def previous_separation(self):
        """The replaced separation whose stems still play where the current one's are not ready (None: none).
        Its ``stems``, ``regions_ready`` and ``region_samples`` stay readable (see the module docstring)."""
        return getattr(self.session, "previous_separation", None)

    def unseparated_spans(self, include_previous: bool = False) -> list[tuple[float, float]]:
        """``[(start, stop), ...]`` seconds of the song not separated yet (all of it before the work starts).

        ``include_previous``: count as separated what the :attr:`previous_separation` covers (its stems play
        there), i.e. return the spans where the original mix is heard."""
        if self.grid is None:
            return []
        separation = self.session.separation
        ready = separation.regions_ready if separation is not None else np.zeros(0, dtype=bool)
        previous = self.previous_separation if include_previous else None
        if previous is not None:
            old = previous.regions_ready
            if separation is None or old.size != ready.size or previous.region_samples != separation.region_samples:
                ready, separation = old, previous  # the new one has not started: the old regions say it all
            else:
                ready = ready | old
        if ready.size == 0:
            return [(0.0, self.grid.duration_seconds)]
        seconds = separation.region_samples / self.grid.samplerate
        return [(a * seconds, min(b * seconds, self.grid.duration_seconds)) for a, b in spectrum.runs(~ready)]

    @property
    def silent(self) -> bool:
        """True when nothing can be heard (no output device, or it was lost)."""
        return self.session.state in (SessionState.NO_OUTPUT, SessionState.DEVICE_LOST)
