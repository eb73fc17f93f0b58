"""The session poller against the moments between the session's steps (what CI once caught in the full app)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from app.playback import SessionPoller
from app.spectrum import SpectrogramGrid
from app.workers import WorkerHost
from engine.playback.session import SessionState


def fake_session(ready: np.ndarray, stems: np.ndarray | None, done: bool = False) -> SimpleNamespace:
    """A session whose separation (the public surface of ``BackgroundSeparation``) is at a given step."""
    separation = SimpleNamespace(generation=1, model_name="identity", error=None, stems=stems, regions_ready=ready,
                                 region_samples=44100, done=done)
    return SimpleNamespace(state=SessionState.PLAYING, message="", separation=separation,
                           stems=["vocals", "drums", "bass", "other"])


def test_stem_store_before_its_worker_reports_nothing_and_raises_nothing(qtbot) -> None:
    """The stem store exists a moment before its worker: ``regions_ready`` is then empty (it divided by 0)."""
    stems = np.zeros((4, 2, 44100 * 3), dtype=np.float32)
    session = fake_session(np.zeros(0, dtype=bool), stems)
    host = WorkerHost()
    poller = SessionPoller(session, host)
    poller.set_grid(SpectrogramGrid(44100, stems.shape[-1], 2048, 512))
    progress: list[float] = []
    poller.progress.connect(progress.append)
    poller.poll()
    assert progress == [] and not poller.done

    session.separation.regions_ready = np.array([True, False, False])  # the worker started: progress flows again
    try:
        poller.poll()
        assert progress == [1 / 3]
    finally:
        assert host.shutdown()  # the stem-spectrogram worker that poll started is joined


def test_a_finished_separation_is_drawn_then_reported_with_its_model(qtbot) -> None:
    stems = np.zeros((4, 2, 44100 * 2), dtype=np.float32)
    session = fake_session(np.array([True, False]), stems)
    host = WorkerHost()
    poller = SessionPoller(session, host)
    poller.set_grid(SpectrogramGrid(44100, stems.shape[-1], 2048, 512))
    assert poller.unseparated_spans() == [(1.0, stems.shape[-1] / 44100)]
    separated: list[str] = []
    columns: list[int] = []
    poller.separated.connect(separated.append)
    poller.columns_ready.connect(lambda first, _: columns.append(first))
    try:
        poller.poll()  # the first region is drawn in the background
        session.separation.regions_ready = np.array([True, True])
        session.separation.done = True
        qtbot.waitUntil(lambda: (poller.poll() or poller.done), timeout=10000)
        assert separated == ["identity"] and columns and poller.unseparated_spans() == []
    finally:
        assert host.shutdown()


def test_spans_the_previous_model_still_covers_can_be_left_out(qtbot) -> None:
    """After a model change the replaced model's stems play where the new ones are not ready: those spans are not
    "unseparated" for a window that asks (``include_previous``), and the previous separation is exposed."""
    stems = np.zeros((4, 2, 44100 * 4), dtype=np.float32)
    session = fake_session(np.array([True, False, False, False]), stems)
    host = WorkerHost()
    poller = SessionPoller(session, host)
    poller.set_grid(SpectrogramGrid(44100, stems.shape[-1], 2048, 512))
    assert poller.previous_separation is None
    session.previous_separation = SimpleNamespace(regions_ready=np.array([True, True, True, False]),
                                                  region_samples=44100, stems=stems, model_name="old")
    assert poller.previous_separation.model_name == "old"
    assert poller.unseparated_spans() == [(1.0, 4.0)]
    assert poller.unseparated_spans(include_previous=True) == [(3.0, 4.0)]
    session.separation.regions_ready = np.zeros(0, dtype=bool)  # the new worker has not started yet
    assert poller.unseparated_spans(include_previous=True) == [(3.0, 4.0)]
    assert host.shutdown()
