"""The controller without a window: it opens, mixes, loops and reports in signals."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import STEM_NAMES
from engine.playback.mix import MixState, apply_preset


@pytest.fixture
def controller(qtbot, settings):
    from app.controller import AppController

    settings.set_model_name("identity")
    controller = AppController(settings, use_audio_device=False, show_test_models=True)
    yield controller
    assert controller.shutdown()


def test_the_controller_runs_a_song_without_a_window(qtbot, controller, plain_song: Path) -> None:
    seen: dict[str, list] = {name: [] for name in ("models", "opened", "mix", "loop", "status", "output", "ticks")}
    controller.models_changed.connect(lambda choices, current: seen["models"].append(current))
    controller.song_opened.connect(seen["opened"].append)
    controller.mix_changed.connect(seen["mix"].append)
    controller.loop_changed.connect(seen["loop"].append)
    controller.status.connect(lambda text, _ms: seen["status"].append(text))
    controller.output_changed.connect(lambda state, _message: seen["output"].append(state))
    controller.ticked.connect(lambda: seen["ticks"].append(1))
    controller.start()
    assert seen["models"] == ["identity"] and seen["output"] == ["no-output"]
    qtbot.waitUntil(lambda: len(seen["ticks"]) > 2, timeout=5000)  # the display timer runs

    controller.open_file(plain_song)
    qtbot.waitUntil(lambda: seen["opened"] != [] and not controller.loading, timeout=20000)
    opened = seen["opened"][0]
    assert opened.song.path == plain_song and opened.session is None
    assert opened.mixture_db.shape == (opened.grid.n_bins, opened.grid.n_frames)

    karaoke = apply_preset(MixState.default(STEM_NAMES), "karaoke")
    controller.apply_mix(karaoke)
    assert seen["mix"][-1].strips == karaoke.strips and controller.mix.strips == karaoke.strips
    gains = controller.playback.mixer.target_gain
    assert gains[controller.playback.stems.index("vocals")].tolist() == [0.0, 0.0]

    controller.set_loop(0.5, 1.5)
    assert seen["loop"][-1] == (0.5, 1.5) and seen["status"][-1] == "Loop 0:00.5 – 0:01.5"
    controller.set_loop(1.0, 1.01)  # a click, not a loop
    assert seen["loop"][-1] is None and controller.playback.mixer.loop is None
    assert controller.current_session().mix.strips == karaoke.strips
