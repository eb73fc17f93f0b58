"""Fixtures for the app tests: offscreen Qt, settings/cache in tmp folders, a synthetic song, a window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any Qt import

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.app.songgen import write_song  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings and cache never touch the user's folders."""
    monkeypatch.setenv("SHOTOKU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SHOTOKU_CONFIG", str(tmp_path / "config"))


@pytest.fixture
def settings(tmp_path: Path):
    from app.settings import AppSettings

    return AppSettings(tmp_path / "config" / "shotoku.ini")


@pytest.fixture
def song_with_stems(tmp_path: Path) -> Path:
    """``song/mixture.flac`` with its four reference stems beside it (oracle models work on it)."""
    return write_song(tmp_path / "song", seconds=4.0)


@pytest.fixture
def plain_song(tmp_path: Path) -> Path:
    """``plain/tune.wav`` without reference stems."""
    return write_song(tmp_path / "plain", seconds=3.0, with_stems=False, name="tune", ext="wav")


@pytest.fixture
def make_window(qtbot, settings):
    """Factory: a MainWindow (without an audio device unless ``use_audio_device``); closed (threads joined) at
    teardown."""
    from app.gui import create_application
    from app.main_window import MainWindow

    create_application()
    windows = []

    def make(model: str | None = "identity", test_models: bool = True, use_audio_device: bool = False) -> MainWindow:
        if model:
            settings.set_model_name(model)
        window = MainWindow(settings, use_audio_device=use_audio_device, show_test_models=test_models)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def wait_loaded(qtbot, window, timeout: int = 20000) -> None:
    controller = window.controller
    qtbot.waitUntil(lambda: controller.song is not None and not controller.loading, timeout=timeout)


def wait_separated(qtbot, window, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: window.controller.separation_done, timeout=timeout)
