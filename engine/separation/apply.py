"""Chunked inference with overlap-add: run a model on fixed-length chunks of a long track and blend them.

The chunk grid is global (chunk ``k`` starts at ``k * stride``), whatever region is asked for, so a region
separated on its own (streaming from the play position) is sample-for-sample the block the whole-track run gives.
Chunks are blended with a triangular weight and normalised by the summed weights, accumulated in float64: an
identity model gives back its input exactly. Memory is bounded by one chunk: only a rolling buffer of
``segment_samples`` is held, and finished blocks are yielded as soon as no later chunk can touch them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from engine.errors import SeparationCancelled

#: ``(n_channels, segment_samples) float32 -> (n_stems, n_channels, segment_samples) float32``
ModelFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Progress:
    """How far a chunked run is: chunks done out of the total, and the samples they finished."""

    done_chunks: int
    n_chunks: int
    start_sample: int
    stop_sample: int
    done_until: int

    @property
    def fraction(self) -> float:
        return self.done_chunks / self.n_chunks if self.n_chunks else 1.0


ProgressFn = Callable[[Progress], None]


def chunk_stride(segment_samples: int, overlap: float) -> int:
    """Hop between chunk starts: ``segment * (1 - overlap)``, at least 1 sample."""
    if segment_samples < 1:
        raise ValueError("segment_samples must be positive")
    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must be in [0, 1)")
    return max(1, int(segment_samples * (1.0 - overlap)))


def triangle_weight(segment_samples: int) -> np.ndarray:
    """Blend weight ``(segment_samples,)`` float64: rises 1..n/2, falls back to 1; never zero."""
    half = segment_samples // 2
    return np.concatenate(
        [np.arange(1, half + 1, dtype=np.float64), np.arange(segment_samples - half, 0, -1, dtype=np.float64)]
    )


def chunk_range(start: int, stop: int, segment_samples: int, stride: int) -> range:
    """Indices ``k`` of the global chunks ``[k*stride, k*stride+segment)`` that overlap ``[start, stop)``."""
    first = max(0, math.ceil((start - segment_samples + 1) / stride))
    last = (stop - 1) // stride
    return range(first, last + 1)


def iter_separated_blocks(
    model_fn: ModelFn,
    mix: np.ndarray,
    n_stems: int,
    segment_samples: int,
    overlap: float = 0.25,
    start: int = 0,
    stop: int | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressFn | None = None,
    n_out_channels: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Separate ``mix[:, start:stop]`` chunk by chunk, yielding finished blocks in order.

    Args:
        model_fn: maps a chunk ``(n_channels, segment_samples)`` to stems ``(n_stems, n_channels, segment_samples)``.
        mix: the whole track ``(n_channels, n_samples)``; samples outside ``[start, stop)`` are used as context.
        n_stems: the number of stems ``model_fn`` returns.
        segment_samples: chunk length (chunks past the end of the track are zero-padded to it).
        overlap: fraction of a chunk shared with the next one, in ``[0, 1)``.
        start, stop: the region to separate (default: the whole track).
        cancel: when set, raises :class:`SeparationCancelled` before the next chunk.
        progress: called after each chunk.
        n_out_channels: channels of the model's output when they differ from the input's (oracle models take
            the reference stems stacked on the channel axis).

    Yields:
        ``(block_start, block)`` with ``block`` float32 ``(n_stems, n_channels, block_len)``; the blocks tile
        ``[start, stop)`` without gaps, each yielded as soon as it is final.
    """
    n_channels, n_samples = mix.shape
    n_out_channels = n_out_channels or n_channels
    stop = n_samples if stop is None else min(stop, n_samples)
    start = max(0, start)
    if start >= stop:
        return
    stride = chunk_stride(segment_samples, overlap)
    weight = triangle_weight(segment_samples)
    chunks = chunk_range(start, stop, segment_samples, stride)
    acc = np.zeros((n_stems, n_out_channels, segment_samples), dtype=np.float64)
    weight_sum = np.zeros(segment_samples, dtype=np.float64)
    chunk = np.zeros((n_channels, segment_samples), dtype=np.float32)
    emitted = start
    for done, k in enumerate(chunks):
        if cancel is not None and cancel.is_set():
            raise SeparationCancelled()
        offset = k * stride
        available = min(segment_samples, n_samples - offset)
        chunk[:, :available] = mix[:, offset : offset + available]
        chunk[:, available:] = 0.0
        out = np.asarray(model_fn(chunk))
        if out.shape != acc.shape:
            raise ValueError(f"model returned shape {out.shape}, expected {acc.shape}")
        # acc/weight_sum cover [offset, offset + segment): add this chunk's weighted output.
        acc += out * weight
        weight_sum += weight
        # Everything before the next chunk's start is final.
        final_until = min(stop, offset + stride if k != chunks[-1] else offset + segment_samples)
        if final_until > emitted:
            lo, hi = emitted - offset, final_until - offset
            block = (acc[..., lo:hi] / weight_sum[lo:hi]).astype(np.float32)
            yield emitted, block
            emitted = final_until
        if progress is not None:
            progress(Progress(done + 1, len(chunks), start, stop, emitted))
        # Shift the rolling buffers by one stride for the next chunk.
        acc[..., :-stride] = acc[..., stride:]
        acc[..., -stride:] = 0.0
        weight_sum[:-stride] = weight_sum[stride:]
        weight_sum[-stride:] = 0.0


def apply_chunked(
    model_fn: ModelFn,
    mix: np.ndarray,
    n_stems: int,
    segment_samples: int,
    overlap: float = 0.25,
    start: int = 0,
    stop: int | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressFn | None = None,
    n_out_channels: int | None = None,
) -> np.ndarray:
    """:func:`iter_separated_blocks` collected into one array ``(n_stems, n_out_channels, stop - start)`` float32."""
    n_channels, n_samples = mix.shape
    stop = n_samples if stop is None else min(stop, n_samples)
    start = max(0, start)
    out = np.zeros((n_stems, n_out_channels or n_channels, max(0, stop - start)), dtype=np.float32)
    for block_start, block in iter_separated_blocks(
        model_fn, mix, n_stems, segment_samples, overlap, start, stop, cancel, progress, n_out_channels
    ):
        out[..., block_start - start : block_start - start + block.shape[-1]] = block
    return out
