"""Run under an X server (``DISPLAY`` set, ``QT_QPA_PLATFORM=xcb``): open the main window, type each argument with
xdotool (``shift+1``, ``2``, ...) into it and print, as one JSON line, what the mixer did after each key.

Used by tests/app/test_keys.py; by hand: ``xvfb-run -a env QT_QPA_PLATFORM=xcb python -m tests.app.x11_keys shift+1``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def main(keys: list[str]) -> int:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QShortcut
    from PySide6.QtWidgets import QApplication

    from app.gui import create_application
    from app.main_window import MainWindow
    from app.settings import AppSettings
    from engine import STEM_NAMES
    from engine.paths import config_dir

    create_application()
    window = MainWindow(AppSettings(Path(config_dir()) / "shotoku.ini"), use_audio_device=False)
    window.show()
    ambiguous: list[str] = []
    for shortcut in window.findChildren(QShortcut):
        shortcut.activatedAmbiguously.connect(lambda s=shortcut: ambiguous.append(s.key().toString()))

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.01)

    strips = window.mixer.strips

    def state() -> tuple:
        return len(ambiguous), [s.mute.isChecked() for s in strips.values()], [s.solo.isChecked() for s in strips.values()]

    pump(1.0)
    window_id = str(int(window.winId()))
    steps = []
    for key in keys:
        subprocess.run(["xdotool", "windowfocus", "--sync", window_id], check=False, capture_output=True)
        subprocess.run(["xdotool", "key", "--clearmodifiers", "--window", window_id, key], check=True)
        before, deadline = state(), time.monotonic() + 10.0
        while state() == before and time.monotonic() < deadline:  # every key here toggles something (or is ambiguous)
            pump(0.05)
        pump(0.2)
        steps.append({"key": key, "muted": [n for n in STEM_NAMES if strips[n].mute.isChecked()],
                      "soloed": [n for n in STEM_NAMES if strips[n].solo.isChecked()], "ambiguous": list(ambiguous)})
        ambiguous.clear()
    print(json.dumps({"platform": QApplication.platformName(), "steps": steps}))
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
