"""Opening: a song plays at once (the demo song at first start too) unless File > Play when opened is off; a
session plays from its own position; ``shotoku -v`` opens the app with verbose logging."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.conftest import wait_loaded


@pytest.fixture
def fresh_settings(tmp_path: Path):
    """Settings as a new user has them (the ``settings`` fixture opens songs paused for the other tests)."""
    from app.settings import AppSettings

    return AppSettings(tmp_path / "config" / "fresh.ini")


def test_a_song_plays_at_once(qtbot, fresh_settings, plain_song: Path) -> None:
    from app.gui import create_application
    from app.main_window import MainWindow

    create_application()
    assert fresh_settings.play_on_open()
    window = MainWindow(fresh_settings, use_audio_device=False)
    window.show()
    try:
        window.controller.open_file(plain_song)
        wait_loaded(qtbot, window)
        assert window.controller.playback.playing
        qtbot.waitUntil(lambda: window.controller.playback.position_seconds > 0.2, timeout=30_000)
        qtbot.waitUntil(lambda: window.ui.play_action.text() == "Pause", timeout=30_000)
    finally:
        window.close()


def test_the_demo_song_plays_at_once_on_first_start(qtbot, fresh_settings) -> None:
    from app.gui import create_application, open_window
    from engine.paths import demo_song

    if not demo_song().is_file():
        pytest.skip("the demo song is not installed")
    create_application()
    assert fresh_settings.first_start()
    window = open_window(fresh_settings, [], use_audio_device=False)
    try:
        wait_loaded(qtbot, window)
        assert window.controller.song.path == demo_song()
        assert window.controller.playback.playing
        assert not fresh_settings.first_start()
    finally:
        window.close()


def test_play_when_opened_can_be_turned_off(qtbot, fresh_settings, plain_song: Path) -> None:
    from PySide6.QtGui import QAction

    from app.gui import create_application
    from app.main_window import MainWindow

    create_application()
    window = MainWindow(fresh_settings, use_audio_device=False)
    window.show()
    try:
        toggle = next(a for a in window.findChildren(QAction) if a.text() == "&Play when opened")
        assert toggle.isChecked()
        toggle.trigger()
        assert not fresh_settings.play_on_open()
        window.controller.open_file(plain_song)
        wait_loaded(qtbot, window)
        assert not window.controller.playback.playing
    finally:
        window.close()


def test_a_session_plays_from_its_own_position(qtbot, fresh_settings, plain_song: Path, tmp_path: Path) -> None:
    from app.gui import create_application
    from app.main_window import MainWindow

    create_application()
    window = MainWindow(fresh_settings, use_audio_device=False)
    window.show()
    try:
        window.controller.open_file(plain_song)
        wait_loaded(qtbot, window)
        window.controller.toggle_play()  # pause, then remember 2.0 s
        window.controller.seek(2.0)
        path = window.controller.save_session_to(tmp_path / "at-two")
        window.controller.seek(0.0)
        window.controller.open_session(path)
        qtbot.waitUntil(lambda: window.controller.playback.position_seconds >= 2.0, timeout=60_000)
        assert window.controller.playback.playing
        assert window.controller.playback.position_seconds < 2.9  # from 2 s on, not from the start
    finally:
        window.close()


@pytest.mark.parametrize(("argv", "files"), [(["-v"], []), (["--verbose"], []), (["gui", "-v"], [])])
def test_dash_v_opens_the_app_with_verbose_logging(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                   files: list[str]) -> None:
    import app.__main__ as entry
    import app.gui

    calls: list[tuple[list[str], bool]] = []
    monkeypatch.setattr(app.gui, "run_gui", lambda f, verbose=False: calls.append((f, verbose)) or 0)
    assert entry.main(argv) == 0
    assert calls == [(files, True)]


def test_dash_v_with_a_song_and_with_a_command(monkeypatch: pytest.MonkeyPatch, plain_song: Path) -> None:
    import app.__main__ as entry
    import app.gui
    import engine.cli

    gui: list[tuple[list[str], bool]] = []
    cli: list[list[str]] = []
    monkeypatch.setattr(app.gui, "run_gui", lambda f, verbose=False: gui.append((f, verbose)) or 0)
    monkeypatch.setattr(engine.cli, "main", lambda argv: cli.append(list(argv)) or 0)
    assert entry.main(["-v", str(plain_song)]) == 0
    assert entry.main(["-v", "models"]) == 0
    assert entry.main([str(plain_song)]) == 0
    assert gui == [([str(plain_song)], True), ([str(plain_song)], False)]
    assert cli == [["-v", "models"]]  # the CLI keeps its own -v


def test_version_stays_the_cli_s(capsys: pytest.CaptureFixture[str]) -> None:
    import app.__main__ as entry
    from engine import __version__

    with pytest.raises(SystemExit) as exit_info:
        entry.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"shotoku {__version__}"
