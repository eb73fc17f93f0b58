"""The session poller against the moments between the session's steps (what CI once caught in the full app)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from app.playback import SessionPoller
from app.spectrum import SpectrogramGrid
from app.workers import WorkerHost
from engine.playback.session import SessionState


def fake_session(ready: np.ndarray, stems: np.ndarray | None, done: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        state=SessionState.PLAYING, message="", separation_model="identity", separation_generation=1,
        separation_error=None, separated_stems=stems, separation_ready=ready, separation_region_samples=44100,
        separation_done=done, stems=["vocals", "drums", "bass", "other"],
    )


def test_stem_store_before_its_worker_reports_nothing_and_raises_nothing(qtbot) -> None:
    """The stem store exists a moment before its worker: ``separation_ready`` is then empty (it divided by 0)."""
    stems = np.zeros((4, 2, 44100 * 3), dtype=np.float32)
    session = fake_session(np.zeros(0, dtype=bool), stems)
    host = WorkerHost()
    poller = SessionPoller(session, host)
    poller.set_grid(SpectrogramGrid(44100, stems.shape[-1], 2048, 512))
    progress: list[float] = []
    poller.progress.connect(progress.append)
    poller.poll()
    assert progress == [] and not poller.done

    session.separation_ready = np.array([True, False, False])  # the worker started: progress flows again
    try:
        poller.poll()
        assert progress == [1 / 3]
    finally:
        assert host.shutdown()  # the stem-spectrogram worker that poll started is joined
