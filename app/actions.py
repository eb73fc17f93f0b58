"""Menus, toolbars and keyboard shortcuts of the main window, built by :func:`build`, which returns what it built.

Transport, model, device and audio-output entries go to the :class:`~app.controller.AppController`; dialogs and
view changes go to the window through :class:`ViewIntents`; mixer keys go to the mixer panel. Nothing is stored on
the window: it keeps the returned :class:`WindowActions`. When the model's stems change, :func:`follow_stems` fits
the presets to them (a preset needing a stem the model lacks is disabled, its tooltip says why) and rebuilds the
practice menu.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QIcon, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QStyle,
    QToolBar,
    QToolButton,
    QWidget,
)

from app.audio_menu import AudioMenu
from app.keys import KEYS, SEEK_STEP_SECONDS, STEM_KEYS, Key, key
from engine import STEM_NAMES
from engine.playback.mix import PRACTICE_DB, PRESET_HELP, MixState, apply_preset

if TYPE_CHECKING:
    from app.controller import AppController
    from app.views.mixer import MixerPanel
    from app.views.spectrogram import SpectrogramStack

SEEK_STEP = SEEK_STEP_SECONDS
#: The preset toolbar's buttons (the practice preset has its own menu button).
PRESET_BUTTONS = (("karaoke", "Karaoke"), ("a cappella", "A cappella"), ("drumless", "Drumless"),
                  ("bassless", "Bassless"))


@dataclass
class ViewIntents:
    """What the menus ask of the window itself: its dialogs, and presets (which the mixer panel shows)."""

    open_song: Callable[[], None]
    open_session: Callable[[], None]
    save_session: Callable[[], None]
    export: Callable[[], object]
    apply_preset: Callable[[str, str | None], None]
    quit: Callable[[], object]
    keyboard_reference: Callable[[], object]
    about: Callable[[], object]
    user_guide: Callable[[], object]
    models: Callable[[], object]


@dataclass
class WindowActions:
    """The actions and widgets :func:`build` made that the window updates later."""

    play_action: QAction
    play_icon: QIcon
    pause_icon: QIcon
    time_label: QLabel
    recent_menu: QMenu
    export_action: QAction
    preset_actions: dict[str, QAction]
    preset_label: QLabel
    model_combo: QComboBox
    device_combo: QComboBox
    log_frequency_action: QAction
    follow_action: QAction
    audio_menu: AudioMenu
    mixer_action: QAction
    play_button: QToolButton
    practice_menu: QMenu | None = None
    shortcuts: list[QShortcut] = field(default_factory=list)
    #: every entry of :data:`app.keys.KEYS` by id: the QAction or QShortcut it is registered on
    bindings: dict[str, QAction | QShortcut] = field(default_factory=dict)

    def show_playing(self, playing: bool) -> None:
        """The play button says what it will do: Pause while playing, Play otherwise (its width stays put)."""
        self.play_action.setText("Pause" if playing else "Play")
        self.play_action.setIcon(self.pause_icon if playing else self.play_icon)


def _action(parent: QObject, text: str, slot: Callable[[], object], shortcut: Key | None = None,
            tip: str | None = None, bindings: dict[str, QAction | QShortcut] | None = None) -> QAction:
    """A QAction; ``shortcut`` (an :data:`app.keys.KEYS` entry) is set on it and recorded in ``bindings``."""
    action = QAction(text, parent)
    if shortcut is not None:
        action.setShortcut(shortcut.key_sequence())
        if bindings is not None:
            bindings[shortcut.id] = action
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    action.triggered.connect(lambda _checked=False: slot())
    return action


def refresh_recent(menu: QMenu, files: list[str], open_file: Callable[[str], None]) -> None:
    """Rebuild the File > Open recent menu from ``files`` (most recent first)."""
    menu.clear()
    for path in files:
        menu.addAction(_action(menu, Path(path).name, partial(open_file, path), tip=path))
    menu.setEnabled(bool(files))


def _show_adapt(window: QMainWindow, controller: AppController, kept: list) -> None:
    """Show the one "Learn from my music" dialog (made on first use, kept in ``kept``; its job is stopped,
    resumably, when the application quits)."""
    from PySide6.QtWidgets import QApplication

    from app.adapt_dialog import AdaptDialog

    if not kept:
        kept.append(AdaptDialog(controller, window))
        QApplication.instance().aboutToQuit.connect(kept[0].shutdown)
    if not kept[0].running:
        kept[0].refresh()
    kept[0].show()
    kept[0].raise_()


def build(window: QMainWindow, controller: AppController, view: ViewIntents, spectrograms: SpectrogramStack,
          mixer: MixerPanel, mixer_dock: QDockWidget) -> WindowActions:
    """Create the menus, toolbars and shortcuts of ``window``; returns the parts the window updates."""
    style = window.style()
    play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
    pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)
    menu_bar = window.menuBar()
    bindings: dict[str, QAction | QShortcut] = {}

    def bound(text: str, slot: Callable[[], object], key_id: str, tip: str | None = None) -> QAction:
        return _action(window, text, slot, key(key_id), tip, bindings)

    # -- File ------------------------------------------------------------------------------------------------------
    menu = menu_bar.addMenu("&File")
    menu.addAction(bound("&Open song…", view.open_song, "open"))
    recent_menu = menu.addMenu("Open &recent")
    menu.addAction(_action(window, "Open &demo song", controller.open_demo))
    play_on_open = QAction("&Play when opened", window)
    play_on_open.setCheckable(True)
    play_on_open.setChecked(controller.settings.play_on_open())
    play_on_open.setStatusTip("Start playing a song as soon as it is opened")
    play_on_open.toggled.connect(controller.settings.set_play_on_open)
    menu.addAction(play_on_open)
    menu.addSeparator()
    menu.addAction(bound("Open &session…", view.open_session, "open_session"))
    menu.addAction(bound("&Save session…", view.save_session, "save_session"))
    menu.addSeparator()
    export = bound("&Export…", view.export, "export", "Export stems and/or the remix")
    menu.addAction(export)
    menu.addAction(_action(window, "&Learn from my music…", partial(_show_adapt, window, controller, []),
                           tip="Adapt the voice/band separation to your own songs (no stems needed)"))
    menu.addSeparator()
    menu.addAction(bound("&Quit", view.quit, "quit"))
    refresh_recent(recent_menu, controller.settings.recent_files(), controller.open_file)

    # -- Transport toolbar -----------------------------------------------------------------------------------------
    bar = QToolBar("Transport", window)
    bar.setObjectName("transport_toolbar")
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    window.addToolBar(bar)
    open_action = _action(window, "Open", view.open_song, tip="Open a song (or drop one on the window)")
    open_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton))
    bar.addAction(open_action)
    play_action = _action(window, "Play", controller.toggle_play, tip="Play / pause (Space)")
    play_action.setIcon(play_icon)
    bar.addAction(play_action)
    play_button = bar.widgetForAction(play_action)
    assert isinstance(play_button, QToolButton)
    _fix_width(play_button, play_action, [("Play", play_icon), ("Pause", pause_icon)])
    home = _action(window, "Start", lambda: controller.seek(0.0), tip="Back to the start (Home)")
    home.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaSkipBackward))
    bar.addAction(home)
    time_label = QLabel("0:00 / 0:00")
    time_label.setStyleSheet("font-family: monospace; font-size: 12pt; padding: 0 10px; color: #e6e6e6;")
    bar.addWidget(time_label)
    bar.addAction(_action(window, "Clear loop", controller.clear_loop, tip="Remove the loop region (Esc)"))
    bar.addSeparator()
    bar.addAction(export)

    # -- Mix presets toolbar ---------------------------------------------------------------------------------------
    presets = QToolBar("Presets", window)
    presets.setObjectName("presets_toolbar")
    window.addToolBar(presets)
    mix_menu = menu_bar.addMenu("&Mix")
    preset_actions: dict[str, QAction] = {}
    for name, label in PRESET_BUTTONS:
        action = _action(window, label, partial(view.apply_preset, name, None), tip=PRESET_HELP[name])
        presets.addAction(action)
        mix_menu.addAction(action)
        preset_actions[name] = action
    practice_menu = QMenu("Practice", window)
    fill_practice_menu(practice_menu, STEM_NAMES, view.apply_preset)
    practice_button = QToolButton()
    practice_button.setText("Practice ▾")
    practice_button.setToolTip(PRESET_HELP["practice"])
    practice_button.setMenu(practice_menu)
    practice_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    presets.addWidget(practice_button)
    mix_menu.addMenu(practice_menu)
    reset = _action(window, "Reset", partial(view.apply_preset, "reset", None), tip=PRESET_HELP["reset"])
    presets.addAction(reset)
    mix_menu.addAction(reset)
    preset_label = QLabel("Mix: reset")
    preset_label.setStyleSheet("color: #9ad; padding: 0 8px;")
    presets.addWidget(preset_label)

    # -- Model toolbar ---------------------------------------------------------------------------------------------
    models = QToolBar("Model", window)
    models.setObjectName("model_toolbar")
    window.addToolBarBreak()
    window.addToolBar(models)
    models.addWidget(QLabel(" Model "))
    model_combo = QComboBox()
    model_combo.setMinimumWidth(190)
    model_combo.setToolTip("Separation model (hover an entry for its card)")

    def on_model_index(index: int) -> None:
        name = model_combo.itemData(index, Qt.ItemDataRole.UserRole)
        if name:
            controller.set_model(str(name))

    model_combo.currentIndexChanged.connect(on_model_index)
    models.addWidget(model_combo)
    models.addWidget(QLabel(" Device "))
    device_combo = QComboBox()
    for value, label in controller.device_choices():
        device_combo.addItem(label, value)
    device_combo.setCurrentIndex(max(0, device_combo.findData(controller.device)))
    device_combo.currentIndexChanged.connect(lambda index: controller.set_device(str(device_combo.itemData(index))))
    models.addWidget(device_combo)
    about_models = _action(window, "Models…", view.models,
                           tip="Every model: quality per stem, speed, what it was trained on")
    models.addAction(about_models)

    # -- View menu -------------------------------------------------------------------------------------------------
    view_menu = menu_bar.addMenu("&View")
    log_action = QAction("&Log frequency", window)
    log_action.setCheckable(True)
    log_action.setChecked(spectrograms.log_frequency)
    log_action.toggled.connect(spectrograms.set_log_frequency)
    view_menu.addAction(log_action)
    follow_action = QAction("&Follow playhead", window)
    follow_action.setCheckable(True)
    follow_action.setChecked(True)
    view_menu.addAction(follow_action)
    view_menu.addAction(bound("Zoom &in", lambda: spectrograms.zoom(0.5), "zoom_in"))
    view_menu.addAction(bound("Zoom &out", lambda: spectrograms.zoom(2.0), "zoom_out"))
    view_menu.addAction(bound("Zoom to &fit", spectrograms.zoom_to_fit, "zoom_fit"))
    view_menu.addSeparator()
    mixer_action = mixer_dock.toggleViewAction()  # checkable, enabled: the dock can be closed (main_window.py)
    mixer_action.setText("&Mixer")
    mixer_action.setShortcut(key("mixer").key_sequence())
    bindings["mixer"] = mixer_action
    view_menu.addAction(mixer_action)
    audio_menu = AudioMenu(menu_bar.addMenu("&Audio"), controller)
    help_menu = menu_bar.addMenu("&Help")
    help_menu.addAction(_action(window, "User &guide", view.user_guide, tip="The user guide, in a window"))
    help_menu.addAction(bound("&Keyboard reference", view.keyboard_reference, "keyboard"))
    help_menu.addAction(about_models)
    help_menu.addSeparator()
    help_menu.addAction(_action(window, "&About Shotoku", view.about))

    # -- Keyboard: the window-wide keys of app.keys.KEYS (the menu entries above took theirs) ----------------------
    slots: dict[str, Callable[[], object]] = {
        "play": controller.toggle_play, "start": lambda: controller.seek(0.0),
        "back": lambda: controller.seek_by(-SEEK_STEP), "forward": lambda: controller.seek_by(SEEK_STEP),
        "clear_loop": controller.clear_loop,
    }
    for i in range(STEM_KEYS):  # the i-th stem of the model in use (nothing when it has fewer)
        slots[f"solo_{i + 1}"] = partial(mixer.toggle_solo, i)
        slots[f"mute_{i + 1}"] = partial(mixer.toggle_mute, i)
    shortcuts = []
    for entry in KEYS:
        if entry.id in bindings:
            continue
        shortcut = QShortcut(entry.key_sequence(), window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(slots.pop(entry.id))  # KeyError: a table entry nothing handles
        shortcuts.append(shortcut)
        bindings[entry.id] = shortcut
    assert not slots, f"keys missing from app.keys.KEYS: {sorted(slots)}"
    for widget in mixer.findChildren(QWidget):
        widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    return WindowActions(
        play_action=play_action, play_icon=play_icon, pause_icon=pause_icon, time_label=time_label,
        recent_menu=recent_menu, export_action=export, preset_actions=preset_actions, preset_label=preset_label,
        model_combo=model_combo, device_combo=device_combo, log_frequency_action=log_action,
        follow_action=follow_action, audio_menu=audio_menu, mixer_action=mixer_action, play_button=play_button,
        practice_menu=practice_menu, shortcuts=shortcuts, bindings=bindings,
    )


def fill_practice_menu(menu: QMenu, stems: list[str] | tuple[str, ...],
                       apply: Callable[[str, str | None], None]) -> None:
    """The Practice menu: one entry per stem (``apply("practice", stem)``), replacing what it held."""
    menu.clear()
    for stem in stems:
        menu.addAction(_action(menu, f"{stem.capitalize()} {PRACTICE_DB:+.0f} dB", partial(apply, "practice", stem)))
    menu.setEnabled(bool(stems))


def preset_problem(name: str, stems: list[str] | tuple[str, ...]) -> str:
    """Why preset ``name`` cannot apply to a model with ``stems`` ("" when it can): the engine's own rule."""
    try:
        apply_preset(MixState.default(stems), name)
    except ValueError as err:
        return f"{err} (its stems: {', '.join(stems)})"
    return ""


def follow_stems(ui: WindowActions, stems: list[str] | tuple[str, ...],
                 apply: Callable[[str, str | None], None]) -> None:
    """Fit the presets to the model's ``stems``: one that needs a stem the model lacks is disabled and its tooltip
    says why (karaoke needs only vocals: it works on a vocals + accompaniment model); the practice menu lists the
    stems."""
    for name, action in ui.preset_actions.items():
        problem = preset_problem(name, stems)
        action.setEnabled(not problem)
        tip = f"{PRESET_HELP[name]} — unavailable: {problem}" if problem else PRESET_HELP[name]
        action.setToolTip(tip)
        action.setStatusTip(tip)
    if ui.practice_menu is not None:
        fill_practice_menu(ui.practice_menu, stems, apply)


def _fix_width(button: QToolButton, action: QAction, looks: list[tuple[str, QIcon]]) -> None:
    """Give ``button`` the width of its widest look, so the toolbar does not shift when its text changes."""
    text, icon = action.text(), action.icon()
    widths = []
    for label, look in looks:
        action.setText(label)
        action.setIcon(look)
        widths.append(button.sizeHint().width())
    action.setText(text)
    action.setIcon(icon)
    button.setFixedWidth(max(widths))
