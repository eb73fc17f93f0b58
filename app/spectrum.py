"""Spectrogram columns for display (numpy, no Qt): dB magnitudes on a frame grid sized for a whole song.

Frame ``f`` is centred on sample ``f * hop_length``; samples outside the signal count as silence. The grid's hop
grows with the song so that a whole song fits in at most ``max_frames`` columns (pyqtgraph then draws it fast).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: dB range shown (the image levels): quieter is black, louder saturates.
DB_FLOOR = -100.0
DB_CEILING = 0.0
#: Lowest frequency of the log-frequency view.
LOG_MIN_HZ = 30.0


@dataclass(frozen=True)
class SpectrogramGrid:
    """Frame layout of one song's spectrograms (shared by the mixture and every stem)."""

    samplerate: int
    n_samples: int
    n_fft: int
    hop_length: int

    @property
    def n_frames(self) -> int:
        return self.n_samples // self.hop_length + 1

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def duration_seconds(self) -> float:
        return self.n_samples / self.samplerate

    def frames_complete_before(self, n_done: int) -> int:
        """How many frames lie wholly inside samples ``[0, n_done)`` (all of them once the song is done)."""
        if n_done >= self.n_samples:
            return self.n_frames
        return max(0, min(self.n_frames, (n_done - self.n_fft // 2) // self.hop_length + 1))


def format_time(seconds: float) -> str:
    """``"1:05"`` or ``"1:05.3"`` style labels (the time axis, the transport, the status line)."""
    seconds = max(0.0, seconds)
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}" if rest % 1 else f"{int(minutes)}:{int(rest):02d}"


def grid_for(n_samples: int, samplerate: int, max_frames: int = 3000, n_fft: int = 2048) -> SpectrogramGrid:
    """A grid for a song of ``n_samples``: hop at least ``n_fft // 4``, at most ``max_frames`` frames."""
    hop = max(n_fft // 4, math.ceil(max(1, n_samples) / max(1, max_frames - 1)))
    return SpectrogramGrid(samplerate, n_samples, n_fft, hop)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """``(n_channels, n_samples)`` -> ``(n_samples,)`` float32 mean of the channels."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=0) if samples.ndim == 2 else samples


def compute_columns(
    mono: np.ndarray, grid: SpectrogramGrid, first: int = 0, stop: int | None = None, batch: int = 256,
    offset: int = 0,
) -> np.ndarray:
    """dB magnitude of frames ``[first, stop)``: ``(n_bins, n)`` float32, C-contiguous, finite.

    ``mono`` holds the song's samples from ``offset`` on (a slice: only the frames' span need be read; samples
    outside it count as silence). 0 dB is a full-scale sine; values are clipped to ``[DB_FLOOR, 0]``.
    """
    stop = grid.n_frames if stop is None else min(stop, grid.n_frames)
    n = max(0, stop - first)
    out = np.full((grid.n_bins, n), DB_FLOOR, dtype=np.float32)
    if n == 0:
        return out
    window = np.hanning(grid.n_fft).astype(np.float32)
    scale = 2.0 / float(window.sum())
    half = grid.n_fft // 2
    for b0 in range(0, n, batch):
        b1 = min(n, b0 + batch)
        starts = (np.arange(first + b0, first + b1) * grid.hop_length - half - offset)[:, None]
        index = starts + np.arange(grid.n_fft)[None, :]
        valid = (index >= 0) & (index < mono.shape[0])
        frames = np.where(valid, mono[np.clip(index, 0, max(0, mono.shape[0] - 1))], 0.0).astype(np.float32)
        spectrum = np.abs(np.fft.rfft(frames * window, axis=1)) * scale
        db = 20.0 * np.log10(np.maximum(spectrum, 1e-10))
        out[:, b0:b1] = np.clip(db, DB_FLOOR, 0.0).T
    return np.ascontiguousarray(out)


def log_rows(grid: SpectrogramGrid, n_rows: int = 384) -> tuple[np.ndarray, float, float]:
    """Bin index for each row of a log-frequency image, and its ``log10(Hz)`` range ``(bottom, top)``."""
    nyquist = grid.samplerate / 2.0
    bottom, top = math.log10(LOG_MIN_HZ), math.log10(nyquist)
    freqs = 10.0 ** np.linspace(bottom, top, n_rows)
    bins = np.clip(np.round(freqs / nyquist * (grid.n_bins - 1)).astype(np.int64), 0, grid.n_bins - 1)
    return bins, bottom, top


def frame_span(grid: SpectrogramGrid, first: int, stop: int) -> tuple[int, int]:
    """Samples ``[start, end)`` (clipped to the song) that frames ``[first, stop)`` read."""
    half = grid.n_fft // 2
    return max(0, first * grid.hop_length - half), min(grid.n_samples, (stop - 1) * grid.hop_length + half)


def computable_frames(grid: SpectrogramGrid, ready: np.ndarray, region_samples: int) -> np.ndarray:
    """``(n_frames,)`` bool: frames whose whole window lies in ready regions (``ready`` ``(n_regions,)`` bool)."""
    if ready.size == 0:
        return np.zeros(grid.n_frames, dtype=bool)
    centres = np.arange(grid.n_frames) * grid.hop_length
    half = grid.n_fft // 2
    first = np.clip((centres - half) // region_samples, 0, ready.size - 1)
    last = np.clip((np.minimum(centres + half, grid.n_samples) - 1) // region_samples, 0, ready.size - 1)
    return ready[first] & ready[last]


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` runs of True in a bool array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
