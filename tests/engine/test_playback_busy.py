"""The session's promises that a busy machine tests: closing is bounded, a model change never brings back what the
listener muted, a separation process that dies says why in one line.

The load is started by the tests themselves (``busy_cores``: one busy-loop process per core, at the tests' own
niceness); every wait is on a state, with :data:`~tests.engine.busy.HANG_TIMEOUT` only to detect a hang.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.audio import Audio
from engine.playback.session import CLOSE_BOUND, PlaybackSession
from engine.separation.cache import StemCache
from tests.engine.busy import GainModel, SleepyModel, busy_cores, pid_exists, wait_for

SR = 44100
BLOCK = 512
REGION = 16384

pytestmark = pytest.mark.timeout(600)


def tone(seconds: float) -> Audio:
    t = np.arange(int(seconds * SR)) / SR
    return Audio(np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32),
                 SR)


def render(session: PlaybackSession, n_blocks: int = 1) -> np.ndarray:
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    chunks = []
    for _ in range(n_blocks):
        session._render(out)
        chunks.append(out.copy())
    return np.concatenate(chunks)


def shotoku_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("shotoku-") and t.is_alive()]


def child_pid(session: PlaybackSession) -> int:
    child = session.worker._child if session.worker is not None else None
    assert child is not None, "the separation process is running"
    return child.pid


@pytest.mark.parametrize("when", ["opening", "starting the child", "inside a model chunk"])
def test_close_joins_every_thread_within_its_bound_with_both_cores_busy(
    cache: StemCache, tmp_path: Path, when: str
) -> None:
    """``close()`` returns within ``CLOSE_BOUND`` with every core busy, and then no thread or process it started
    is left: right after opening (hashing the song), while the child process starts (importing torch on busy
    cores) and while the child is inside a 2-minute chunk.

    (It waited for the model chunk: up to 30 s per thread, then returned with the worker still alive.)"""
    assert shotoku_threads() == [], "an earlier test left threads behind"
    marker = tmp_path / "in-chunk"
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        if when != "inside a model chunk":
            with busy_cores():
                session.open(tone(120.0), model=SleepyModel(str(marker), 120.0), region_samples=REGION)
                if when == "starting the child":
                    wait_for(lambda: session.worker is not None and session.worker._child is not None, "the child")
                started = time.monotonic()
                stopped = session.close()
                elapsed = time.monotonic() - started
        else:
            session.open(tone(20.0), model=SleepyModel(str(marker), 120.0), region_samples=REGION)
            wait_for(marker.exists, "the child to start its first chunk")  # (its start-up is not what is measured)
            pid = child_pid(session)
            with busy_cores():
                started = time.monotonic()
                stopped = session.close()
                elapsed = time.monotonic() - started
            assert not pid_exists(pid), f"the separation process {pid} is still there"
    finally:
        session.close()
    assert elapsed < CLOSE_BOUND, f"close() took {elapsed:.1f} s (promised {CLOSE_BOUND} s)"
    assert shotoku_threads() == [] and multiprocessing.active_children() == [], shotoku_threads()
    assert stopped, "close() says something did not stop"


def test_after_a_model_switch_the_muted_vocals_never_come_back(cache: StemCache) -> None:
    """Karaoke (vocals muted), then another model: the old model's stems play until the new one's are ready for
    each region, so the vocals are never heard again. (The mixer went back to the mixture: the vocals came back
    for as long as the new model worked.)

    Model A's vocals are the whole song (its karaoke is silence); model B's are too, plus a bass at a quarter of
    the song, and B waits for a gate. Any sound above B's bass can only be the mixture."""
    gate = threading.Event()
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1, worker_process=False)
    try:
        audio = tone(30.0)
        session.open(audio, model=GainModel([1.0, 0.0, 0.0, 0.0]), region_samples=REGION, play=False)
        mix = session.mix
        mix.strip_for("vocals").gain_db = -math.inf
        session.apply_mix(mix)
        wait_for(lambda: session.separation_done and session.region_ready.all(), "model A's stems")
        session.play()
        render(session, 4)  # fade in
        assert session.mixer.separated_weight == 1.0
        assert np.abs(render(session, 8)).max() < 1e-4, "karaoke of model A is silence"

        session.change_model(GainModel([1.0, 0.0, 0.25, 0.0], gate=gate))
        while_b_works = render(session, 200)  # B is held: nothing of it is ready
        assert not session.region_ready.any()
        assert np.abs(while_b_works).max() < 1e-4, "the vocals came back while the new model worked"
        previous = session.previous_separation  # what the app needs to keep model A's lanes drawn
        assert previous is not None and previous.closed and previous.regions_ready.all()
        assert previous.stems is not None and previous.stems.shape == (4, 2, audio.samples.shape[1])
        assert session.previous_region_ready.all()

        gate.set()
        played = [render(session)]
        deadline = time.monotonic() + 180
        while not (session.separation_done and session.mixer.separated_weight == 1.0):
            assert time.monotonic() < deadline, "model B never finished"
            played.append(render(session))
            time.sleep(0.002)
        played.append(render(session, 4))
        everything = np.concatenate(played)
        assert np.abs(everything).max() <= 0.25 * 0.3 * 1.01, "louder than B's bass: the mixture came back"
        position = session.mixer.position
        expect = 0.25 * audio.samples[:, position - BLOCK:position].T
        np.testing.assert_allclose(played[-1][-BLOCK:], expect, atol=1e-4)  # B's stems play now
    finally:
        gate.set()
        session.close()


def test_a_killed_separation_process_is_one_line_and_the_song_plays_on(cache: StemCache, tmp_path: Path) -> None:
    """``kill -9`` of the child: the separation's ``error`` (and the session's message) says so in one line, no
    EOFError; the mixture plays on. (``play`` printed an EOFError traceback and "separation failed: ".)"""
    marker = tmp_path / "in-chunk"
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        session.open(tone(20.0), model=SleepyModel(str(marker), 120.0), region_samples=REGION)
        wait_for(marker.exists, "the child to start its first chunk")
        os.kill(child_pid(session), signal.SIGKILL)
        wait_for(lambda: session.separation.error is not None, "the separation's error")
        assert session.separation.error == "the separation process was killed (signal 9, SIGKILL)"
        assert session.message == session.separation.error
        assert np.abs(render(session, 8)).max() > 0.1, "the mixture plays on"
    finally:
        session.close()
    assert multiprocessing.active_children() == []
