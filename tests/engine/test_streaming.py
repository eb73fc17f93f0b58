"""The streaming separation worker: order of work, results, cache reuse, seeking, failures."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

from engine.models.catalogue import build_model
from engine.separation.apply import apply_chunked
from engine.separation.cache import StemCache
from engine.separation.runner import ChunkRunner, default_threads
from engine.separation.streaming import STOP_BOUND, StreamingSeparator
from tests.engine.busy import HANG_TIMEOUT, SleepyModel, busy_cores, pid_exists, wait_for

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


def test_the_worker_defaults_to_the_one_thread_rule(cache: StemCache) -> None:
    entry = cache.open("threads", ["a", "b"], 2, 3 * REGION, SR, REGION)
    worker = StreamingSeparator(lambda c: c, song(3 * REGION), entry, 4096)
    assert worker.n_threads == default_threads()
    assert [default_threads(n) for n in (1, 2, 4)] == [1, 1, 1], "one thread up to 4 cores (measured collapse)"
    assert default_threads(8) == 3 and default_threads(16) == 7, "at most half the cores, two kept free"


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


def test_a_seek_while_the_worker_plans_its_run_is_not_lost(cache: StemCache) -> None:
    """The listener jumps just as the worker picks its next region (before the run is published): the jump wins.

    (It was lost: ``prioritise`` found no run to cancel, and the worker separated the whole song from the old
    position first, as ``test_seek_moves_playback_and_separation`` saw on a busy machine.)"""
    mix = song(40 * REGION)
    order: list[int] = []
    model = build_model("identity", {"segment_seconds": 0.2})
    entry = cache.open("race", list(model.sources), 2, mix.shape[1], SR, REGION)
    worker = StreamingSeparator(ChunkRunner(model, n_threads=1), mix, entry, model.segment_samples,
                                on_ready=order.append)
    chosen, seeking, seeked = threading.Event(), threading.Event(), threading.Event()
    pick = worker._next_region

    def next_region_then_let_the_listener_jump() -> int | None:
        k = pick()
        if not chosen.is_set():
            chosen.set()
            seeking.wait(HANG_TIMEOUT)  # the seek arrives now, before the run is published:
            seeked.wait(0.5)  # without one planning step it returns at once; with it, it waits for the plan
        return k

    def seek() -> None:
        seeking.set()
        worker.prioritise(30 * REGION)
        seeked.set()

    worker._next_region = next_region_then_let_the_listener_jump
    worker.start()
    assert chosen.wait(HANG_TIMEOUT)
    seeker = threading.Thread(target=seek)
    seeker.start()
    assert worker.wait_done(HANG_TIMEOUT), worker.error
    seeker.join(HANG_TIMEOUT)
    worker.stop()
    # (A chunk at the old position may still finish as the seek lands; the run must not go on from there.)
    assert order[order.index(30):order.index(30) + 3] == [30, 31, 32]
    assert order.index(30) <= 1, f"the worker went on from the old position: {order[:8]}"


def test_the_child_process_dying_is_one_line_naming_the_signal(
    cache: StemCache, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """``kill -9`` of the separation process: ``error`` says so in one line (no EOFError, no traceback logged)."""
    marker = tmp_path / "in-chunk"
    model = SleepyModel(str(marker), seconds=120.0)
    messages: list[str] = []
    entry = cache.open("killed", list(model.sources), 2, 3 * REGION, SR, REGION)
    worker = StreamingSeparator(None, song(3 * REGION), entry, model.segment_samples, on_error=messages.append,
                                process_model=model, n_threads=1)
    try:
        with caplog.at_level(logging.DEBUG, logger="engine.separation.streaming"):
            worker.start()
            wait_for(marker.exists, "the child process to start its first chunk")
            pid = worker._child.pid
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: worker.error is not None and not worker.alive, "the worker to notice")
        assert worker.error == "the separation process was killed (signal 9, SIGKILL)"
        assert messages == [worker.error]
        assert not any(r.exc_info and r.levelno >= logging.INFO for r in caplog.records), "a traceback was logged"
        assert not pid_exists(pid) and worker._child is None
    finally:
        worker.stop()


def test_stop_is_bounded_with_both_cores_busy(cache: StemCache, tmp_path) -> None:
    """Stopping never waits on a model chunk: with every core busy, ``stop()`` ends the worker thread and the
    child process within ``STOP_BOUND``, while the child is starting and while it is inside a 2-minute chunk."""
    marker = tmp_path / "in-chunk"
    model = SleepyModel(str(marker), seconds=120.0)
    mix = song(3 * REGION)
    for when in ("starting", "inside a chunk"):
        entry = cache.open(f"stop-{when}", list(model.sources), 2, mix.shape[1], SR, REGION)
        worker = StreamingSeparator(None, mix, entry, model.segment_samples, process_model=model, n_threads=1)
        worker.start()
        if when == "inside a chunk":  # (the child's start-up is not what is measured: load it only once inside)
            wait_for(marker.exists, "the child process to start its first chunk")
        with busy_cores():
            wait_for(lambda w=worker: w._child is not None, "the child process to be spawned")
            pid = worker._child.pid
            started = time.monotonic()
            stopped = worker.stop()
            elapsed = time.monotonic() - started
        assert stopped and not worker.alive, f"{when}: the worker did not stop"
        assert elapsed < STOP_BOUND, f"{when}: stop() took {elapsed:.1f} s (promised {STOP_BOUND} s)"
        assert not pid_exists(pid), f"{when}: the child process {pid} is still there"
        assert worker.error is None, worker.error
        entry.close()
