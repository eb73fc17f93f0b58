"""``OpenSong``: the song a session plays, the separation running on it, and the mixer's view of both (no Qt).

The mixture is kept at the model's rate (the separation's input); :meth:`OpenSong.install` gives the mixer a
:class:`~engine.playback.source.SongSource` at the output rate with the stems as far as they are separated, again
whenever the output rate or the separation changes. :meth:`OpenSong.separate` starts a
:class:`~engine.playback.background.BackgroundSeparation` whose regions reach the mixer as they become final.

When another model is chosen with the same stems, :meth:`OpenSong.detach` keeps the replaced separation's view as
the *fallback*: its stems keep playing wherever the new model's are not ready yet (a muted vocal stays muted),
until the song closes or another model replaces them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from engine.errors import ShotokuError
from engine.playback.background import CLOSE_BOUND, BackgroundSeparation
from engine.playback.deck import Deck
from engine.playback.models import ResolvedModel
from engine.playback.source import SongSource, resample_mixture
from engine.separation.cache import StemCache

if TYPE_CHECKING:
    from engine.audio import Audio


@dataclass
class SeparationSettings:
    """How a session separates: the stem store, the worker's process/thread, torch threads, compute device."""

    cache: StemCache
    worker_process: bool = True
    n_threads: int | None = None  #: None: :func:`~engine.separation.runner.default_threads`
    compute_device: str | None = None


def load_song(
    source: str | Path | Audio, samplerate: int | None, references: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, int, str, dict[str, np.ndarray] | None]:
    """Read a song for playback: a file, or an :class:`~engine.audio.Audio` (``samples (n_channels, n_samples)``).

    Args:
        samplerate: the rate to play and separate at (the model's); None keeps an Audio's own rate (44.1 kHz for
            a file).
        references: true stems at the source's rate, resampled with it.
    Returns:
        ``(mixture, samplerate, title, references)``: ``mixture`` ``(2, n_samples)`` float32 C-contiguous (mono
        duplicated), and the references at that rate.
    Raises:
        ShotokuError (AudioLoadError, ...): the song cannot be read or is not ``(n_channels, n_samples)`` audio.
    """
    if isinstance(source, str | Path):
        from engine.audio import load_audio

        rate = samplerate or 44100
        source_rate = rate
        samples, title = load_audio(source, samplerate=rate, n_channels=2).samples, Path(source).name
    else:
        source_rate = int(source.samplerate)
        rate = samplerate or source_rate
        samples = np.asarray(source.samples, dtype=np.float32)
        if source_rate != rate:
            samples = soxr.resample(samples.T, source_rate, rate, quality="HQ").T
        title = str(getattr(source, "path", None) or "audio")
    if samples.ndim != 2 or samples.shape[0] not in (1, 2) or samples.shape[1] == 0:
        raise ShotokuError(f"{title}: expected (n_channels, n_samples) audio, got {samples.shape}")
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if references is not None and source_rate != rate:
        references = {k: soxr.resample(np.asarray(v, np.float32).T, source_rate, rate, "HQ").T
                      for k, v in references.items()}
    return samples, rate, title, references


