"""Background work in QThreads: loading a song, separating it, exporting. The GUI never waits on them.

Each job is a :class:`Worker` (a QObject moved to its own QThread) that reports through signals; signals cross to
the GUI thread queued. Cancelling sets a :class:`threading.Event` the job checks at least once per block.
:class:`WorkerHost` owns every thread and quits and joins them all in :meth:`WorkerHost.shutdown`.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from app import spectrum
from app.song import Song, load_song
from engine import STEM_NAMES
from engine.errors import SeparationCancelled, ShotokuError

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


class WorkerHost(QObject):
    """Starts workers in their own QThreads and joins every thread on :meth:`shutdown`."""

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
        thread = self._running.pop(worker, None)
        if thread is not None:
            thread.wait()
            thread.deleteLater()
        worker.deleteLater()

    def running(self) -> list[Worker]:
        return [w for w, t in self._running.items() if t.isRunning()]

    def threads(self) -> list[QThread]:
        return list(self._running.values())

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel every worker, quit and join every thread. True if all stopped within ``timeout_ms`` each."""
        clean = True
        for worker, thread in list(self._running.items()):
            worker.cancel()
            thread.quit()
            if not thread.wait(timeout_ms):
                clean = False
                log.error("thread %s did not stop", thread.objectName())
        for worker in list(self._running):
            self._forget(worker)
        return clean


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
        song = load_song(self.path)
        self.check_cancel()
        grid = spectrum.grid_for(song.n_samples, song.samplerate)
        self.progress.emit(0.5, "Drawing the spectrogram…")
        mixture_db = spectrum.compute_columns(spectrum.to_mono(song.mixture), grid)
        return LoadResult(song, grid, mixture_db)


# --------------------------------------------------------------------------------------------------------------
def inference_threads() -> int:
    """Torch threads for separation: leave one core to the GUI and the audio callback."""
    return max(1, (os.cpu_count() or 2) - 1)


class SeparateWorker(Worker):
    """Run a model over a song block by block, writing into shared buffers the mixer plays from.

    Args:
        stems: ``(len(STEM_NAMES), 2, n_samples)`` float32, written in place (STEM_NAMES order).
        ready: ``(n_regions,)`` uint8, set to 1 once region ``k`` of ``stems`` is final.
        region_frames: samples per region.
        segment_seconds: chunk length (None: the model's own).
    """

    info = Signal(str, str)  #: model name, device label (once the model is loaded)
    block_ready = Signal(int, int, object)  #: done_until sample, first frame, {stem: dB columns}

    def __init__(
        self,
        song: Song,
        model_name: str,
        device: str | None,
        stems: np.ndarray,
        ready: np.ndarray,
        region_frames: int,
        grid: spectrum.SpectrogramGrid,
        segment_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.song, self.model_name, self.device = song, model_name, device
        self.segment_seconds = segment_seconds
        self.stems, self.ready, self.region_frames, self.grid = stems, ready, region_frames, grid

    def work(self) -> str:
        from engine.separation.device import describe_device
        from engine.separation.separator import Separator

        self.progress.emit(0.0, f"Loading model {self.model_name}…")
        separator = Separator(self.model_name, device=self.device, segment_seconds=self.segment_seconds,
                              n_threads=inference_threads())
        self.check_cancel()
        self.info.emit(self.model_name, describe_device(separator.device))
        rows = [STEM_NAMES.index(s) if s in STEM_NAMES else -1 for s in separator.sources]
        n_samples = self.song.n_samples
        done_until = 0
        frames_done = 0

        def on_progress(p: object) -> None:
            self.check_cancel()

        blocks = separator.iter_stems(
            self.song.mixture, self.song.samplerate, progress=on_progress, cancel=self.cancel_event,
            references=self.song.references,
        )
        for block, _ in blocks:
            self.check_cancel()
            length = block.shape[-1]
            for i, row in enumerate(rows):
                if row >= 0:
                    self.stems[row, :, done_until:done_until + length] = block[i]
            done_until += length
            self.check_cancel()
            n_ready = len(self.ready) if done_until >= n_samples else done_until // self.region_frames
            self.ready[:n_ready] = 1
            frames_stop = self.grid.frames_complete_before(done_until)
            columns = {
                name: spectrum.compute_columns(spectrum.to_mono(self.stems[STEM_NAMES.index(name)]), self.grid,
                                               frames_done, frames_stop)
                for name in separator.sources if name in STEM_NAMES
            }
            self.block_ready.emit(done_until, frames_done, columns)
            frames_done = frames_stop
            self.progress.emit(done_until / max(1, n_samples), f"Separating with {self.model_name}")
        return self.model_name


# --------------------------------------------------------------------------------------------------------------
@dataclass
class ExportJob:
    """One file to write: a stem (``stem`` set) or the remix (``gains`` set: ``(n_stems, 2)`` linear)."""

    path: Path
    stem: str | None = None
    gains: np.ndarray | None = None
    master: float = 1.0


class ExportWorker(Worker):
    """Write stems and/or the remix to files, block by block, atomically (a cancelled file leaves nothing)."""

    def __init__(
        self, jobs: list[ExportJob], stems: np.ndarray, samplerate: int, format: str, bit_depth: str | None,
        block: int = 1 << 17,
    ) -> None:
        super().__init__()
        self.jobs, self.stems, self.samplerate = jobs, stems, samplerate
        self.format, self.bit_depth, self.block = format, bit_depth, block

    def work(self) -> list[Path]:
        from engine.audio import AudioFileWriter

        written: list[Path] = []
        n_samples = self.stems.shape[-1]
        total = max(1, len(self.jobs) * n_samples)
        for index, job in enumerate(self.jobs):
            writer = AudioFileWriter(job.path, self.samplerate, 2, format=self.format, bit_depth=self.bit_depth)
            try:
                for start in range(0, n_samples, self.block):
                    self.check_cancel()
                    stop = min(n_samples, start + self.block)
                    if job.stem is not None:
                        data = self.stems[STEM_NAMES.index(job.stem), :, start:stop]
                    else:
                        gains = job.gains if job.gains is not None else np.ones((len(STEM_NAMES), 2), np.float32)
                        data = np.einsum("sc,scn->cn", gains, self.stems[:, :, start:stop]) * job.master
                    writer.write(data)
                    self.progress.emit((index * n_samples + stop) / total, f"Writing {job.path.name}")
                written.append(writer.commit())
            except BaseException:
                writer.abort()
                raise
        return written
