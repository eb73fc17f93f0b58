"""The main window: spectrogram lanes in the centre, the mixer console docked, transport and model toolbars.

A view of the :class:`~app.controller.AppController`, which owns the playback session, the settings and the
model/device choice: the window connects to its signals to show what happens and forwards the musician's intents
to it. Menus, toolbars and shortcuts come from :func:`app.actions.build` (kept in :attr:`MainWindow.ui`). The
lanes, strips and presets follow the model's stems (the controller's ``stems_changed``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QSize, Qt, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QIcon, QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
)

from app import actions
from app.controller import AppController, OpenedSong
from app.export_dialog import ExportDialog
from app.help_dialogs import AboutDialog, GuideDialog, KeyboardDialog
from app.keys import shifted_digit_index
from app.model_picker import NO_TRAINED_MODEL, ModelChoice, ModelsDialog, fill_combo, has_trained_model
from app.output import MENU_PATH
from app.session_file import SESSION_SUFFIX
from app.settings import AppSettings
from app.spectrum import format_time
from app.views.mixer import MixerPanel
from app.views.spectrogram import SpectrogramStack
from app.views.transport import TempoPitchBar
from engine.paths import resources_dir
from engine.playback.mix import MixState, audible, matching_preset

log = logging.getLogger(__name__)

AUDIO_FILTER = "Audio (*.wav *.flac *.mp3 *.ogg *.opus *.aiff *.aif *.m4a *.aac);;All files (*)"
#: Display ticks between two refreshes of the underrun count (about a second).
UNDERRUN_TICKS = 33
SILENT_STATES = ("device-lost", "no-output")
#: The window's size on a screen with room for it; smaller screens get :data:`SCREEN_SHARE` of their free area.
PREFERRED_SIZE = QSize(1400, 900)
SCREEN_SHARE = 0.92
#: The "being separated" hatch moves one device pixel every this many display ticks (about 11 px/s).
HATCH_TICKS_PER_PX = 3


def default_window_size(available: QRect | QSize, preferred: QSize = PREFERRED_SIZE) -> QSize:
    """The first-start window size: ``preferred``, shrunk to fit :data:`SCREEN_SHARE` of the ``available`` screen
    area (logical pixels: at a 1.5 scale factor a 1600x1000 screen offers about 1066x666)."""
    size = available.size() if isinstance(available, QRect) else available
    return QSize(min(preferred.width(), int(size.width() * SCREEN_SHARE)),
                 min(preferred.height(), int(size.height() * SCREEN_SHARE)))


#: Saved toolbar/dock layouts of another version are ignored (2: the tempo and pitch toolbar on its own row).
WINDOW_STATE_VERSION = 2


class MainWindow(QMainWindow):
    """Shotoku's window. ``use_audio_device=False`` plays silently (tests); ``show_test_models`` lists test cards."""

    def __init__(self, settings: AppSettings, use_audio_device: bool = True, show_test_models: bool = False) -> None:
        super().__init__()
        self.controller = AppController(settings, use_audio_device, show_test_models, parent=self)
        self.setWindowTitle("Shotoku")
        icon = resources_dir() / "icons" / "shotoku.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.setAcceptDrops(True)
        self.last_error: str | None = None
        self.error_box: QMessageBox | None = None
        self.export_dialog: ExportDialog | None = None
        self.dialog: QDialog | None = None  #: the help dialog shown last (keyboard, about, guide, models)
        self._shown_playing = False
        self._ticks = 0

        self.spectrograms = SpectrogramStack(self.controller.stem_names)
        self.spectrograms.set_log_frequency(settings.log_frequency())
        self.setCentralWidget(self.spectrograms)
        self.mixer = MixerPanel(self.controller.stem_names)
        self.mixer_dock = QDockWidget("Mixer", self)
        self.mixer_dock.setObjectName("mixer_dock")
        self.mixer_dock.setWidget(self.mixer)
        self.mixer_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                    | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                                    | QDockWidget.DockWidgetFeature.DockWidgetClosable)  # View > Mixer toggles it
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.mixer_dock)
        self._build_status_bar()
        intents = actions.ViewIntents(open_song=self.open_dialog, open_session=self.open_session_dialog,
                                      save_session=self.save_session_dialog, export=self.open_export_dialog,
                                      apply_preset=self.apply_preset, quit=self.close,
                                      keyboard_reference=self.show_keyboard_reference, about=self.show_about,
                                      user_guide=self.show_user_guide, models=self.show_models)
        self.ui = actions.build(self, self.controller, intents, self.spectrograms, self.mixer, self.mixer_dock)
        self.tempo_bar = TempoPitchBar(self.controller, self)
        self.addToolBarBreak()  # its own row: beside the model toolbar it is squeezed into an overflow arrow
        self.addToolBar(self.tempo_bar)
        self._connect()
        geometry, state = settings.window_geometry(), settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(self.default_size())
        if state is not None:
            self.restoreState(state, WINDOW_STATE_VERSION)
        self.controller.start()
        self._on_mix_changed(self.controller.mix)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel("Model: —")
        self.device_label = QLabel("Device: —")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("%p%")
        self.progress.hide()
        self.audio_label = QLabel()
        for widget in (self.model_label, self.device_label, self.progress, self.audio_label):
            bar.addPermanentWidget(widget)

    def _connect(self) -> None:
        c = self.controller
        c.song_loading.connect(self.statusBar().showMessage)
        c.song_opened.connect(self._on_song_opened)
        c.song_failed.connect(lambda message: self.show_error("Cannot open the song", message))
        c.models_changed.connect(self._on_models_changed)
        c.model_changed.connect(self._on_model_changed)
        c.stems_changed.connect(self._on_stems_changed)
        c.device_changed.connect(self._on_device_changed)
        c.separation_started.connect(self._on_separation_started)
        c.separation_progress.connect(self._on_separation_progress)
        c.columns_ready.connect(self._on_columns_ready)
        c.separation_finished.connect(self._on_separated)
        c.separation_failed.connect(self._on_separation_failed)
        c.separation_unavailable.connect(self._on_unseparated)
        c.output_changed.connect(self._on_output_changed)
        c.mix_changed.connect(self._on_mix_changed)
        c.loop_changed.connect(self._on_loop_changed)
        c.position_changed.connect(self.spectrograms.set_playhead)
        c.ticked.connect(self._on_tick)
        c.error.connect(self.show_error)
        c.status.connect(self.statusBar().showMessage)
        self.spectrograms.seek_requested.connect(c.seek)
        self.spectrograms.loop_changed.connect(c.set_loop)
        self.mixer.mix_changed.connect(c.apply_mix)

    # -- what the controller reports -------------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A readable, non-blocking error dialog (and the status bar) — the window stays usable."""
        self.last_error = message
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        self.error_box.open()

    @Slot(str, str)
    def _on_output_changed(self, state: str, message: str) -> None:
        """Short text in the status bar, the full reason in its tooltip; amber when nothing can be heard."""
        if state == "device-lost":
            text = f"Audio output lost: {MENU_PATH}"
        elif state == "no-output":
            text = "No audio output (playing silently)"
        else:
            device = self.controller.output_device
            text = f"Audio: {device.name if device is not None else 'default output'}"
        self.audio_label.setText(text)
        self.audio_label.setToolTip(message or text)
        self.audio_label.setStyleSheet("color: #ffcc66;" if state in SILENT_STATES else "")

    @Slot(object)
    def _on_song_opened(self, opened: OpenedSong) -> None:
        song = opened.song
        self.spectrograms.set_grid(opened.grid)
        self.spectrograms.set_columns("mixture", 0, opened.mixture_db)
        self.spectrograms.set_playhead(0.0)
        self.setWindowTitle(f"{song.title} — Shotoku")
        actions.refresh_recent(self.ui.recent_menu, self.controller.settings.recent_files(),
                               self.controller.open_file)
        notes = f" ({'; '.join(song.notes)})" if song.notes else ""
        self.statusBar().showMessage(f"Opened {song.path.name}, {format_time(song.duration_seconds)}{notes}", 8000)

    @Slot(object, object)
    def _on_models_changed(self, choices: list[ModelChoice], current: str | None) -> None:
        fill_combo(self.ui.model_combo, choices, current, has_song=self.controller.song is not None)
        self.model_label.setText(f"Model: {current or 'none'}")
        if not has_trained_model(choices) and current is None:
            self.model_label.setToolTip(NO_TRAINED_MODEL)

    @Slot(str)
    def _on_model_changed(self, name: str) -> None:
        combo = self.ui.model_combo
        index = combo.findData(name, Qt.ItemDataRole.UserRole)
        if index >= 0 and combo.currentIndex() != index:
            combo.blockSignals(True)
            combo.setCurrentIndex(index)
            combo.blockSignals(False)
        self.model_label.setText(f"Model: {name}")

    @Slot(object)
    def _on_stems_changed(self, stems: list[str]) -> None:
        """Another model's stems: lanes and strips for them (the mix that follows shows their levels), presets
        fitted to them."""
        self.mixer.set_stems(stems)
        self.spectrograms.set_stems(stems)
        actions.follow_stems(self.ui, stems, self.apply_preset)

    @Slot(str, str, str)
    def _on_device_changed(self, device: str, description: str, reason: str) -> None:
        combo = self.ui.device_combo
        if combo.currentData() != device and combo.findData(device) >= 0:
            combo.blockSignals(True)
            combo.setCurrentIndex(combo.findData(device))
            combo.blockSignals(False)
        self.device_label.setText(f"Device: {description}" if description else "Device: unavailable")
        self.device_label.setToolTip(reason)

    @Slot(object)
    def _on_mix_changed(self, state: MixState) -> None:
        if self.mixer.state() != state:  # a session's mix, or a preset: show it (the panel's own edits are shown)
            self.mixer.set_state(state, emit=False)
        for name, heard in audible(state).items():  # silenced stems fade back in the spectrogram view
            if name in self.spectrograms.lanes:
                self.spectrograms.lanes[name].image.setOpacity(1.0 if heard else 0.3)
        self.ui.preset_label.setText(f"Mix: {matching_preset(state) or 'custom'}")

    @Slot(object)
    def _on_loop_changed(self, loop: tuple[float, float] | None) -> None:
        self.spectrograms.set_loop(*(loop or (None, None)))

    # -- separation ------------------------------------------------------------------------------------------------
    @Slot(str)
    def _on_unseparated(self, status: str) -> None:
        self.spectrograms.clear_stems()
        self.spectrograms.set_separated_until(0.0, "not separated: no trained model installed")
        self.statusBar().showMessage(status, 20000)
        self.progress.hide()

    @Slot(str)
    def _on_separation_started(self, model: str) -> None:
        # Another model (or device) on the same song: while the engine plays the replaced stems where the new ones
        # are not ready, the lanes keep showing them until the new model's columns replace them region by region.
        if not (self.controller.keeps_previous_stems and self.spectrograms.keep_stems()):
            self.spectrograms.clear_stems()
        self.spectrograms.set_unseparated(self.spectrograms.undrawn_spans(), "separating…")
        self.model_label.setText(f"Model: {model}")
        self.progress.setValue(0)
        self.progress.setFormat(f"Separating with {model} %p%")
        self.progress.show()

    @Slot(str)
    def _on_separation_failed(self, message: str) -> None:
        self.progress.hide()
        self.spectrograms.set_working(None)
        self.spectrograms.set_unseparated(self.spectrograms.undrawn_spans(), "not separated")
        self.show_error("Separation failed", message)

    @Slot(int, object)
    def _on_columns_ready(self, first_frame: int, columns: dict) -> None:
        for name, cols in columns.items():
            self.spectrograms.set_columns(name, first_frame, cols)
        self.spectrograms.set_unseparated(self.spectrograms.undrawn_spans())

    @Slot(float)
    def _on_separation_progress(self, fraction: float) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.spectrograms.set_unseparated(self.spectrograms.undrawn_spans())

    @Slot(str)
    def _on_separated(self, model: str) -> None:
        self.progress.hide()
        self.spectrograms.set_working(None)
        self.spectrograms.set_unseparated(self.spectrograms.undrawn_spans())
        self.statusBar().showMessage(f"Separated with {model}", 5000)

    @Slot()
    def _on_tick(self) -> None:
        """The controller's display timer: playhead, time, play button and meters."""
        self._ticks += 1
        playback = self.controller.playback
        if self._ticks % UNDERRUN_TICKS == 0 and playback.underruns:
            self.audio_label.setToolTip(f"{playback.message or 'audio output'} · {playback.underruns} underruns")
        song = self.controller.song
        if song is None:
            return
        position = playback.position_seconds
        playing = playback.playing
        self.spectrograms.set_playhead(position, follow=playing and self.ui.follow_action.isChecked())
        self.ui.time_label.setText(f"{format_time(position)} / {format_time(song.duration_seconds)}")
        if playing != self._shown_playing:
            self._shown_playing = playing
            self.ui.show_playing(playing)
        self.mixer.set_levels(playback.levels, playback.output_level)
        self.spectrograms.set_working(self.controller.working_span(), (self._ticks // HATCH_TICKS_PER_PX) % 16)

    # -- what the musician asks for (dialogs and the mixer panel are the window's) ---------------------------------
    def apply_preset(self, name: str, target: str | None = None) -> None:
        try:
            self.mixer.apply_preset(name, target)
        except ValueError as err:
            self.show_error("Preset", str(err))

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a song", self.controller.settings.last_folder(),
                                              AUDIO_FILTER + f";;Sessions (*{SESSION_SUFFIX})")
        if path:
            self.controller.open_path(path)

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", self.controller.settings.last_folder(),
                                              f"Shotoku session (*{SESSION_SUFFIX})")
        if path:
            self.controller.open_session(path)

    def save_session_dialog(self) -> None:
        song = self.controller.song
        if song is None:
            self.show_error("Nothing to save", "open a song first")
            return
        default = str(Path(self.controller.settings.last_folder()) / f"{song.export_name}{SESSION_SUFFIX}")
        path, _ = QFileDialog.getSaveFileName(self, "Save session", default, f"Shotoku session (*{SESSION_SUFFIX})")
        if path:
            self.controller.save_session_to(path)

    def open_export_dialog(self) -> ExportDialog | None:
        source = self.controller.export_source()
        if source is None:
            return None
        song = self.controller.song  # "Best quality" separates its mixture again
        dialog = ExportDialog(self.controller.host, source.song_name, source.stems, source.stem_names,
                              source.samplerate, source.gains, source.master, source.folder, self,
                              mixture=None if song is None else song.mixture,
                              mixture_samplerate=None if song is None else song.samplerate,
                              model_name=self.controller.model_name, device=self.controller.device,
                              tags_from=None if song is None else song.path,
                              tempo=self.controller.tempo, semitones=self.controller.transpose)
        self.export_dialog = dialog
        dialog.show()
        return dialog

    def default_size(self) -> QSize:
        """:func:`default_window_size` on the screen the window is on (the primary one before it is shown)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        return default_window_size(screen.availableGeometry()) if screen is not None else PREFERRED_SIZE

    def _show_dialog(self, dialog: QDialog) -> QDialog:
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = dialog
        dialog.show()
        return dialog

    def show_keyboard_reference(self) -> QDialog:
        """Help > Keyboard reference: every shortcut, from the table that registers them (app.keys)."""
        return self._show_dialog(KeyboardDialog(self, self.controller.stem_names))

    def show_about(self) -> QDialog:
        """Help > About: version, licence, the model and device in use, the audio output."""
        c = self.controller
        return self._show_dialog(AboutDialog(c.current_card(), c.device_description, self.audio_label.text(), self))

    def show_models(self) -> QDialog:
        """Models…: every model card in a musician's words."""
        return self._show_dialog(ModelsDialog(self.controller.choices, self))

    def show_user_guide(self) -> QDialog:
        """Help > User guide, shown in the app (no browser or file launcher needed)."""
        return self._show_dialog(GuideDialog(parent=self))

    # -- window events ---------------------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        """Keys no shortcut took. Shift+digit reported as the shifted character only (``@`` for Shift+2, where the
        platform's key mapper offers no ``Shift+2`` to match) still mutes its stem (see :mod:`app.keys`)."""
        index = shifted_digit_index(event.key(), event.modifiers())
        if index is not None:
            self.mixer.toggle_mute(index)
            event.accept()
            return
        super().keyPressEvent(event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            self.controller.open_path(files[0])
            event.acceptProposedAction()

    def shutdown(self) -> bool:
        """Close the export dialog, then the controller (timer, worker threads, audio output). True if all stopped."""
        if self.export_dialog is not None:
            self.export_dialog.close()
        return self.controller.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        settings = self.controller.settings
        settings.save_window(QByteArray(self.saveGeometry()), QByteArray(self.saveState(WINDOW_STATE_VERSION)))
        settings.set_log_frequency(self.spectrograms.log_frequency)
        settings.sync()
        self.shutdown()
        event.accept()
