"""Background work in QThreads: loading a song, drawing stem spectrograms, exporting. The GUI never waits on them.

Separation itself runs in the engine's playback session (:class:`engine.playback.session.PlaybackSession`: a
worker process streaming from the play position into the stem store); :class:`StemColumnsWorker` draws what it
has separated. The one exception is a best-quality export (:class:`BestSeparation`): :class:`ExportWorker`
separates the song afresh in its own thread, at a lowered priority, while playback keeps its stems.

Each job is a :class:`Worker` (a QObject moved to its own QThread) that reports through signals; signals cross to
the GUI thread queued. Cancelling sets a :class:`threading.Event` the job checks at least once per block.
:class:`WorkerHost` owns every thread and quits and joins them all in :meth:`WorkerHost.shutdown`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from app import spectrum
from app.song import Song, load_song
from engine import STEM_NAMES
from engine.errors import AudioSaveError, SeparationCancelled, ShotokuError

if TYPE_CHECKING:
    from engine.separation.quality import SeparationPlan

log = logging.getLogger(__name__)


class Worker(QObject):
    """One background job. Subclasses implement :meth:`work`; the host calls :meth:`run` in the worker thread."""

    progress = Signal(float, str)  #: fraction 0..1, words
    succeeded = Signal(object)  #: the result of :meth:`work`
    failed = Signal(str)  #: a one-line reason
    cancelled = Signal()
    done = Signal()  #: always last, after one of succeeded / failed / cancelled

    def __init__(self) -> None:
        super().__init__()
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check (any thread)."""
        self.cancel_event.set()

    def check_cancel(self) -> None:
        """Raise :class:`SeparationCancelled` if cancelling was asked for."""
        if self.cancel_event.is_set():
            raise SeparationCancelled("cancelled")

    def work(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        try:
            result = self.work()
        except SeparationCancelled:
            self.cancelled.emit()
        except ShotokuError as err:
            self.failed.emit(str(err))
        except MemoryError:
            self.failed.emit("out of memory")
        except Exception as err:  # noqa: BLE001 - any failure becomes a readable message, never a crash
            log.error("worker failed:\n%s", traceback.format_exc())
            self.failed.emit(f"{type(err).__name__}: {err}")
        else:
            self.succeeded.emit(result)
        finally:
            self.done.emit()


#: Seconds :meth:`WorkerHost.shutdown` waits, in total, for the app's worker threads (each checks its cancel event
#: at least once per block: a spectrogram batch, an export block; a song's decode is the longest step).
JOIN_SECONDS = 10.0
#: Threads a shutdown gave up on, with their workers: kept alive for the rest of the process (see WorkerHost).
_ABANDONED: list[tuple[Worker, QThread]] = []


class WorkerHost(QObject):
    """Starts workers in their own QThreads and joins every thread on :meth:`shutdown`, within a bound.

    A thread that does not stop in time (a decode that cannot be interrupted, a driver call that hangs) is
    *abandoned*: kept referenced (a QThread destroyed while it runs aborts the process), named in the log and in
    :meth:`threads`, and :meth:`shutdown` returns False so the caller can exit without waiting for it.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[Worker, QThread] = {}

    def start(self, worker: Worker) -> Worker:
        """Run ``worker`` in a new QThread; the thread quits when the worker is done."""
        thread = QThread()
        thread.setObjectName(type(worker).__name__)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(thread.quit)
        thread.finished.connect(self._on_thread_finished)  # a bound slot: runs in the host's (GUI) thread
        self._running[worker] = thread
        thread.start()
        return worker

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.sender()
        for worker, known in list(self._running.items()):
            if known is thread:
                self._forget(worker)

    def _forget(self, worker: Worker) -> None:
        """Drop a worker whose thread has finished (never called for a running thread)."""
        thread = self._running.pop(worker, None)
        if thread is not None:
            thread.wait()  # finished already: returns at once
            thread.deleteLater()
        worker.deleteLater()

    def running(self) -> list[Worker]:
        return [w for w, t in self._running.items() if t.isRunning()]

    def threads(self) -> list[QThread]:
        """Every thread not joined yet: running ones, and those a :meth:`shutdown` had to abandon."""
        return list(self._running.values()) + [t for _, t in _ABANDONED if t.isRunning()]

    def cancel_all(self) -> None:
        """Ask every worker to stop and every thread to quit (returns at once)."""
        for worker, thread in list(self._running.items()):
            worker.cancel()
            thread.quit()

    def shutdown(self, timeout_seconds: float = JOIN_SECONDS) -> bool:
        """Cancel every worker, then join every thread, all within ``timeout_seconds`` in total.

        Every worker is told to stop before the first wait, so they stop side by side. Returns True if all
        stopped; threads still running at the deadline are abandoned (see the class) and logged.
        """
        self.cancel_all()
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        stuck: list[tuple[Worker, QThread]] = []
        for worker, thread in list(self._running.items()):
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not thread.wait(remaining_ms):
                stuck.append((worker, thread))
        for worker in [w for w in self._running if all(w is not s for s, _ in stuck)]:
            self._forget(worker)
        for worker, thread in stuck:
            self._running.pop(worker, None)
            _ABANDONED.append((worker, thread))
            log.error("thread %s did not stop within %.0f s: abandoned", thread.objectName(), timeout_seconds)
        return not stuck


def abandoned_threads() -> list[str]:
    """Names of the worker threads a :meth:`WorkerHost.shutdown` gave up on that are still running."""
    return [thread.objectName() for _, thread in _ABANDONED if thread.isRunning()]


# --------------------------------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    """A loaded song, its spectrogram grid and the mixture's dB columns ``(n_bins, n_frames)``."""

    song: Song
    grid: spectrum.SpectrogramGrid
    mixture_db: np.ndarray


class LoadWorker(Worker):
    """Decode a song (and its reference stems) and compute the mixture's spectrogram."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def work(self) -> LoadResult:
        self.progress.emit(0.0, f"Loading {self.path.name}…")
        song = load_song(self.path, self.check_cancel)
        self.check_cancel()
        grid = spectrum.grid_for(song.n_samples, song.samplerate)
        self.progress.emit(0.5, "Drawing the spectrogram…")
        mixture_db = spectrum.compute_columns(spectrum.to_mono(song.mixture), grid)
        return LoadResult(song, grid, mixture_db)


# --------------------------------------------------------------------------------------------------------------
class StemColumnsWorker(Worker):
    """Compute the stem lanes' dB columns for frame runs whose samples are separated (read from the stem store).

    Args:
        stems: ``(n_stems, 2, n_samples)`` read-only (the session's memory-mapped stem store), ``names`` order.
        frame_runs: ``[(first, stop), ...]`` frame ranges of ``grid`` to compute (only their samples are read).
        generation: the session's separation generation these columns belong to (stale results are dropped).
    """

    columns_ready = Signal(int, int, object)  #: generation, first frame, {stem: dB columns (n_bins, n)}

    def __init__(self, stems: np.ndarray, names: list[str], frame_runs: list[tuple[int, int]],
                 grid: spectrum.SpectrogramGrid, generation: int) -> None:
        super().__init__()
        self.stems, self.names, self.frame_runs, self.grid, self.generation = stems, names, frame_runs, grid, generation

    def work(self) -> int:
        for first, stop in self.frame_runs:
            for a in range(first, stop, 512):
                b = min(stop, a + 512)
                self.check_cancel()
                start, end = spectrum.frame_span(self.grid, a, b)
                columns = {
                    name: spectrum.compute_columns(spectrum.to_mono(self.stems[i, :, start:end]), self.grid, a, b,
                                                   offset=start)
                    for i, name in enumerate(self.names)  # every stem the model has: the lanes follow it
                }
                self.columns_ready.emit(self.generation, a, columns)
        return self.generation


# --------------------------------------------------------------------------------------------------------------
STEM_FORMAT = "stem.mp4"


@dataclass
class ExportJob:
    """One file to write: a stem (``stem`` set) or the remix (``gains`` set: ``(n_stems, 2)`` linear)."""

    path: Path
    stem: str | None = None
    gains: np.ndarray | None = None
    master: float = 1.0


@dataclass
class BestSeparation:
    """A fresh separation an export runs instead of writing the playing stems (the "best quality" export).

    ``plan``: an :class:`engine.separation.quality.SeparationPlan` (its :meth:`build` loads the models in the worker
    thread); ``mixture`` ``(n_channels, n_samples)`` float32 at ``samplerate`` (the open song); ``threads``: torch
    threads (None: ``engine.separation.runner.default_threads()``); ``nice``: added to the worker thread's
    niceness while it separates (Linux), so the audio callback in the same process keeps its share of the CPU.
    """

    plan: SeparationPlan
    mixture: np.ndarray
    samplerate: int
    threads: int | None = None
    nice: int = 10


def _lower_thread_priority(nice: int) -> None:
    """Add ``nice`` to this thread's niceness where the OS allows it per thread (Linux); else do nothing."""
    if nice <= 0 or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:  # not allowed: run at the normal priority
        pass


class ExportWorker(Worker):
    """Write stems and/or the remix to files as one set: all of them or none (a cancel or a failure leaves every
    existing file as it was).

    ``stems`` ``(n_stems, 2, n_samples)`` in ``stem_names`` order (the session's stem store, read in blocks), or,
    with ``separation``, a fresh separation of the song (:class:`BestSeparation`, run here, off the GUI thread,
    block by block with memory bounded by the separator's chunk) whose stems are reordered to ``stem_names``. A
    remix job's ``gains`` come from :meth:`engine.playback.session.PlaybackSession.mix_gains`, as playback's.

    Each file is written to a hidden staging file beside its target (``engine.atomic.make_temp``); only when every
    file is complete and flushed are they moved onto their names (``engine.atomic.publish``: one ``os.replace``
    each), so a full disk or a cancel never leaves a half-written or half-replaced set.

    ``format="stem.mp4"``: one NI STEM file (the one job's path; :class:`engine.audio.stem_mp4.StemMp4Writer`,
    itself atomic) with ``master`` ``(2, n_samples)`` at ``samplerate`` as its master track (None: the sum of the
    stems), the four stems at unity gain and the tags of ``tags_from``.
    """

    def __init__(
        self, jobs: list[ExportJob], stems: np.ndarray | None, samplerate: int, format: str, bit_depth: str | None,
        block: int = 1 << 17, stem_names: list[str] | None = None, separation: BestSeparation | None = None,
        master: np.ndarray | None = None, tags_from: Path | None = None, tempo: float = 1.0,
        semitones: float = 0.0,
    ) -> None:
        super().__init__()
        if stems is None and separation is None:
            raise ValueError("an export needs the stems or a separation to run")
        self.jobs, self.stems, self.samplerate = jobs, stems, samplerate
        self.stem_names = list(stem_names or STEM_NAMES)
        self.format, self.bit_depth, self.block = format, bit_depth, block
        self.separation = separation
        self.master, self.tags_from = master, tags_from
        self.tempo, self.semitones = tempo, semitones

    # -- where the blocks come from ---------------------------------------------------------------------------------
    def _stored_blocks(self) -> Generator[np.ndarray, None, None]:
        """The stem store in blocks ``(n_stems, 2, n)``."""
        assert self.stems is not None
        n_samples = self.stems.shape[-1]
        for start in range(0, n_samples, self.block):
            self.check_cancel()
            stop = min(n_samples, start + self.block)
            yield self.stems[:, :, start:stop]
            self.progress.emit(stop / max(1, n_samples), f"Writing {len(self.jobs)} file(s)")

    def _separated_blocks(self, job: BestSeparation) -> Generator[np.ndarray, None, None]:
        """A fresh separation of ``job.mixture`` in blocks ``(n_stems, n_channels, n)``, in ``stem_names`` order."""
        from engine.separation.apply import Progress

        _lower_thread_priority(job.nice)
        self.progress.emit(0.0, "Loading the best-quality model(s)…")
        separator = job.plan.build(job.threads)
        self.check_cancel()
        missing = [name for name in self.stem_names if name not in separator.sources]
        if missing:
            raise ShotokuError(f"{'+'.join(job.plan.models)} separates {', '.join(separator.sources)}: it has no "
                               f"{', '.join(missing)} stem")
        order = [separator.sources.index(name) for name in self.stem_names]
        models = " + ".join(job.plan.models)

        def progress(p: Progress) -> None:
            self.progress.emit(0.99 * p.fraction, f"Separating with {models} (best quality): chunk "
                                                  f"{p.done_chunks}/{p.n_chunks}")

        for stems, _ in separator.iter_stems(job.mixture, job.samplerate, progress, self.cancel_event):
            self.check_cancel()
            yield stems[order]

    def _stretched(self, blocks: Generator[np.ndarray, None, None], rate: int) -> Generator[np.ndarray, None, None]:
        """``blocks`` gathered, each stem (and the STEM master) at ``tempo`` and ``semitones``, in blocks again."""
        from engine.playback.stretch import stretch_offline

        try:
            whole = np.concatenate(list(blocks), axis=-1)
        finally:
            blocks.close()
        stretched = []
        for index, stem in enumerate(whole):
            self.check_cancel()
            self.progress.emit(index / (len(whole) + 1), f"Changing tempo and pitch: {self.stem_names[index]}")
            stretched.append(stretch_offline(stem, rate, self.tempo, self.semitones))
        if self.master is not None:
            self.check_cancel()
            self.master = stretch_offline(self.master, rate, self.tempo, self.semitones)
        del whole
        out = np.stack(stretched)
        for start in range(0, out.shape[-1], self.block):
            self.check_cancel()
            yield out[:, :, start : start + self.block]

    def _data(self, job: ExportJob, block: np.ndarray) -> np.ndarray:
        """What ``job`` writes of ``block`` ``(n_stems, n_channels, n)``: one stem, or the remix."""
        if job.stem is not None:
            return block[self.stem_names.index(job.stem)]
        gains = job.gains if job.gains is not None else np.ones((len(self.stem_names), 2), np.float32)
        return np.einsum("sc,scn->cn", gains, block) * job.master

    # -- writing ----------------------------------------------------------------------------------------------------
    def work(self) -> list[Path]:
        from engine.atomic import discard, file_mode, make_temp, publish
        from engine.audio import AudioFileWriter

        if self.separation is not None:
            rate, n_channels = self.separation.samplerate, int(self.separation.mixture.shape[0])
            blocks = self._separated_blocks(self.separation)
        else:
            assert self.stems is not None
            rate, n_channels = self.samplerate, int(self.stems.shape[1])
            blocks = self._stored_blocks()
        from engine.playback.stretch import is_neutral

        if not is_neutral(self.tempo, self.semitones):
            blocks = self._stretched(blocks, rate)
        if self.format == STEM_FORMAT:
            try:
                return [self._write_stem_file(rate, blocks)]
            finally:
                blocks.close()
        staged: list[Path] = []
        writers: list[AudioFileWriter] = []
        current = self.jobs[0].path if self.jobs else Path()  # the file an error is about
        try:
            for job in self.jobs:
                current = job.path
                job.path.parent.mkdir(parents=True, exist_ok=True)
                staged.append(make_temp(job.path, suffix=f".{self.format}"))
                writers.append(AudioFileWriter(staged[-1], rate, n_channels, format=self.format,
                                               bit_depth=self.bit_depth))
            for block in blocks:
                for job, writer in zip(self.jobs, writers, strict=True):
                    current = job.path
                    writer.write(self._data(job, block))
            self.check_cancel()
            for job, writer in zip(self.jobs, writers, strict=True):
                current = job.path
                writer.commit()  # closed and flushed, still hidden
            self.progress.emit(1.0, "Publishing…")
            written = []
            for stage, job in zip(staged, self.jobs, strict=True):
                current = job.path
                written.append(publish(stage, job.path, mode=file_mode(job.path)))
            return written
        except AudioSaveError as err:  # name the file the user asked for, not the hidden staging file
            raise AudioSaveError(current, err.reason) from None
        except OSError as err:
            raise AudioSaveError(current, err.strerror or str(err)) from None
        finally:
            blocks.close()  # the separation's chunk iterators end now, not when collected
            for writer in writers:
                writer.abort()
            for stage in staged:
                discard(stage)

    def _write_stem_file(self, rate: int, blocks: Generator[np.ndarray, None, None]) -> Path:
        """The one STEM file: ``master`` (or the stems' sum) and the stems in the order DJ software expects."""
        from engine.audio._tags import Tags, read_tags
        from engine.audio.stem_mp4 import STEM_ORDER, StemMp4Writer

        path = self.jobs[0].path
        missing = [name for name in STEM_ORDER if name not in self.stem_names]
        if missing:
            raise AudioSaveError(path, f"a STEM file holds {', '.join(STEM_ORDER)}: these stems have no "
                                       f"{', '.join(missing)}")  # fmt: skip
        order = [self.stem_names.index(name) for name in STEM_ORDER]
        tags = read_tags(self.tags_from) if self.tags_from is not None else Tags()
        writer = StemMp4Writer(path, rate, tags=tags)
        start = 0
        try:
            for block in blocks:
                n = block.shape[-1]
                master = self.master[:, start : start + n] if self.master is not None else block.sum(axis=0)
                if master.shape[-1] < n:  # a master shorter than the stems: silence after its end
                    master = np.pad(master, ((0, 0), (0, n - master.shape[-1])))
                writer.write(master, block[order])
                start += n
            self.check_cancel()
            self.progress.emit(1.0, "Encoding the STEM file…")
            return writer.commit()
        finally:
            writer.abort()
