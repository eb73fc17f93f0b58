"""``MixerSource``: the audio one song plays from, as the real-time mixer reads it (see :mod:`engine.playback.mixer`)."""

from __future__ import annotations

import numpy as np

#: Stereo is the internal bus width: stems and mixture are ``(2, n_samples)`` per source.
BUS_CHANNELS = 2


class MixerSource:
    """The audio one song plays from, at the output sample rate.

    Args:
        mixture: ``(2, n_samples)`` float32, the original song.
        stems: ``(n_stems, 2, n_samples)`` float32 (may be a ``numpy.memmap``), or None before any separation.
            Samples of regions that are not ready are never heard, whatever they hold.
        ready: ``(n_regions,)`` uint8, 1 where region ``k`` (samples ``[k * region_frames, (k+1) * region_frames)``)
            of ``stems`` is final. The separation worker flips entries from 0 to 1 while the song plays.
        region_frames: region length in samples.
        fallback: the stems of the separation ``stems`` replaces (same stems, same shape), played where ``stems``
            is not ready and ``fallback_ready`` is; None: the mixture plays there.
        fallback_ready: ``(n_fallback_regions,)`` uint8 on the ``fallback_region_frames`` grid.
        fallback_region_frames: region length of ``fallback_ready`` (default ``region_frames``).
    """

    __slots__ = ("mixture", "stems", "ready", "region_frames", "n_frames", "n_regions", "fallback",
                 "fallback_ready", "fallback_region_frames", "n_fallback_regions")

    def __init__(
        self,
        mixture: np.ndarray,
        stems: np.ndarray | None,
        ready: np.ndarray | None,
        region_frames: int,
        fallback: np.ndarray | None = None,
        fallback_ready: np.ndarray | None = None,
        fallback_region_frames: int | None = None,
    ) -> None:
        if mixture.ndim != 2 or mixture.shape[0] != BUS_CHANNELS or mixture.dtype != np.float32:
            raise ValueError(f"mixture must be float32 (2, n_samples), got {mixture.dtype} {mixture.shape}")
        self.mixture = mixture
        self.n_frames = int(mixture.shape[1])
        self.region_frames = max(1, int(region_frames))
        self.n_regions = max(1, -(-self.n_frames // self.region_frames))
        if stems is not None:
            if stems.ndim != 3 or stems.shape[1:] != mixture.shape or stems.dtype != np.float32:
                raise ValueError(f"stems must be float32 (n_stems, 2, {self.n_frames}), got {stems.dtype} {stems.shape}")
            if ready is None:
                ready = np.zeros(self.n_regions, dtype=np.uint8)
            if ready.shape != (self.n_regions,):
                raise ValueError(f"ready must have shape ({self.n_regions},), got {ready.shape}")
        self.stems = stems
        self.ready = ready
        self.fallback_region_frames = max(1, int(fallback_region_frames or self.region_frames))
        self.n_fallback_regions = max(1, -(-self.n_frames // self.fallback_region_frames))
        if fallback is not None:
            if fallback.ndim != 3 or fallback.shape[1:] != mixture.shape or fallback.dtype != np.float32:
                raise ValueError(f"fallback must be float32 (n_stems, 2, {self.n_frames}), got {fallback.dtype} "
                                 f"{fallback.shape}")
            if stems is not None and fallback.shape[0] != stems.shape[0]:
                raise ValueError(f"fallback has {fallback.shape[0]} stems, stems {stems.shape[0]}")
            if fallback_ready is None or fallback_ready.shape != (self.n_fallback_regions,):
                raise ValueError(f"fallback_ready must have shape ({self.n_fallback_regions},)")
        self.fallback = fallback
        self.fallback_ready = fallback_ready if fallback is not None else None
