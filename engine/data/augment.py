"""Data augmentation for source-separation training: pure numpy functions on stem stacks.

A stem stack is float32 ``(n_stems, n_channels, n_samples)``; the mixture is always recomputed as its sum, so the
augmented example stays additive.
"""

from __future__ import annotations

import numpy as np


def random_gains(stems: np.ndarray, rng: np.random.Generator, low: float = 0.25, high: float = 1.25) -> np.ndarray:
    """Scale each stem of ``(n_stems, n_channels, n_samples)`` by its own uniform gain in ``[low, high]``."""
    gains = rng.uniform(low, high, size=(stems.shape[0], 1, 1)).astype(np.float32)
    return (stems * gains).astype(np.float32)


def channel_swap(stems: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Swap left and right of each stereo stem independently with probability ``p`` (mono stems unchanged)."""
    if stems.shape[1] != 2:
        return stems
    out = stems.copy()
    swap = rng.random(stems.shape[0]) < p
    out[swap] = out[swap][:, ::-1]
    return out


def augment_stems(stems: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The standard supervised augmentation: per-stem gain, then per-stem channel swap."""
    return channel_swap(random_gains(stems, rng), rng)
