"""Channel conversion: mono to stereo, multichannel (5.1, 7.1, ...) down to stereo, anything to mono.

Multichannel files are assumed to use the WAV/SMPTE channel order (``L R C LFE Ls Rs ...``), which is what
libsndfile and ffmpeg hand back. The downmix follows ITU-R BS.775: ``L' = L + 0.707 C + 0.707 Ls`` (and the mirror
for the right), the LFE channel is dropped, and each output is divided by the sum of its gains so the downmix can
never be louder than the loudest input channel (no clipping; the same normalisation ffmpeg applies by default).
"""

from __future__ import annotations

import numpy as np

_C = 0.7071067811865476  # -3 dB

#: Per input channel, its gain into (left, right), for the layouts ffmpeg and WAVE_FORMAT_EXTENSIBLE use.
_LAYOUTS: dict[int, tuple[str, tuple[tuple[float, float], ...]]] = {
    3: ("3.0 (L R C)", ((1, 0), (0, 1), (_C, _C))),
    4: ("quad (L R Ls Rs)", ((1, 0), (0, 1), (_C, 0), (0, _C))),
    5: ("5.0 (L R C Ls Rs)", ((1, 0), (0, 1), (_C, _C), (_C, 0), (0, _C))),
    6: ("5.1 (L R C LFE Ls Rs)", ((1, 0), (0, 1), (_C, _C), (0, 0), (_C, 0), (0, _C))),
    7: ("6.1 (L R C LFE Cs Ls Rs)", ((1, 0), (0, 1), (_C, _C), (0, 0), (0.5, 0.5), (_C, 0), (0, _C))),
    8: (
        "7.1 (L R C LFE Lb Rb Ls Rs)",
        ((1, 0), (0, 1), (_C, _C), (0, 0), (_C, 0), (0, _C), (_C, 0), (0, _C)),
    ),
}


def downmix_matrix(n_channels: int) -> tuple[np.ndarray, str]:
    """The ``(2, n_channels)`` float32 matrix mapping ``n_channels`` inputs to stereo, and the layout's name.

    Counts without a standard layout (9 and more) alternate: even-numbered channels go left, odd ones right, averaged.
    Each row is normalised to sum to 1.
    """
    if n_channels < 3:
        raise ValueError(f"downmix_matrix needs 3 or more channels, got {n_channels}")
    if n_channels in _LAYOUTS:
        name, gains = _LAYOUTS[n_channels]
        matrix = np.asarray(gains, dtype=np.float64).T
    else:
        name = f"{n_channels} channels (no standard layout: even channels left, odd channels right)"
        matrix = np.zeros((2, n_channels))
        matrix[0, 0::2] = 1.0
        matrix[1, 1::2] = 1.0
    matrix /= matrix.sum(axis=1, keepdims=True)
    return matrix.astype(np.float32), name


def convert_channels(samples: np.ndarray, n_channels: int | None) -> tuple[np.ndarray, str | None]:
    """Convert ``samples`` ``(n_in, n_samples)`` to ``(n_channels, n_samples)``; returns it and a note (or ``None``).

    ``n_channels`` is 1 (average of the stereo downmix), 2 (mono duplicated, more than two downmixed) or ``None``
    (unchanged). The result is float32 and C-contiguous.
    """
    n_in = samples.shape[0]
    if n_channels is None or n_channels == n_in:
        return samples, None
    if n_channels not in (1, 2):
        raise ValueError(f"n_channels must be 1, 2 or None, got {n_channels!r}")
    if n_channels == 2:
        if n_in == 1:
            return np.ascontiguousarray(
                np.repeat(samples, 2, axis=0)
            ), "copied the mono channel to both sides"
        matrix, name = downmix_matrix(n_in)
        return _apply(matrix, samples), f"downmixed {n_in} channels ({name}) to stereo"
    # n_channels == 1
    if n_in == 2:
        mono = samples.mean(axis=0, keepdims=True, dtype=np.float32)
        return np.ascontiguousarray(mono), "mixed stereo down to mono"
    matrix, name = downmix_matrix(n_in)
    mono_matrix = matrix.mean(axis=0, keepdims=True)
    return _apply(mono_matrix, samples), f"downmixed {n_in} channels ({name}) to mono"


def _apply(matrix: np.ndarray, samples: np.ndarray, block: int = 1 << 18) -> np.ndarray:
    """``matrix @ samples`` in blocks (keeps the temporary small for long songs)."""
    out = np.empty((matrix.shape[0], samples.shape[1]), dtype=np.float32)
    for start in range(0, samples.shape[1], block):
        np.matmul(matrix, samples[:, start : start + block], out=out[:, start : start + block])
    return out


def mixing_matrix(n_in: int, n_out: int | None) -> tuple[np.ndarray | None, str | None]:
    """The ``(n_out, n_in)`` float32 matrix :func:`convert_channels` applies, and its note; ``(None, None)`` when
    nothing changes (``n_out`` is ``None`` or ``n_in``). Blocks ``(n_frames, n_in)`` map as ``block @ matrix.T``."""
    if n_out is None or n_out == n_in:
        return None, None
    if n_out not in (1, 2):
        raise ValueError(f"n_channels must be 1, 2 or None, got {n_out!r}")
    if n_out == 2:
        if n_in == 1:
            return np.ones((2, 1), dtype=np.float32), "copied the mono channel to both sides"
        matrix, name = downmix_matrix(n_in)
        return matrix, f"downmixed {n_in} channels ({name}) to stereo"
    if n_in == 2:
        return np.full((1, 2), 0.5, dtype=np.float32), "mixed stereo down to mono"
    matrix, name = downmix_matrix(n_in)
    return matrix.mean(axis=0, keepdims=True), f"downmixed {n_in} channels ({name}) to mono"
