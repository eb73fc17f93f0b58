"""``run_gui(files)``: start the Qt application and the main window.

``SHOTOKU_SCREENSHOT=path.png`` grabs the window after ``SHOTOKU_SCREENSHOT_DELAY`` seconds (default 8) and
quits: used for the README screenshot and the packaged smoke test. ``SHOTOKU_SCREENSHOT_PLAY=0`` keeps the song
paused (it plays at once otherwise, as when a musician opens it), ``SHOTOKU_SCREENSHOT_PRESET=karaoke`` applies a
preset, ``SHOTOKU_SCREENSHOT_SHOW=keyboard|about|models|guide|export`` grabs that dialog instead of the window,
and ``SHOTOKU_SCREENSHOT_REPORT=path.json`` writes what the app was doing when it grabbed (the PortAudio library it
loaded, the audio output, the song, the model): ``packaging/build.sh`` checks the frozen app with it.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QWidget

from app.settings import APPLICATION, ORGANIZATION, AppSettings
from app.theme import apply_dark_theme
from engine.paths import resources_dir

if TYPE_CHECKING:
    from app.main_window import MainWindow

log = logging.getLogger(__name__)
DIALOGS = ("keyboard", "about", "models", "guide", "export")


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


def configure_logging(verbose: bool) -> None:
    """Log to stderr: warnings and errors, or (``shotoku -v``) everything the app and engine report at INFO."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="shotoku: %(levelname)s: %(name)s: %(message)s", stream=sys.stderr)
    if verbose:
        log.info("verbose logging on")


def portaudio_library() -> str | None:
    """The PortAudio file this process loaded (``/proc/self/maps``; sounddevice's own record elsewhere), or None
    when it could not be loaded."""
    from engine.playback.stream import backend

    sounddevice = backend()
    if sounddevice is None:
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                if "libportaudio" in line:
                    return line.split(maxsplit=5)[-1].strip()
    except OSError:
        pass
    return str(getattr(sounddevice, "_libname", "") or "") or None


def _report(window: MainWindow, saved: bool, path: str) -> dict[str, object]:
    from engine.playback.stream import backend_error

    controller = window.controller
    playback = controller.playback
    return {
        "screenshot": path, "saved": saved, "portaudio": portaudio_library(), "portaudio_error": backend_error(),
        "output": playback.state.value, "output_message": playback.message, "playing": playback.playing,
        "song": controller.song.title if controller.song is not None else None, "model": controller.model_name,
        "separation_model": playback.separation_model,
    }


def _dialog(window: MainWindow, which: str) -> QWidget | None:
    if which == "keyboard":
        return window.show_keyboard_reference()
    if which == "about":
        return window.show_about()
    if which == "models":
        return window.show_models()
    if which == "guide":
        return window.show_user_guide()
    if which == "export":
        return window.open_export_dialog()  # None (and an error dialog) before the song is separated
    raise ValueError(f"SHOTOKU_SCREENSHOT_SHOW must be one of {', '.join(DIALOGS)}, not {which!r}")


def _schedule_screenshot(window: MainWindow, app: QApplication, path: str) -> None:
    delay = float(os.environ.get("SHOTOKU_SCREENSHOT_DELAY", "8"))
    preset = os.environ.get("SHOTOKU_SCREENSHOT_PRESET")
    show = os.environ.get("SHOTOKU_SCREENSHOT_SHOW")
    report = os.environ.get("SHOTOKU_SCREENSHOT_REPORT")
    if os.environ.get("SHOTOKU_SCREENSHOT_PLAY", "1") == "0":  # paused, without changing the remembered setting
        window.controller.song_opened.connect(lambda _opened: window.controller.playback.pause())
    if preset:
        target = os.environ.get("SHOTOKU_SCREENSHOT_TARGET")
        QTimer.singleShot(int(delay * 400), lambda: window.apply_preset(preset, target))
    shown: list[QWidget | None] = []
    if show:
        QTimer.singleShot(int(delay * 800), lambda: shown.append(_dialog(window, show)))

    def grab() -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        target = shown[0] if shown and shown[0] is not None else window
        ok = target.grab().save(path)
        log.warning("screenshot %s: %s", path, "saved" if ok else "FAILED")
        if report:
            Path(report).write_text(json.dumps(_report(window, ok, path), indent=1) + "\n", encoding="utf-8")
        window.close()
        app.quit()

    QTimer.singleShot(int(delay * 1000), grab)


def open_window(settings: AppSettings, files: list[str], use_audio_device: bool = True) -> MainWindow:
    """Show the main window and open ``files[0]``, else the demo song on first start (it plays at once unless the
    musician turned File > Play when opened off)."""
    from app.main_window import MainWindow
    from engine.paths import demo_song

    window = MainWindow(settings, use_audio_device=use_audio_device)
    window.show()
    if files:
        window.controller.open_path(files[0])
    elif settings.first_start() and demo_song().is_file():
        window.controller.open_demo()
    elif not settings.first_start() and settings.recent_files():
        window.statusBar().showMessage("Open a song (Ctrl+O)", 10000)  # short: the permanent labels take the rest
    settings.mark_started()
    return window


def run_gui(files: list[str], verbose: bool = False) -> int:
    """Open the window (with ``files[0]`` if given, else the demo song on first start); returns the exit code.

    Closing joins every thread within a bound (:meth:`app.controller.AppController.shutdown`); if one of the
    app's worker threads still runs after that (an uninterruptible decode), the process exits without waiting
    for it rather than hang or abort.
    """
    from app.workers import abandoned_threads
    from engine.playback.tuning import tune_process_for_playback

    configure_logging(verbose)
    tune_process_for_playback()  # process-wide, once, before the first audio stream opens
    app = create_application()
    settings = AppSettings()
    window = open_window(settings, files)
    screenshot = os.environ.get("SHOTOKU_SCREENSHOT")
    if screenshot:
        _schedule_screenshot(window, app, screenshot)
    code = app.exec()
    window.shutdown()
    stuck = abandoned_threads()
    if stuck:
        log.error("exiting without waiting for: %s", ", ".join(stuck))
        logging.shutdown()
        sys.stderr.flush()
        os._exit(int(code))  # destroying a running QThread would abort the process
    # Delete the widgets while Qt and Python are both alive: left to interpreter shutdown, the order in which
    # PySide and pyqtgraph objects are torn down can crash.
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del window
    gc.collect()
    return int(code)
