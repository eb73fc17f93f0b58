"""The practice toolbar: tempo and transpose reach the engine, and the detected tempo and key are shown."""

from __future__ import annotations

from engine.analysis import SongAnalysis
from tests.app.conftest import wait_loaded


def test_tempo_and_transpose_controls_drive_the_playback(make_window, plain_song, qtbot) -> None:
    window = make_window(model=None)
    window.controller.open_path(plain_song)
    wait_loaded(qtbot, window)
    bar = window.tempo_bar
    bar.tempo_box.setValue(75)
    assert window.controller.playback.tempo == 0.75
    assert bar.tempo_slider.value() == 75
    bar.pitch_box.setValue(-3)
    assert window.controller.playback.transpose == -3
    window.controller.playback.play()
    path = window.controller.playback.stretch
    assert path is not None
    qtbot.waitUntil(lambda: path.engaged, timeout=60_000)  # the silent clock plays the stretched remix
    start = window.controller.playback.position_seconds
    read = path.read
    qtbot.waitUntil(lambda: path.read - read > 44100, timeout=60_000)
    heard = window.controller.playback.position_seconds - start
    assert 0.5 < heard / ((path.read - read) / window.controller.playback.samplerate) < 1.0  # slower than real time
    bar.reset_button.click()
    assert window.controller.playback.tempo == 1.0 and window.controller.playback.transpose == 0
    assert bar.tempo_box.value() == 100 and bar.pitch_box.value() == 0
    qtbot.waitUntil(lambda: not path.engaged, timeout=60_000)


def test_the_detected_tempo_and_key_are_shown_and_follow_the_controls(make_window, plain_song, qtbot) -> None:
    window = make_window(model=None)
    window.controller.open_path(plain_song)
    wait_loaded(qtbot, window)
    qtbot.waitUntil(lambda: window.controller.analysis is not None, timeout=120_000)
    bar = window.tempo_bar
    assert bar.info.text().strip() == "— BPM · key —"  # a 3 s song is too short to tell (MIN_SECONDS)
    window.controller.analysis_changed.emit(SongAnalysis(120.0, "A", "minor", 0.3))
    assert bar.info.text().strip() == "120 BPM · A minor"
    bar.pitch_box.setValue(2)
    assert "B minor" in bar.info.text() and "(song A minor)" in bar.info.text()
    bar.tempo_box.setValue(50)
    assert bar.info.text().strip().startswith("60 BPM (song 120)")
    window.controller.analysis_changed.emit(SongAnalysis(0.0, "C", "major", 0.0))
    assert bar.info.text().strip().startswith("— BPM · key —")
