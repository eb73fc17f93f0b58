"""Separating the open song of a :class:`~engine.playback.session.PlaybackSession` (no Qt).

A mixin: model resolution and (re)starting the streaming separation worker off the playback path, model and
compute-device changes while playback continues, the worker's callbacks, and read-only access to the separated
stems (the memory-mapped stem store) with its progress, for a GUI to poll.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from engine.playback.mixer import Mixer
from engine.playback.models import ResolvedModel, model_input, resolve_model
from engine.separation.cache import StemEntry, cache_key
from engine.separation.streaming import StreamingSeparator, torch_model_fn

if TYPE_CHECKING:
    from torch import nn

#: :attr:`PlaybackSession.message` while a song plays without a model.
NO_MODEL_MESSAGE = "no trained model installed: playing the original mix only"


class SongSeparation:
    """Mixin for :class:`~engine.playback.session.PlaybackSession`: its separation worker and stem store."""

    def change_model(self, model: str | nn.Module | None = None) -> None:
        """Re-separate the open song with ``model`` (None: the session default) while playback carries on.

        The mixer goes back to the original mix (cross-faded) until the new model's regions are ready (at once,
        from the stem store, if this song was separated with that model before).
        Raises:
            ShotokuError: the model cannot be loaded, or it is an oracle and the song has no references.
        """
        resolved = self._resolve(model)
        samples = self._mix_model_rate
        if samples is None:
            return
        model_in = self._model_input(resolved, samples, self._references)
        with self._lock:
            if self._mix_model_rate is not samples:
                return
            old = (self._worker, self._entry)
            self._worker = self._entry = None
            self._message = "" if resolved is not None else NO_MODEL_MESSAGE
            sources = list(resolved.model.sources) if resolved is not None else self.stems
            if sources != self.stems:
                position, playing = self._position_frames(), self._want_play
                self._set_stems(sources)
                self._install_source()
                self.mixer.request_seek(position)
                self._apply_controls()
                if playing:
                    self.mixer.request_play()
            else:
                self._install_source(swap=True)
            if resolved is not None:
                self._launch(resolved, samples, model_in, old)
            else:
                self._stop_worker(*old)

    def set_compute_device(self, device: str | None) -> None:
        """Run separation on ``device`` ("cpu", "cuda:0", None/"auto"); re-separates the open song there."""
        self.compute_device = device
        self._model = self._model_key = None
        if self._mix_model_rate is not None and self.separation_model is not None:
            self.change_model(self.separation_model)

    def _set_stems(self, sources: list[str]) -> None:
        if sources != self.stems or self.mixer is None:
            self.stems = sources
            self._reset_controls()
            if self.samplerate == 0:
                self.samplerate = self.model_samplerate or 44100
            self._build_mixer()

    def _resolve(self, model: str | nn.Module | None) -> ResolvedModel | None:
        key = model if isinstance(model, str) or model is None else None
        if key is not None or model is None:
            name = model or self.model_name
            if self._model is not None and name is not None and self._model_key == name:
                return self._model
        resolved = resolve_model(model, self.model_name, not self.worker_process, self.compute_device)
        if resolved is not None and (model is None or isinstance(model, str)):
            self._model, self._model_key = resolved, resolved.name
        return resolved

    @staticmethod
    def _model_input(resolved: ResolvedModel | None, samples: np.ndarray,
                     references: dict[str, np.ndarray] | None) -> np.ndarray | None:
        if resolved is None:
            return None
        return model_input(samples, list(resolved.model.sources), resolved.needs_references, references)

    def _launch(self, resolved: ResolvedModel, samples: np.ndarray, model_in: np.ndarray,
                old: tuple[StreamingSeparator | None, StemEntry | None] = (None, None)) -> None:
        """Start the separation off the playback path (hashing, the cache entry, the worker), after ``old`` stops."""
        self._generation += 1
        self.separation_model = resolved.name
        previous = self._opener
        thread = threading.Thread(target=self._start_separation, name="shotoku-open", daemon=True,
                                  args=(resolved, samples, model_in, self._generation, old, previous))
        self._opener = thread
        thread.start()

    def _start_separation(self, resolved: ResolvedModel, samples: np.ndarray, model_in: np.ndarray,
                          generation: int, old: tuple, previous: threading.Thread | None) -> None:
        self._stop_worker(*old)
        if previous is not None:
            previous.join()
        model_obj = resolved.model
        try:
            key = cache_key(model_in, self.model_samplerate, resolved.name, resolved.sha256)
            entry = self.cache.open(
                key, list(model_obj.sources), 2, samples.shape[1], self.model_samplerate, self._region_samples,
                info={"model": resolved.name, "title": self.title},
            )
        except (OSError, ValueError) as err:
            self._message = f"stem cache unavailable ({err}); playing the original only"
            return
        with self._lock:
            if self._mix_model_rate is not samples or self._closed.is_set() or generation != self._generation:
                entry.close()
                return
            self._entry = entry
            in_child = model_obj.name if hasattr(model_obj, "card") and self.worker_process else model_obj
            worker = StreamingSeparator(
                None if self.worker_process else torch_model_fn(model_obj, self.worker_threads), model_in, entry,
                int(model_obj.segment_samples), on_ready=self._on_region_ready, on_error=self._on_worker_error,
                process_model=in_child if self.worker_process else None, n_threads=self.worker_threads,
                device=self.compute_device,
            )
            self._worker = worker
            # Swap in a source with stems (nothing ready yet); position and transport carry on, no click.
            self._install_source(swap=True)
            position = self._position_frames()
            worker.prioritise(int(position * self.model_samplerate / self.samplerate))
            worker.start()

    @staticmethod
    def _stop_worker(worker: StreamingSeparator | None, entry: StemEntry | None) -> None:
        if worker is not None:
            worker.stop()
        if entry is not None:
            entry.close()

    def _on_region_ready(self, k: int) -> None:  # worker thread
        if self._resampler is not None:
            self._resampler.region_ready(k)
        elif self._ready is not None:
            self._ready[k] = 1

    def _on_worker_error(self, message: str) -> None:  # worker thread
        self._message = message

    @property
    def worker(self) -> StreamingSeparator | None:
        return self._worker

    # ------------------------------------------------------------------ the separated stems (read-only)
    @property
    def separated_stems(self) -> np.ndarray | None:
        """The stem store ``(n_stems, n_channels, n_samples)`` float32 (memory-mapped, model rate, ``stems`` order).

        Read-only for callers; a region's samples are final once :attr:`separation_ready` says so. None while the
        separation has not started (or there is no model).
        """
        entry = self._entry
        return entry.stems if entry is not None else None

    @property
    def separation_ready(self) -> np.ndarray:
        """``(n_regions,)`` bool copy over :attr:`separated_stems`: True where a region's samples are final."""
        worker = self._worker
        return worker.ready.astype(bool) if worker is not None else np.zeros(0, dtype=bool)

    @property
    def separation_region_samples(self) -> int:
        """Samples (model rate) per region of :attr:`separation_ready`."""
        entry = self._entry
        return entry.region_samples if entry is not None else self._region_samples

    @property
    def separation_done(self) -> bool:
        """True once every region of the open song is separated (or verified from the stem store)."""
        worker = self._worker
        return bool(worker is not None and worker.done)

    @property
    def separation_error(self) -> str | None:
        """Why the separation stopped, if it failed (also in :attr:`message`)."""
        worker = self._worker
        return worker.error if worker is not None else None

    @property
    def separation_generation(self) -> int:
        """Counts separations started (open, model or device change): a poller clears its stem views when it moves."""
        return self._generation

    def _keep_worker_ahead(self, worker: StreamingSeparator, mixer: Mixer) -> None:
        """If playback overtook the worker's run, move the work just ahead of the play position."""
        cursor = worker._run_cursor
        play = int(mixer.position * self.model_samplerate / self.samplerate)
        if 0 <= cursor < play:
            worker.prioritise(play + worker.entry.region_samples // 2)
