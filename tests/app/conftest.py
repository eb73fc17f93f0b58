"""Fixtures for the app tests: offscreen Qt, settings/cache in tmp folders, a synthetic song, a window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any Qt import

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import pytestqt.exceptions  # noqa: E402

from tests.app.songgen import write_song  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings and cache never touch the user's folders."""
    monkeypatch.setenv("SHOTOKU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SHOTOKU_CONFIG", str(tmp_path / "config"))


@pytest.fixture
def settings(tmp_path: Path):
    """Fresh settings, except that songs open paused: most tests seek, click and press Space from a known,
    still position. The app's default (a song plays at once) is tested in tests/app/test_opening.py."""
    from app.settings import AppSettings

    settings = AppSettings(tmp_path / "config" / "shotoku.ini")
    settings.set_play_on_open(False)
    return settings


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


#: A wait for background work fails only when nothing moved for this long (a hang), never because a busy machine is
#: slow: with both cores taken by other processes a separation child took 28 s to start and irm 100 s on a 4-s song
#: (measured for issue 10), steadily making progress.
STALL_MS = 240_000


def wait_loaded(qtbot, window, timeout: int = 120_000) -> None:
    controller = window.controller
    qtbot.waitUntil(lambda: controller.song is not None and not controller.loading, timeout=timeout)


def separation_marker(controller) -> tuple:
    """What changes while a separation makes progress: generation, regions ready, the worker's cursor, frames drawn."""
    separation = controller.playback.separation
    return (controller.playback.separation_generation, controller.poller.generation,
            None if separation is None else int(separation.regions_ready.sum()),
            None if separation is None else separation.cursor, int(controller.poller.drawn.sum()),
            None if separation is None else separation.error)


def wait_separated(qtbot, window, timeout: int = STALL_MS) -> None:
    """Wait until every region is separated and drawn; fail when the separation made no progress for ``timeout``
    ms (a hang detector, however long the whole takes)."""
    controller = window.controller
    while not controller.separation_done:
        before = separation_marker(controller)
        try:
            qtbot.waitUntil(lambda before=before: controller.separation_done
                            or separation_marker(controller) != before, timeout=timeout)
        except pytestqt.exceptions.TimeoutError as err:
            raise AssertionError(f"the separation made no progress for {timeout / 1000:.0f} s: {before}") from err
