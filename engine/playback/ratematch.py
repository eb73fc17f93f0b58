"""Stems at the output device's rate when it differs from the model's: resampled region by region as they arrive.

The separation worker fills the stem store at the model's rate, in regions, in any order (it follows seeks).
:class:`RegionResampler` keeps a second buffer at the device rate: when store region ``k`` is ready it resamples
that region with context samples on both sides, and re-does the edge strips of its ready neighbours (whose
context was missing when they were resampled), so the result matches a whole-track resampling away from unready
regions. The mixer's own region grid (``region_frames`` at the device rate) is marked ready only when every store
region that feeds it, context included, is ready.
"""

from __future__ import annotations

import math
import tempfile
import threading

import numpy as np
import soxr

#: Context (input samples) taken on each side of a resampled span; soxr "HQ" needs far fewer.
CONTEXT = 512


class RegionResampler:
    """Device-rate copy of a stem store that fills in as store regions become ready.

    Args:
        source: ``(n_stems, n_channels, n_in)`` float32 at ``rate_in`` (the store's memmap).
        region_samples: the store's region length (input samples).
        rate_in, rate_out: model and device rates.

    Attributes:
        stems: ``(n_stems, n_channels, n_out)`` float32 at ``rate_out`` (a temporary file mapping).
        ready: ``(n_out_regions,)`` uint8 for the mixer, region length :attr:`region_frames`.
    """

    def __init__(self, source: np.ndarray, region_samples: int, rate_in: int, rate_out: int) -> None:
        self.source = source
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        g = math.gcd(self.rate_in, self.rate_out)
        self._q_in, self._q_out = self.rate_in // g, self.rate_out // g  # aligned grid: q_in in <-> q_out out
        self.n_in = source.shape[-1]
        self.n_out = self._to_out(self.n_in)
        self.region_samples = int(region_samples)
        self.n_in_regions = max(1, -(-self.n_in // self.region_samples))
        self.region_frames = max(1, self._to_out(self.region_samples))
        self.n_out_regions = max(1, -(-self.n_out // self.region_frames))
        self._file = tempfile.TemporaryFile(prefix="shotoku-stems-")
        self._file.truncate(int(np.prod(source.shape[:2])) * self.n_out * 4)
        self.stems = np.memmap(self._file, dtype=np.float32, mode="r+", shape=(*source.shape[:2], self.n_out))
        self.in_ready = np.zeros(self.n_in_regions, dtype=np.uint8)
        self.ready = np.zeros(self.n_out_regions, dtype=np.uint8)
        self._lock = threading.Lock()

    def _to_out(self, n_in: int) -> int:
        return int(round(n_in * self.rate_out / self.rate_in))

    def _resample_span(self, in_start: int, in_stop: int) -> None:
        """Write device samples covering input ``[in_start, in_stop)`` (aligned to the rate grid)."""
        q_in, q_out = self._q_in, self._q_out
        a = (in_start // q_in) * q_in  # an input sample that falls exactly on an output sample
        ctx_a = max(0, (a - CONTEXT) // q_in * q_in)
        ctx_b = min(self.n_in, in_stop + CONTEXT)
        out_a = a // q_in * q_out
        out_b = min(self.n_out, self._to_out(in_stop))
        if out_b <= out_a:
            return
        offset = (a - ctx_a) // q_in * q_out
        for s in range(self.source.shape[0]):
            chunk = np.ascontiguousarray(self.source[s, :, ctx_a:ctx_b].T)
            res = soxr.resample(chunk, self.rate_in, self.rate_out, quality="HQ")
            take = min(out_b - out_a, res.shape[0] - offset)
            self.stems[s, :, out_a:out_a + take] = res[offset:offset + take].T

    def region_ready(self, k: int) -> list[int]:
        """Store region ``k`` became ready: resample it (and its neighbours' edges); returns newly ready mixer regions."""
        with self._lock:
            self.in_ready[k] = 1
            start = k * self.region_samples
            stop = min(self.n_in, start + self.region_samples)
            lo = start - CONTEXT if k > 0 and self.in_ready[k - 1] else start
            hi = stop + CONTEXT if k + 1 < self.n_in_regions and self.in_ready[k + 1] else stop
            self._resample_span(max(0, lo), min(self.n_in, hi))
            newly = []
            first = max(0, self._to_out(start - CONTEXT) // self.region_frames)
            last = min(self.n_out_regions - 1, self._to_out(stop + CONTEXT) // self.region_frames)
            for j in range(first, last + 1):
                if not self.ready[j] and self._feeds_ready(j):
                    newly.append(j)
            for j in newly:
                self.ready[j] = 1
            return newly

    def _feeds_ready(self, j: int) -> bool:
        out_a, out_b = j * self.region_frames, min(self.n_out, (j + 1) * self.region_frames)
        in_a = max(0, int(out_a * self.rate_in / self.rate_out) - CONTEXT)
        in_b = min(self.n_in - 1, int(math.ceil(out_b * self.rate_in / self.rate_out)) + CONTEXT)
        k0, k1 = in_a // self.region_samples, min(self.n_in_regions - 1, in_b // self.region_samples)
        return bool(self.in_ready[k0:k1 + 1].all())

    def close(self) -> None:
        self._file.close()