class OpenSong:
    """One open song and its separation, feeding ``deck``'s mixer.

    Args:
        mixture: ``(2, n_samples)`` float32 at ``samplerate`` (the model's rate).
        title: shown to the user, recorded in the stem store.
        references: true stems at ``samplerate`` (oracle models), or None.
        region_samples: stem-store region length (model-rate samples).
        deck: the mixer the song plays on.
        lock: the session's control lock (held while the mixer's source changes).
        notify: called with a one-line message when the separation fails (from a background thread).
    """

    def __init__(
        self,
        mixture: np.ndarray,
        samplerate: int,
        title: str,
        references: dict[str, np.ndarray] | None,
        region_samples: int,
        deck: Deck,
        lock: threading.RLock,
        notify: Callable[[str], None],
    ) -> None:
        self.mixture, self.samplerate, self.title, self.references = mixture, int(samplerate), title, references
        self.region_samples = int(region_samples)
        self.duration_seconds = mixture.shape[1] / self.samplerate
        self._deck, self._lock, self._notify = deck, lock, notify
        self._output_rate = self.samplerate
        self._mixture_out: tuple[int, np.ndarray] = (self.samplerate, mixture)
        self.source: SongSource | None = None  #: the mixer's view (None before :meth:`install`)
        self.separation: BackgroundSeparation | None = None  #: the separation running (None: none)
        self._fallback: SongSource | None = None  # the replaced separation's view, played where ours is not ready
        self._fallback_separation: BackgroundSeparation | None = None
        self._handover = False  # the next install hands the stems playing over to the fallback
        self._closed = False

    # ------------------------------------------------------------------ the mixer's view
    def install(self, output_rate: int, swap: bool = False) -> None:
        """Give the mixer this song at ``output_rate``, with the stems as far as they are ready (call under the lock).

        ``swap``: the same song with more data (stems): keep position and transport (see ``Mixer.swap_source``).
        """
        self._output_rate = int(output_rate)
        if self._mixture_out[0] != self._output_rate:
            self._mixture_out = (self._output_rate, resample_mixture(self.mixture, self.samplerate, output_rate))
        separation = self.separation
        stems = separation.stems if separation is not None else None
        region = separation.region_samples if separation is not None else self.region_samples
        fallback = self._fallback
        if fallback is not None and fallback.samplerate != self._output_rate:
            self._drop_fallback()  # another output rate: the old view no longer lines up
            fallback = None
        source = SongSource(self._mixture_out[1], stems, region, self.samplerate, self._output_rate, fallback)
        old, self.source = self.source, source
        if separation is not None and stems is not None:
            source.mark_ready(separation.regions_ready)  # regions announced from now on reach it directly
        handover, self._handover = self._handover and source.fallback is old, False
        self._deck.install(source.source, swap, handover)
        if old is not None and old is not self._fallback:
            old.close()

    @property
    def previous_separation(self) -> BackgroundSeparation | None:
        """The (closed) separation whose stems play where the current one's are not ready yet, or None. Its
        ``stems``/``regions_ready``/``region_samples`` show what it had separated (the app keeps drawing them)."""
        return self._fallback_separation if self._fallback is not None else None

    @property
    def fallback_ready(self) -> np.ndarray | None:
        """``(n_regions,)`` uint8 on the mixer's grid of the fallback stems (None: no fallback)."""
        return self._fallback.ready if self._fallback is not None else None

    def _drop_fallback(self) -> None:
        fallback, self._fallback, self._fallback_separation = self._fallback, None, None
        if fallback is not None and fallback is not self.source:
            fallback.close()

    def play_sample(self) -> int:
        """The play position in model-rate samples."""
        return int(self._deck.position * self.samplerate / max(1, self._output_rate))

    # ------------------------------------------------------------------ the separation
    def separate(self, generation: int, resolved: ResolvedModel, model_in: np.ndarray, settings: SeparationSettings,
                 previous: BackgroundSeparation | None = None) -> BackgroundSeparation:
        """Start separating with ``resolved`` (off this thread, after ``previous`` closes); returns the separation."""
        separation = BackgroundSeparation(
            generation, resolved, model_in, settings.cache, self.samplerate, self.region_samples,
            play_sample=self.play_sample, title=self.title, worker_process=settings.worker_process,
            n_threads=settings.n_threads, compute_device=settings.compute_device, previous=previous,
            on_started=self._on_started, on_region=self._on_region, on_error=self._on_error,
        )
        self.separation = separation
        separation.start()
        return separation

    def detach(self, keep_stems: bool = False) -> BackgroundSeparation | None:
        """Stop reading the current separation; returns it for the caller to close (or to hand to the next one as
        ``previous``).

        ``keep_stems`` (the next model has the same stems): what it separated keeps playing, from the next
        :meth:`install` on, wherever the next separation is not ready. Of its stems and the fallback it had
        itself, the ones being heard are kept (its own when they are audible now or there is no fallback yet),
        so the switch never jumps. Otherwise the mixer goes back to the mixture there.
        """
        separation, self.separation = self.separation, None
        current = self.source
        if not keep_stems:
            self._drop_fallback()
        elif current is not None and current.usable_as_fallback(current.source.n_frames):
            mixer = self._deck.mixer
            audible = mixer is not None and mixer.source is current.source and mixer.separated_weight > 0.0
            if self._fallback is None or audible:
                self._drop_fallback()
                self._fallback, self._fallback_separation = current, separation
                self._handover = True
        return separation

    def _on_started(self, separation: BackgroundSeparation) -> bool:  # its opener thread
        with self._lock:
            if separation is not self.separation or self._closed:
                return False
            self.install(self._output_rate, swap=True)  # stems now: position and transport carry on, no click
            return True

    def _on_region(self, separation: BackgroundSeparation, k: int) -> None:  # worker thread
        source = self.source
        if separation is self.separation and source is not None:
            source.region_ready(k)

    def _on_error(self, separation: BackgroundSeparation, message: str) -> None:  # a background thread
        if separation is self.separation:
            self._notify(message)

    def close(self, timeout: float = CLOSE_BOUND) -> bool:
        """Stop the separation (joining its threads, at most ``timeout`` seconds; call it without holding the
        lock) and release the view. True when every thread and process of the separation has ended."""
        self._closed = True
        separation, self.separation = self.separation, None
        stopped = separation.close(timeout) if separation is not None else True
        source, self.source = self.source, None
        self._drop_fallback()
        if source is not None:
            source.close()
        return stopped
