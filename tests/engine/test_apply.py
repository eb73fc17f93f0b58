"""The chunked engine: identity in, identity out; regions equal the whole-track run; cancel and progress."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import SeparationCancelled
from engine.separation.apply import apply_chunked, chunk_range, iter_separated_blocks, triangle_weight


def identity_fn(n_stems: int):
    return lambda chunk: np.repeat(chunk[None], n_stems, axis=0)


def smoothing_fn(chunk: np.ndarray) -> np.ndarray:
    """A context-dependent 'model': a moving average, so chunk edges would show if blending were wrong."""
    kernel = np.ones(31, dtype=np.float32) / 31
    out = np.stack([np.convolve(ch, kernel, mode="same") for ch in chunk])
    return np.stack([out, chunk - out]).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    n_samples=st.integers(1, 5000),
    segment=st.integers(1, 700),
    overlap=st.floats(0.0, 0.9),
    n_channels=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_identity_model_returns_input_exactly(n_samples, segment, overlap, n_channels, seed):
    mix = np.random.default_rng(seed).standard_normal((n_channels, n_samples)).astype(np.float32)
    out = apply_chunked(identity_fn(2), mix, 2, segment, overlap)
    assert out.shape == (2, n_channels, n_samples)
    assert np.array_equal(out[0], mix) and np.array_equal(out[1], mix)


@settings(max_examples=40, deadline=None)
@given(
    n_samples=st.integers(50, 4000),
    segment=st.integers(40, 600),
    overlap=st.floats(0.0, 0.75),
    bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_region_equals_whole_track(n_samples, segment, overlap, bounds):
    mix = np.random.default_rng(1).standard_normal((2, n_samples)).astype(np.float32)
    start, stop = sorted(int(b * n_samples) for b in bounds)
    whole = apply_chunked(smoothing_fn, mix, 2, segment, overlap)
    region = apply_chunked(smoothing_fn, mix, 2, segment, overlap, start=start, stop=stop)
    assert region.shape == (2, 2, stop - start)
    np.testing.assert_array_equal(region, whole[..., start:stop])


def test_blocks_tile_the_region_in_order_and_memory_is_one_chunk():
    mix = np.random.default_rng(2).standard_normal((2, 10_000)).astype(np.float32)
    starts, lengths = [], []
    for block_start, block in iter_separated_blocks(smoothing_fn, mix, 2, 1000, 0.5, start=1234, stop=8765):
        starts.append(block_start)
        lengths.append(block.shape[-1])
        assert block.dtype == np.float32
        assert block.shape[-1] <= 1000  # never more than one chunk held back
    assert starts[0] == 1234
    assert all(a + n == b for a, n, b in zip(starts, lengths, starts[1:]))
    assert starts[-1] + lengths[-1] == 8765


def test_cross_fade_hides_chunk_edges():
    """A moving average zero-pads at chunk edges; the triangular cross-fade must make that error small,
    and far smaller than hard cuts (no overlap) do."""
    t = np.arange(20_000) / 44100
    mix = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    reference = smoothing_fn(mix)  # one chunk covering everything
    inner = slice(100, -100)
    blended = np.abs(apply_chunked(smoothing_fn, mix, 2, 2048, 0.25)[..., inner] - reference[..., inner]).max()
    hard = np.abs(apply_chunked(smoothing_fn, mix, 2, 2048, 0.0)[..., inner] - reference[..., inner]).max()
    assert hard > 0.1  # the edge artefact is real
    assert blended < 0.01 and blended < hard / 20


def test_triangle_weight_is_positive_and_symmetric():
    for n in (1, 2, 7, 1024):
        w = triangle_weight(n)
        assert w.shape == (n,) and (w > 0).all()
        np.testing.assert_array_equal(w, w[::-1])


def test_chunk_range_covers_region():
    stride, segment = 300, 400
    for start, stop in [(0, 1), (299, 301), (1000, 5000)]:
        ks = chunk_range(start, stop, segment, stride)
        covered = set()
        for k in ks:
            covered.update(range(k * stride, k * stride + segment))
        assert set(range(start, stop)) <= covered
        assert all(k * stride < stop and k * stride + segment > start for k in ks)


def test_cancel_stops_within_one_chunk():
    mix = np.zeros((2, 100_000), dtype=np.float32)
    cancel = threading.Event()
    calls = []

    def fn(chunk):
        calls.append(1)
        if len(calls) == 3:
            cancel.set()
        return np.repeat(chunk[None], 1, axis=0)

    with pytest.raises(SeparationCancelled):
        apply_chunked(fn, mix, 1, 1000, 0.0, cancel=cancel)
    assert len(calls) == 3


def test_progress_reaches_one_and_counts_chunks():
    mix = np.zeros((1, 9000), dtype=np.float32)
    seen = []
    apply_chunked(identity_fn(1), mix, 1, 1000, 0.5, progress=seen.append)
    assert seen[-1].fraction == 1.0
    assert [p.done_chunks for p in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].done_until == 9000


def test_wrong_model_output_shape_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        apply_chunked(lambda c: c, np.zeros((2, 100), np.float32), 2, 50)
