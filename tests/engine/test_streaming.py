"""The streaming separation worker: order of work, results, cache reuse, seeking, failures."""

from __future__ import annotations

import threading
import time

import numpy as np

from engine.models.catalogue import build_model
from engine.separation.apply import apply_chunked
from engine.separation.cache import StemCache
from engine.separation.runner import ChunkRunner
from engine.separation.streaming import StreamingSeparator, default_worker_threads

SR = 44100
REGION = 8192


def song(n_samples: int = 10 * REGION + 1000, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal((2, n_samples))).astype(np.float32)


def make_worker(cache: StemCache, mix: np.ndarray, model, key: str = "song", order: list | None = None,
                segment: int | None = None) -> StreamingSeparator:
    entry = cache.open(key, list(model.sources), 2, mix.shape[1], SR, REGION)
    return StreamingSeparator(
        ChunkRunner(model, n_threads=1), mix, entry, segment or model.segment_samples,
        on_ready=(order.append if order is not None else None),
    )


def run_to_end(cache: StemCache, mix: np.ndarray, model) -> StreamingSeparator:
    """A worker that separated all of ``mix`` and stopped (its store entry still open)."""
    worker = make_worker(cache, mix, model)
    worker.start()
    assert worker.wait_done(60)
    worker.stop()
    return worker


def test_identity_model_fills_the_store_with_the_input(cache: StemCache) -> None:
    mix = song()
    model = build_model("identity", {"segment_seconds": 0.3})
    worker = make_worker(cache, mix, model)
    worker.start()
    assert worker.wait_done(60), worker.error
    worker.stop()
    for s in range(4):
        np.testing.assert_allclose(np.asarray(worker.entry.stems[s]), mix, atol=1e-6)
    assert worker.entry.complete and worker.regions_separated == worker.entry.n_regions


def test_streamed_regions_equal_the_whole_track_run(cache: StemCache) -> None:
    """Starting mid-song and wrapping around gives the same stems as one whole-track pass (tiny conv model)."""
    mix = song()
    model = build_model("tiny", {"segment_seconds": 0.25})
    worker = make_worker(cache, mix, model)
    worker.prioritise(6 * REGION + 10)
    worker.start()
    assert worker.wait_done(60), worker.error
    worker.stop()
    whole = apply_chunked(ChunkRunner(model, n_threads=1), mix, 4, model.segment_samples)
    np.testing.assert_allclose(np.asarray(worker.entry.stems), whole, atol=2e-5)


def test_work_starts_at_the_priority_position_and_moves_ahead(cache: StemCache) -> None:
    mix = song()
    order: list[int] = []
    worker = make_worker(cache, mix, build_model("tiny", {"segment_seconds": 0.25}), order=order)
    worker.prioritise(4 * REGION + 5)
    worker.start()
    assert worker.wait_done(60), worker.error
    worker.stop()
    assert order == [4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3]


def test_seek_reprioritises_a_running_separation(cache: StemCache) -> None:
    mix = song(40 * REGION)
    order: list[int] = []
    gate = threading.Event()
    model = build_model("tiny", {"segment_seconds": 0.2})
    inner = ChunkRunner(model, n_threads=1)

    def slow(chunk: np.ndarray) -> np.ndarray:
        gate.wait(5)  # hold the worker until the test has seeked
        return inner(chunk)

    entry = cache.open("seek", list(model.sources), 2, mix.shape[1], SR, REGION)
    worker = StreamingSeparator(slow, mix, entry, model.segment_samples, on_ready=order.append)
    worker.start()
    worker.prioritise(30 * REGION)  # the listener jumped ahead while region 0 is being worked on
    gate.set()
    assert worker.wait_done(120), worker.error
    worker.stop()
    assert order[0] in (0, 30), order
    assert order[order.index(30):order.index(30) + 3] == [30, 31, 32]
    assert order.index(30) <= 2, f"work moved to the new position late: {order[:6]}"


