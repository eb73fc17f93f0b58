"""How the window looks and behaves at its edges: the play button keeps its width, View > Mixer toggles the
mixer, the faders carry a dB scale, unselected radio buttons are visible, and the default window fits the screen
(a 1600x1000 screen at a 1.5 scale factor)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QStyle, QStyleOptionButton, QStyleOptionSlider

from app.views.channel_strip import SCALE_MARKS_DB, db_to_fader, scale_label

ROOT = Path(__file__).resolve().parents[2]


def test_the_play_button_keeps_its_width_and_the_toolbar_stays_put(qtbot, make_window) -> None:
    from PySide6.QtWidgets import QApplication

    window = make_window("identity")
    button, label = window.ui.play_button, window.ui.time_label

    def layout_now() -> tuple[int, int]:
        for _ in range(3):  # let the toolbar lay itself out again after the text changed
            QApplication.processEvents()
            button.parentWidget().layout().activate()
        return button.width(), label.mapTo(window, label.rect().topLeft()).x()

    paused = layout_now()
    window.ui.show_playing(True)
    assert button.text() == "Pause"
    playing = layout_now()
    window.ui.show_playing(False)
    assert paused == playing == layout_now()
    assert button.width() >= button.sizeHint().width()  # "Pause" fits as well as "Play"


def test_view_mixer_is_a_working_toggle(qtbot, make_window) -> None:
    window = make_window("identity")
    action = window.ui.mixer_action
    assert action.isEnabled() and action.isCheckable() and action.isChecked()
    action.trigger()
    assert not window.mixer_dock.isVisible() and not action.isChecked()
    action.trigger()
    assert window.mixer_dock.isVisible() and action.isChecked()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=10_000)  # keys go to the active window
    qtbot.keyClick(window, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert not window.mixer_dock.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert window.mixer_dock.isVisible()


def test_faders_have_a_db_scale_level_with_the_handle(qtbot, make_window) -> None:
    window = make_window("identity")
    strip = window.mixer.strips["vocals"]
    scale = strip.scale
    assert scale.isVisible()
    assert scale.labels() == ["+6", "0", "-6", "-12", "-24", "-36", "-48", "-inf"]
    ys = [scale.mark_y(db) for db in SCALE_MARKS_DB]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # top to bottom, none on another
    fader = strip.fader
    for db in (0.0, -12.0, -48.0):
        fader.setValue(db_to_fader(db))
        option = QStyleOptionSlider()
        fader.initStyleOption(option)
        handle = fader.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                              QStyle.SubControl.SC_SliderHandle, fader)
        centre = scale.mapFromGlobal(fader.mapToGlobal(handle.center())).y()
        assert abs(centre - scale.mark_y(db)) <= 2, (db, centre, scale.mark_y(db))
    picture = scale.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    background = QColor(picture.pixel(0, 0)).lightness()
    for db in SCALE_MARKS_DB:  # some text pixels on each mark's row
        y = int(round(scale.mark_y(db)))
        lit = [QColor(picture.pixel(x, y)).lightness() for x in range(picture.width())]
        assert max(lit) - background > 40, scale_label(db)


def _lightness(image: QImage, rect: QRect) -> np.ndarray:
    return np.array([[QColor(image.pixel(x, y)).lightness() for x in range(rect.left(), rect.right() + 1)]
                     for y in range(rect.top(), rect.bottom() + 1)])


def test_an_unselected_radio_button_is_visible(qtbot, make_window) -> None:
    from app.export_dialog import ExportDialog

    window = make_window("identity")
    stems = np.zeros((4, 2, 4410), dtype=np.float32)
    dialog = ExportDialog(window.controller.host, "song", stems, ["vocals", "drums", "bass", "other"], 44100,
                          np.ones((4, 2), np.float32), 1.0, "/tmp", window)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.stem_boxes["drums"].setChecked(False)
    picture = dialog.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    for button, element in ((dialog.mode_remix, QStyle.SubElement.SE_RadioButtonIndicator),
                            (dialog.stem_boxes["drums"], QStyle.SubElement.SE_CheckBoxIndicator)):
        assert not button.isChecked()
        option = QStyleOptionButton()
        button.initStyleOption(option)
        indicator = button.style().subElementRect(element, option, button)
        indicator.moveTopLeft(button.mapTo(dialog, indicator.topLeft()))
        inside = _lightness(picture, indicator)
        beside = button.mapTo(dialog, button.rect().topRight())  # the dialog's background right of the button
        around = QColor(picture.pixel(beside.x() - 2, beside.y() + button.height() // 2)).lightness()
        assert inside.max() - around >= 60, (button.text(), int(inside.max()), around)  # its outline shows
    dialog.close()


def test_default_window_size_fits_the_available_screen() -> None:
    from app.main_window import PREFERRED_SIZE, default_window_size

    assert default_window_size(QSize(2560, 1400)) == PREFERRED_SIZE
    small = QSize(1067, 667)  # 1600x1000 at a 1.5 scale factor, in logical pixels
    size = default_window_size(small)
    assert size.width() <= small.width() and size.height() <= small.height()
    assert size.width() >= 0.8 * small.width() and size.height() >= 0.8 * small.height()  # and uses it


PROBE = """
import json, sys
from app.gui import create_application
from app.main_window import MainWindow
from app.settings import AppSettings
app = create_application()
from pathlib import Path
window = MainWindow(AppSettings(Path(sys.argv[1])), use_audio_device=False)
window.show()
app.processEvents()
screen = window.screen()
print(json.dumps({"scale": screen.devicePixelRatio(), "available": screen.availableGeometry().getRect(),
                  "frame": window.frameGeometry().getRect(), "minimum": [window.minimumSizeHint().width(),
                  window.minimumSizeHint().height()]}))
window.close()
"""


def test_at_a_1_5_scale_factor_the_window_fits_a_1600x1000_screen(tmp_path: Path) -> None:
    screens = tmp_path / "screens.json"
    screens.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1600, "height": 1000,
                                                "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={screens}", QT_SCALE_FACTOR="1.5",
               SHOTOKU_CACHE=str(tmp_path / "cache"), SHOTOKU_CONFIG=str(tmp_path), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "s.ini")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["scale"] == 1.5
    ax, ay, aw, ah = seen["available"]
    fx, fy, fw, fh = seen["frame"]
    assert (aw, ah) == (1067, 667) or (aw, ah) == (1066, 666)
    assert ax <= fx and ay <= fy and fx + fw <= ax + aw and fy + fh <= ay + ah, seen
    assert seen["minimum"][0] <= aw and seen["minimum"][1] <= ah, seen  # it can even shrink to fit
