"""Menus, toolbars and keyboard shortcuts of the main window (kept apart so the window stays readable)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QStyle, QToolBar, QToolButton, QWidget

from app.audio_menu import AudioMenu
from app.model_picker import ModelsDialog
from app.presets import PRACTICE_DB, PRESET_HELP
from engine import STEM_NAMES
from engine.paths import resources_dir

if TYPE_CHECKING:
    from app.main_window import MainWindow

#: US-layout characters of Shift+1..4, so "shift+1" works whatever Qt reports for the key.
_SHIFTED_DIGITS = ("!", "@", "#", "$")


def _action(window: MainWindow, text: str, slot: object, shortcut: str | QKeySequence | None = None,
            tip: str | None = None) -> QAction:
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    action.triggered.connect(lambda _checked=False: slot())
    return action


def build(window: MainWindow) -> None:
    """Create the menus, toolbars and shortcuts; store the widgets the window updates on it."""
    style = window.style()
    window.play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
    window.pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)

    # -- File ------------------------------------------------------------------------------------------------------
    menu = window.menuBar().addMenu("&File")
    menu.addAction(_action(window, "&Open song…", window.open_dialog, QKeySequence.StandardKey.Open))
    window.recent_menu = menu.addMenu("Open &recent")
    menu.addAction(_action(window, "Open &demo song", window.open_demo))
    menu.addSeparator()
    menu.addAction(_action(window, "Open &session…", window.open_session_dialog, "Ctrl+Shift+O"))
    menu.addAction(_action(window, "&Save session…", window.save_session_dialog, QKeySequence.StandardKey.Save))
    menu.addSeparator()
    export = _action(window, "&Export…", window.open_export_dialog, "Ctrl+E", "Export stems and/or the remix")
    menu.addAction(export)
    menu.addSeparator()
    menu.addAction(_action(window, "&Quit", window.close, QKeySequence.StandardKey.Quit))
    refresh_recent(window)

    # -- Transport toolbar -----------------------------------------------------------------------------------------
    bar = QToolBar("Transport", window)
    bar.setObjectName("transport_toolbar")
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    window.addToolBar(bar)
    open_action = _action(window, "Open", window.open_dialog, tip="Open a song (or drop one on the window)")
    open_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton))
    bar.addAction(open_action)
    window.play_action = _action(window, "Play", window.toggle_play, tip="Play / pause (Space)")
    window.play_action.setIcon(window.play_icon)
    bar.addAction(window.play_action)
    home = _action(window, "Start", lambda: window.seek(0.0), tip="Back to the start (Home)")
    home.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaSkipBackward))
    bar.addAction(home)
    window.time_label = QLabel("0:00 / 0:00")
    window.time_label.setStyleSheet("font-family: monospace; font-size: 12pt; padding: 0 10px; color: #e6e6e6;")
    bar.addWidget(window.time_label)
    clear_loop = _action(window, "Clear loop", window.clear_loop, tip="Remove the loop region (Esc)")
    bar.addAction(clear_loop)
    bar.addSeparator()
    bar.addAction(export)

    # -- Mix presets toolbar ---------------------------------------------------------------------------------------
    presets = QToolBar("Presets", window)
    presets.setObjectName("presets_toolbar")
    window.addToolBar(presets)
    mix_menu = window.menuBar().addMenu("&Mix")
    window.preset_actions = {}
    for name, label in (("karaoke", "Karaoke"), ("a cappella", "A cappella"), ("drumless", "Drumless"),
                        ("bassless", "Bassless")):
        action = _action(window, label, partial(window.apply_preset, name), tip=PRESET_HELP[name])
        presets.addAction(action)
        mix_menu.addAction(action)
        window.preset_actions[name] = action
    practice_menu = QMenu("Practice", window)
    for stem in STEM_NAMES:
        practice_menu.addAction(_action(window, f"{stem.capitalize()} {PRACTICE_DB:+.0f} dB",
                                        partial(window.apply_preset, "practice", stem)))
    practice_button = QToolButton()
    practice_button.setText("Practice ▾")
    practice_button.setToolTip(PRESET_HELP["practice"])
    practice_button.setMenu(practice_menu)
    practice_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    presets.addWidget(practice_button)
    mix_menu.addMenu(practice_menu)
    reset = _action(window, "Reset", partial(window.apply_preset, "reset"), tip=PRESET_HELP["reset"])
    presets.addAction(reset)
    mix_menu.addAction(reset)
    window.preset_label = QLabel("Mix: reset")
    window.preset_label.setStyleSheet("color: #9ad; padding: 0 8px;")
    presets.addWidget(window.preset_label)

    # -- Model toolbar ---------------------------------------------------------------------------------------------
    models = QToolBar("Model", window)
    models.setObjectName("model_toolbar")
    window.addToolBarBreak()
    window.addToolBar(models)
    models.addWidget(QLabel(" Model "))
    window.model_combo = QComboBox()
    window.model_combo.setMinimumWidth(190)
    window.model_combo.setToolTip("Separation model (hover an entry for its card)")
    window.model_combo.currentIndexChanged.connect(
        lambda index: _on_model_index(window, index))
    models.addWidget(window.model_combo)
    models.addWidget(QLabel(" Device "))
    window.device_combo = QComboBox()
    for value, label in window.device_choices():
        window.device_combo.addItem(label, value)
    index = window.device_combo.findData(window.device)
    window.device_combo.setCurrentIndex(max(0, index))
    window.device_combo.currentIndexChanged.connect(
        lambda index: window.set_device(str(window.device_combo.itemData(index))))
    models.addWidget(window.device_combo)
    about_models = _action(window, "Models…", lambda: ModelsDialog(window.choices, window).exec(),
                           tip="Every model card: stems, paper, speed, quality")
    models.addAction(about_models)

    # -- View menu -------------------------------------------------------------------------------------------------
    view = window.menuBar().addMenu("&View")
    log_action = QAction("&Log frequency", window)
    log_action.setCheckable(True)
    log_action.setChecked(window.spectrograms.log_frequency)
    log_action.toggled.connect(window.spectrograms.set_log_frequency)
    view.addAction(log_action)
    window.follow_action = QAction("&Follow playhead", window)
    window.follow_action.setCheckable(True)
    window.follow_action.setChecked(True)
    view.addAction(window.follow_action)
    view.addAction(_action(window, "Zoom &in", lambda: window.spectrograms.zoom(0.5), QKeySequence.StandardKey.ZoomIn))
    view.addAction(_action(window, "Zoom &out", lambda: window.spectrograms.zoom(2.0),
                           QKeySequence.StandardKey.ZoomOut))
    view.addAction(_action(window, "Zoom to &fit", window.spectrograms.zoom_to_fit, "Ctrl+0"))
    view.addSeparator()
    view.addAction(window.mixer_dock.toggleViewAction())
    window.audio_menu = AudioMenu(window)
    help_menu = window.menuBar().addMenu("&Help")
    guide = resources_dir().parent / "docs" / "USER_GUIDE.md"
    help_menu.addAction(_action(window, "User &guide", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(guide)))))
    help_menu.addAction(about_models)

    # -- Keyboard --------------------------------------------------------------------------------------------------
    keys: list[tuple[str, object]] = [
        ("Space", window.toggle_play), ("Home", lambda: window.seek(0.0)),
        ("Left", lambda: window.seek_by(-SEEK_STEP)), ("Right", lambda: window.seek_by(SEEK_STEP)),
        ("Escape", window.clear_loop),
    ]
    for i in range(len(STEM_NAMES)):
        keys.append((str(i + 1), partial(window.mixer.toggle_solo, i)))
        keys.append((f"Shift+{i + 1}", partial(window.mixer.toggle_mute, i)))
        keys.append((_SHIFTED_DIGITS[i], partial(window.mixer.toggle_mute, i)))
    window.shortcuts = []
    for key, slot in keys:
        shortcut = QShortcut(QKeySequence(key), window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(slot)
        window.shortcuts.append(shortcut)
    for widget in window.mixer.findChildren(QWidget):
        widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)


SEEK_STEP = 5.0


def _on_model_index(window: MainWindow, index: int) -> None:
    name = window.model_combo.itemData(index, Qt.ItemDataRole.UserRole)
    if name:
        window.set_model(str(name))


def refresh_recent(window: MainWindow) -> None:
    """Rebuild the File > Open recent menu."""
    menu: QMenu = window.recent_menu
    menu.clear()
    files = window.settings.recent_files()
    for path in files:
        menu.addAction(_action(window, Path(path).name, partial(window.open_file, path), tip=path))
    menu.setEnabled(bool(files))