def test_reopening_verifies_instead_of_separating(cache: StemCache) -> None:
    mix = song()
    model = build_model("tiny", {"segment_seconds": 0.25})
    first = run_to_end(cache, mix, model)
    first.entry.close()

    calls = []
    entry = cache.open("song", list(model.sources), 2, mix.shape[1], SR, REGION)
    second = StreamingSeparator(lambda c: calls.append(1) or np.zeros((4, *c.shape), np.float32), mix, entry,
                                model.segment_samples)
    second.start()
    assert second.wait_done(30)
    second.stop()
    assert calls == [] and second.regions_verified == entry.n_regions and second.regions_separated == 0


def test_a_corrupt_cached_region_is_recomputed(cache: StemCache) -> None:
    mix = song()
    model = build_model("identity", {"segment_seconds": 0.3})
    first = run_to_end(cache, mix, model)
    first.entry.stems[1, 0, 3 * REGION + 17] = 42.0  # bit rot in region 3
    first.entry.close()
    second = make_worker(cache, mix, model)
    second.start()
    assert second.wait_done(60)
    second.stop()
    assert second.regions_separated == 1 and second.regions_verified == second.entry.n_regions - 1
    np.testing.assert_allclose(np.asarray(second.entry.stems[1]), mix, atol=1e-6)


def test_model_failure_is_reported_not_raised(cache: StemCache) -> None:
    messages: list[str] = []
    entry = cache.open("bad", ["a", "b"], 2, 3 * REGION, SR, REGION)

    def broken(chunk: np.ndarray) -> np.ndarray:
        raise RuntimeError("out of memory")

    worker = StreamingSeparator(broken, song(3 * REGION), entry, 4096, on_error=messages.append)
    worker.start()
    worker._thread.join(10)
    assert not worker.alive and worker.error and "out of memory" in worker.error and messages == [worker.error]


def test_default_thread_count_leaves_a_core() -> None:
    import os

    assert default_worker_threads() == max(1, (os.cpu_count() or 1) - 1)


def test_process_mode_gives_the_same_stems_and_follows_seeks(cache: StemCache) -> None:
    """The model in a child process: same samples as in-thread, written into the same store file."""
    mix = song()
    model = build_model("tiny", {"segment_seconds": 0.25})
    order: list[int] = []
    entry = cache.open("proc", list(model.sources), 2, mix.shape[1], SR, REGION)
    worker = StreamingSeparator(None, mix, entry, model.segment_samples, on_ready=order.append,
                                process_model=model, n_threads=1)
    worker.prioritise(7 * REGION)
    worker.start()
    assert worker.wait_done(120), worker.error
    worker.stop()
    assert order[0] == 7 and sorted(order) == list(range(entry.n_regions))
    whole = apply_chunked(ChunkRunner(model, n_threads=1), mix, 4, model.segment_samples)
    np.testing.assert_allclose(np.asarray(entry.stems), whole, atol=2e-5)
    assert worker._child is None, "the child process was stopped"


def test_cursor_tells_how_far_the_current_run_is_final(cache: StemCache) -> None:
    """``cursor``: the run's start before its first block, then each announced region's end or beyond; -1 after."""
    mix = song(6 * REGION)
    gate = threading.Event()
    model = build_model("tiny", {"segment_seconds": 0.2})
    inner = ChunkRunner(model, n_threads=1)

    def gated(chunk: np.ndarray) -> np.ndarray:
        gate.wait(5)
        return inner(chunk)

    seen: list[tuple[int, int]] = []
    entry = cache.open("cursor", list(model.sources), 2, mix.shape[1], SR, REGION)
    worker = StreamingSeparator(gated, mix, entry, model.segment_samples,
                                on_ready=lambda k: seen.append((k, worker.cursor)))
    assert worker.cursor == -1
    worker.prioritise(2 * REGION + 7)
    worker.start()
    deadline = time.monotonic() + 10
    while worker.cursor < 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert worker.cursor == 2 * REGION, "the run starts at its first region; nothing is final yet"
    gate.set()
    assert worker.wait_done(60), worker.error
    worker.stop()
    assert worker.cursor == -1
    assert [k for k, _ in seen] == [2, 3, 4, 5, 0, 1]
    assert all(cursor >= min(mix.shape[1], (k + 1) * REGION) for k, cursor in seen), seen
