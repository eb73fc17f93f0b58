"""``SongSource``: the open song as the mixer reads it, at the output rate, with the stems separated so far.

At the model's rate the mixer reads the stem store itself, on the store's region grid; at another rate a
:class:`~engine.playback.ratematch.RegionResampler` keeps a device-rate copy that fills in as store regions arrive.
Either way the mixer sees one :class:`~engine.playback.mixer.MixerSource` and a ``ready`` flag per region, which
:meth:`SongSource.region_ready` flips (from the separation worker's thread). A view may carry the view it
replaces as its *fallback* (another model was chosen while the song plays): the mixer then plays that view's stems
wherever its own are not ready yet, instead of the mixture.
"""

from __future__ import annotations

import numpy as np
import soxr

from engine.playback.mixer import MixerSource
from engine.playback.ratematch import RegionResampler


def resample_mixture(mixture: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``(2, n_in)`` float32 at ``rate_in`` -> ``(2, n_out)`` float32 (C-contiguous) at ``rate_out``."""
    if rate_in == rate_out:
        return mixture
    return np.ascontiguousarray(soxr.resample(mixture.T, rate_in, rate_out, quality="HQ").T, dtype=np.float32)


class SongSource:
    """The mixer's view of one song: ``mixture`` and (once a separation has a store entry) ``stems``.

    Args:
        mixture: ``(2, n_frames)`` float32 at ``samplerate`` (the output rate).
        stems: the stem store ``(n_stems, 2, n_samples)`` at ``model_samplerate``, or None (mixture only).
        region_samples: the store's region length (model-rate samples).
        model_samplerate, samplerate: the store's and the output's rates.
        fallback: the view of the separation this one replaces (same song, stems and output rate): its stems
            play where this one's are not ready. Not closed here (its owner closes it).

    Attributes:
        source: what the mixer plays (:class:`~engine.playback.mixer.MixerSource`).
    """

    def __init__(
        self,
        mixture: np.ndarray,
        stems: np.ndarray | None,
        region_samples: int,
        model_samplerate: int,
        samplerate: int,
        fallback: SongSource | None = None,
    ) -> None:
        self.samplerate = int(samplerate)
        self._resampler: RegionResampler | None = None
        self._ready: np.ndarray | None = None
        region = int(region_samples)
        if stems is not None and samplerate != model_samplerate:
            self._resampler = RegionResampler(stems, region, model_samplerate, samplerate)
            stems, region = self._resampler.stems, self._resampler.region_frames
            n_frames = stems.shape[-1]
            if mixture.shape[1] >= n_frames:
                mixture = mixture[:, :n_frames]
            else:
                mixture = np.pad(mixture, ((0, 0), (0, n_frames - mixture.shape[1])))
            self._ready = self._resampler.ready
        elif stems is not None:
            self._ready = np.zeros(-(-stems.shape[-1] // region), dtype=np.uint8)
        old = fallback.source if fallback is not None and fallback.usable_as_fallback(mixture.shape[1]) else None
        if old is not None and stems is not None and old.stems.shape[0] != stems.shape[0]:
            old = None
        self.fallback = fallback if old is not None else None  #: the view whose stems this one falls back to
        self.source = MixerSource(mixture, stems, self._ready, region,
                                  old.stems if old is not None else None, old.ready if old is not None else None,
                                  old.region_frames if old is not None else None)

    def usable_as_fallback(self, n_frames: int) -> bool:
        """True if this view has stems (some ready) of a song ``n_frames`` long at the output rate."""
        source = self.source
        return bool(source.stems is not None and source.ready is not None and source.n_frames == n_frames
                    and source.ready.any())

    def region_ready(self, k: int) -> None:
        """Store region ``k`` is final (any thread but the audio one): the mixer may play it (once resampled)."""
        if self._resampler is not None:
            self._resampler.region_ready(k)
        elif self._ready is not None:
            self._ready[k] = 1

    def mark_ready(self, ready: np.ndarray) -> None:
        """Every store region ``ready`` ``(n_regions,)`` flags is final (the regions separated before this view)."""
        for k in np.flatnonzero(ready):
            self.region_ready(int(k))

    @property
    def ready(self) -> np.ndarray | None:
        """``(n_regions,)`` uint8 on the mixer's region grid: 1 where the stems are playing-ready (None: no stems)."""
        return self._ready

    def close(self) -> None:
        """Release the device-rate copy (if any)."""
        if self._resampler is not None:
            self._resampler.close()
