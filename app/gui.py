"""``run_gui(files)``: start the Qt application and the main window.

``SHOTOKU_SCREENSHOT=path.png`` grabs the window after ``SHOTOKU_SCREENSHOT_DELAY`` seconds (default 8) and
quits: used for the README screenshot and the packaged smoke test. ``SHOTOKU_SCREENSHOT_PLAY=1`` starts playback
first, ``SHOTOKU_SCREENSHOT_PRESET=karaoke`` applies a preset.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app.settings import APPLICATION, ORGANIZATION, AppSettings
from app.theme import apply_dark_theme
from engine.paths import resources_dir

if TYPE_CHECKING:
    from app.main_window import MainWindow

log = logging.getLogger(__name__)


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), named and themed."""
    app = QApplication.instance() or QApplication(argv if argv is not None else [sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_dark_theme(app)
    icon = resources_dir() / "icons" / "shotoku.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def _schedule_screenshot(window: MainWindow, app: QApplication, path: str) -> None:
    delay = float(os.environ.get("SHOTOKU_SCREENSHOT_DELAY", "8"))
    preset = os.environ.get("SHOTOKU_SCREENSHOT_PRESET")
    if os.environ.get("SHOTOKU_SCREENSHOT_PLAY"):
        QTimer.singleShot(int(delay * 500), window.controller.toggle_play)
    if preset:
        target = os.environ.get("SHOTOKU_SCREENSHOT_TARGET")
        QTimer.singleShot(int(delay * 400), lambda: window.apply_preset(preset, target))

    def grab() -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(path)
        log.warning("screenshot %s: %s", path, "saved" if ok else "FAILED")
        window.close()
        app.quit()

    QTimer.singleShot(int(delay * 1000), grab)


def run_gui(files: list[str]) -> int:
    """Open the window (with ``files[0]`` if given, else the demo song on first start); returns the exit code."""
    from app.main_window import MainWindow
    from engine.paths import demo_song
    from engine.playback.tuning import tune_process_for_playback

    tune_process_for_playback()  # process-wide, once, before the first audio stream opens
    app = create_application()
    settings = AppSettings()
    window = MainWindow(settings)
    window.show()
    if files:
        window.controller.open_path(files[0])
    elif settings.first_start() and demo_song().is_file():
        window.controller.open_demo()
    elif not settings.first_start() and settings.recent_files():
        window.statusBar().showMessage("Open a song: File > Open, Open recent, or drop a file here", 10000)
    settings.mark_started()
    screenshot = os.environ.get("SHOTOKU_SCREENSHOT")
    if screenshot:
        _schedule_screenshot(window, app, screenshot)
    code = app.exec()
    window.shutdown()
    # Delete the widgets while Qt and Python are both alive: left to interpreter shutdown, the order in which
    # PySide and pyqtgraph objects are torn down can crash.
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del window
    gc.collect()
    return int(code)
