"""The stem lanes during a separation: what is not drawn is hatched (the region being worked on too, with a moving
hatch), and another model's separation replaces the old columns region by region instead of blanking them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF

from app import spectrum
from tests.app.conftest import wait_loaded, wait_separated
from tests.app.songgen import write_song


def test_choosing_another_model_keeps_the_old_lanes_until_the_new_columns_replace_them(
        qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    lane = window.spectrograms.lanes["vocals"]
    identity_columns = lane.data.copy()
    assert identity_columns.max() > -60.0
    window.controller.set_model("irm")
    qtbot.waitUntil(lambda: window.controller.poller.generation == window.controller.playback.separation_generation,
                    timeout=60_000)  # the window has been told: a new separation started
    stack = window.spectrograms
    assert (lane.data > spectrum.DB_FLOOR).any(axis=0).all()  # no column blanked
    assert not lane.hatch.isVisible()  # and nothing hatched: every column shows stems
    new_frames = stack.fresh.copy()  # columns irm may already have drawn (from the stem store, or a fast worker)
    np.testing.assert_array_equal(lane.data[:, ~new_frames], identity_columns[:, ~new_frames])  # not blanked
    assert stack.kept[~new_frames].all() and stack.undrawn_spans() == []
    wait_separated(qtbot, window)
    assert not stack.kept.any() and stack.fresh.all()  # every column is irm's now
    assert np.abs(lane.data - identity_columns).max() > 3.0  # irm's vocals, not the mixture identity gave
    assert not lane.hatch.isVisible()


def test_every_frame_without_columns_is_hatched_and_the_working_region_moves(
        qtbot, make_window, settings, tmp_path: Path) -> None:
    song = write_song(tmp_path / "long", seconds=45.0)
    window = make_window("irm", test_models=False)
    stack = window.spectrograms
    lane = stack.lanes["drums"]
    black: list[float] = []  # centres (seconds) of frames with no columns and no hatch
    partial: list[int] = []  # regions ready when a check saw a partly separated song
    working: list[tuple[float, float]] = []

    def check_hatch(*_args: object) -> None:
        grid = stack.grid
        if grid is None:
            return
        ready = window.controller.ready
        if 0 < ready.sum() < ready.size:
            partial.append(int(ready.sum()))
        middle = sum(lane.view.viewRange()[1]) / 2
        path = lane.hatch.path() if lane.hatch.isVisible() else None
        for f in np.flatnonzero(~(stack.fresh | stack.kept)):
            t = f * grid.hop_length / grid.samplerate
            if path is None or not path.contains(QPointF(t, middle)):
                black.append(t)

    def check_working() -> None:
        span = window.controller.working_span()
        if span is not None and stack.grid is not None:
            assert lane.working.isVisible()
            box = lane.working.path().boundingRect()
            assert (box.left(), box.right()) == (span[0], span[1])
            working.append(span)

    window.controller.columns_ready.connect(check_hatch)  # after the window drew them (connected first)
    window.controller.separation_progress.connect(check_hatch)
    window.controller.ticked.connect(check_working)
    window.controller.open_file(song)
    wait_loaded(qtbot, window)
    wait_separated(qtbot, window)
    assert black == [], f"{len(black)} frames drawn black, unhatched (first at {black[:3]} s)"
    assert partial, "never saw the song partly separated"
    assert working, "the region being separated was never marked"
    assert not lane.working.isVisible() and not lane.hatch.isVisible()


def test_undrawn_spans_cover_exactly_the_frames_without_columns(qtbot) -> None:
    from app.views.spectrogram import SpectrogramStack
    from engine import STEM_NAMES

    stack = SpectrogramStack(STEM_NAMES)
    qtbot.addWidget(stack)
    grid = spectrum.grid_for(44100 * 10, 44100)
    stack.set_grid(grid)
    assert stack.undrawn_spans() == [(0.0, grid.duration_seconds)]
    columns = np.full((grid.n_bins, 100), -20.0, dtype=np.float32)
    for name in STEM_NAMES:
        stack.set_columns(name, 50, columns)
    seconds = grid.hop_length / grid.samplerate
    (a0, a1), (b0, b1) = stack.undrawn_spans()
    assert a0 == 0.0 and abs(a1 - 49.5 * seconds) < 1e-9 and abs(b0 - 149.5 * seconds) < 1e-9
    assert b1 == grid.duration_seconds
    assert stack.keep_stems() and stack.undrawn_spans() == [(a0, a1), (b0, b1)]  # kept columns stay un-hatched
    stack.set_working((1.0, 2.0))
    assert stack.lanes["bass"].working.isVisible() and not stack.lanes["mixture"].working.isVisible()
    stack.set_working(None)
    assert not stack.lanes["bass"].working.isVisible()
