"""The main window: spectrogram lanes in the centre, the mixer console docked, transport and model toolbars.

Playback and separation are the engine's :class:`~engine.playback.session.PlaybackSession` (the mixture plays at
once; a child process separates from the play position into the stem store; reopening a song plays its cached
stems). Decoding, stem spectrograms and export run in :mod:`app.workers`. A ~30 ms timer polls the session
(:class:`app.playback.SessionPoller`) and refreshes the playhead and meters.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar

from app import actions, audio_menu
from app.export_dialog import ExportDialog
from app.model_picker import (
    NO_TRAINED_MODEL,
    ModelChoice,
    fill_combo,
    has_trained_model,
    model_choices,
    pick_model,
)
from app.playback import SessionPoller, push_mix
from app.presets import MixState, audible, matching_preset
from app.separation_view import SeparationView
from app.session_file import SESSION_SUFFIX, Session, load_session, save_session
from app.settings import AppSettings
from app.song import Song
from app.spectrum import SpectrogramGrid
from app.views.mixer import MixerPanel
from app.views.spectrogram import SpectrogramStack, format_time
from app.workers import LoadResult, LoadWorker, WorkerHost
from engine import STEM_NAMES
from engine.audio import Audio
from engine.errors import ShotokuError
from engine.paths import demo_song, resources_dir
from engine.playback.session import PlaybackSession
from engine.separation.device import available_devices, describe_device, select_device

log = logging.getLogger(__name__)

TICK_MS = 30
SEEK_STEP_SECONDS = 5.0
AUDIO_FILTER = "Audio (*.wav *.flac *.mp3 *.ogg *.opus *.aiff *.aif *.m4a *.aac);;All files (*)"


class MainWindow(SeparationView, QMainWindow):
    """Shotoku's window. ``use_audio_device=False`` plays silently (tests); ``show_test_models`` lists test cards."""

    def __init__(self, settings: AppSettings, use_audio_device: bool = True, show_test_models: bool = False) -> None:
        super().__init__()
        self.settings = settings
        self.show_test_models = show_test_models
        self.setWindowTitle("Shotoku")
        icon = resources_dir() / "icons" / "shotoku.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.host = WorkerHost(self)
        self.device = settings.device()
        output, self._audio_note = audio_menu.startup_output(settings) if use_audio_device else (None, "")
        self.playback = PlaybackSession(device=output, latency=settings.audio_latency(), open_output=use_audio_device,
                                        compute_device=self._compute_device())
        if not use_audio_device:
            self.playback.play_silently()
        self.poller = SessionPoller(self.playback, self.host, self)
        self.song: Song | None = None
        self.grid: SpectrogramGrid | None = None
        self.load_worker: LoadWorker | None = None
        self.model_name: str | None = None
        self.choices: list[ModelChoice] = []
        self._pending_session: Session | None = None
        self.last_error: str | None = None
        self.error_box: QMessageBox | None = None
        self.export_dialog: ExportDialog | None = None
        self._shown_playing = False
        self._ticks = 0

        self.spectrograms = SpectrogramStack(STEM_NAMES)
        self.spectrograms.set_log_frequency(settings.log_frequency())
        self.setCentralWidget(self.spectrograms)
        self.mixer = MixerPanel(STEM_NAMES)
        self.mixer_dock = QDockWidget("Mixer", self)
        self.mixer_dock.setObjectName("mixer_dock")
        self.mixer_dock.setWidget(self.mixer)
        self.mixer_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                    | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.mixer_dock)
        self._build_status_bar()
        actions.build(self)

        self.poller.separation_started.connect(self._on_separation_started)
        self.poller.columns_ready.connect(self._on_columns_ready)
        self.poller.progress.connect(self._on_separation_progress)
        self.poller.separated.connect(self._on_separated)
        self.poller.failed.connect(self._on_separation_failed)
        self.poller.output_changed.connect(self._on_output_changed)
        self.spectrograms.seek_requested.connect(self.seek)
        self.spectrograms.loop_changed.connect(self._on_loop_changed)
        self.mixer.mix_changed.connect(self._on_mix_changed)
        self._on_mix_changed(self.mixer.state())
        self.refresh_models()
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        geometry, state = settings.window_geometry(), settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

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
        self._on_output_changed(self.playback.state.value, self.playback.message)
        try:
            self.device_label.setText(f"Device: {describe_device(select_device(self.device))}")
        except ShotokuError as err:
            self.device_label.setText("Device: unavailable")
            self.device_label.setToolTip(str(err))
        for widget in (self.model_label, self.device_label, self.progress, self.audio_label):
            bar.addPermanentWidget(widget)
        if self._audio_note:
            bar.showMessage(self._audio_note, 20000)

    @Slot(str, str)
    def _on_output_changed(self, state: str, message: str) -> None:
        """Short text in the status bar, the full reason in its tooltip; amber when nothing can be heard."""
        if state == "device-lost":
            text = f"Audio output lost: {audio_menu.MENU_PATH}"
        elif state == "no-output":
            text = "No audio output (playing silently)"
        else:
            device = self.playback.output.device
            text = f"Audio: {device.name if device is not None else 'default output'}"
        self.audio_label.setText(text)
        self.audio_label.setToolTip(message or text)
        self.audio_label.setStyleSheet("color: #ffcc66;" if state in ("device-lost", "no-output") else "")

    def _compute_device(self) -> str | None:
        return None if self.device == "auto" else self.device

    # -- errors ----------------------------------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A readable, non-blocking error dialog (and the status bar) — the window stays usable."""
        self.last_error = message
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        self.error_box.open()

    # -- opening ---------------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a song", self.settings.last_folder(),
                                              AUDIO_FILTER + f";;Sessions (*{SESSION_SUFFIX})")
        if path:
            self.open_path(path)

    def open_demo(self) -> None:
        path = demo_song()
        if path.is_file():
            self.open_file(path)
        else:
            self.show_error("Demo song missing", f"{path}: the demo song is not installed")

    def open_path(self, path: str | Path) -> None:
        """Open a song or a ``.shotoku`` session."""
        if str(path).endswith(SESSION_SUFFIX):
            self.open_session(path)
        else:
            self.open_file(path)

    def open_file(self, path: str | Path) -> None:
        """Start loading a song in the background (the current one keeps playing until it is ready)."""
        if self.load_worker is not None:
            self.load_worker.cancel()
        worker = LoadWorker(path)
        worker.progress.connect(self._on_load_progress)
        worker.succeeded.connect(self._on_loaded)
        worker.failed.connect(self._on_load_failed)
        worker.done.connect(self._load_finished)
        self.load_worker = worker
        self.host.start(worker)

    @Slot(float, str)
    def _on_load_progress(self, _fraction: float, text: str) -> None:
        if self.sender() is self.load_worker:
            self.statusBar().showMessage(text)

    @Slot()
    def _load_finished(self) -> None:
        if self.sender() is self.load_worker:
            self.load_worker = None

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        if self.sender() is not self.load_worker:
            return
        self._pending_session = None
        self.show_error("Cannot open the song", message)

    @Slot(object)
    def _on_loaded(self, result: LoadResult) -> None:
        if self.sender() is not self.load_worker:
            return  # a newer open replaced this one
        song = result.song
        self.song, self.grid = song, result.grid
        session, self._pending_session = self._pending_session, None
        if session is not None:
            self.device = session.device or self.device
            self.playback.compute_device = self._compute_device()
        self.refresh_models(session.model if session else None)
        self.poller.set_grid(result.grid)
        try:
            self.playback.open(Audio(song.mixture, song.samplerate), model=self.model_name, play=False,
                               references=song.references, separate=self.model_name is not None)
        except ShotokuError as err:
            self.show_error("Cannot separate", str(err))
            self.playback.open(Audio(song.mixture, song.samplerate), play=False, separate=False)
        self.spectrograms.set_grid(result.grid)
        self.spectrograms.set_columns("mixture", 0, result.mixture_db)
        self.spectrograms.set_playhead(0.0)
        self.setWindowTitle(f"{song.title} — Shotoku")
        self.settings.add_recent_file(song.path)
        actions.refresh_recent(self)
        notes = f" ({'; '.join(song.notes)})" if song.notes else ""
        self.statusBar().showMessage(f"Opened {song.path.name}, {format_time(song.duration_seconds)}{notes}", 8000)
        if session is not None:
            self.mixer.set_state(session.mix)
        self._on_mix_changed(self.mixer.state())
        self._show_separation_state()
        if session is not None:
            self.seek(session.position_seconds)
            if session.loop_seconds:
                self.spectrograms.set_loop(*session.loop_seconds)
                self._on_loop_changed(*session.loop_seconds)

    # -- models and separation -------------------------------------------------------------------------------------
    def refresh_models(self, preferred: str | None = None) -> None:
        """Re-list the registry for the open song and pick the model to use."""
        has_refs = bool(self.song is not None and self.song.references)
        self.choices = model_choices(has_refs, include_test=self.show_test_models)
        self.model_name = pick_model(self.choices, preferred or self.model_name or self.settings.model_name())
        fill_combo(self.model_combo, self.choices, self.model_name, has_song=self.song is not None)
        self.model_label.setText(f"Model: {self.model_name or 'none'}")
        if not has_trained_model(self.choices) and self.model_name is None:
            self.model_label.setToolTip(NO_TRAINED_MODEL)

    def set_model(self, name: str) -> None:
        """Switch model: the song re-separates in the background while playback continues."""
        if name == self.model_name:
            return
        self.model_name = name
        self.settings.set_model_name(name)
        index = self.model_combo.findData(name, Qt.ItemDataRole.UserRole)
        if index >= 0 and self.model_combo.currentIndex() != index:
            self.model_combo.blockSignals(True)
            self.model_combo.setCurrentIndex(index)
            self.model_combo.blockSignals(False)
        self.model_label.setText(f"Model: {name}")
        if self.song is not None:
            try:
                self.playback.change_model(name)
            except ShotokuError as err:
                self.show_error("Cannot separate", str(err))
            self._show_separation_state()

    def set_device(self, device: str) -> None:
        """Run separation on ``device`` ("auto", "cpu", "cuda:0", ...): re-separates while playback continues."""
        if device == self.device:
            return
        self.device = device
        self.settings.set_device(device)
        try:
            self.device_label.setText(f"Device: {describe_device(select_device(self._compute_device()))}")
        except ShotokuError as err:
            self.device_label.setText("Device: unavailable")
            self.device_label.setToolTip(str(err))
            self.show_error("Device unavailable", str(err))
        try:
            self.playback.set_compute_device(self._compute_device())
        except ShotokuError as err:
            self.show_error("Cannot separate", str(err))

    # -- transport and mix -----------------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.playback.playing:
            self.playback.pause()
        else:
            self.playback.play()

    def seek(self, seconds: float) -> None:
        if self.song is None:
            return
        seconds = min(max(0.0, seconds), self.song.duration_seconds)
        self.playback.seek(seconds)
        self.spectrograms.set_playhead(seconds)

    def seek_by(self, delta: float) -> None:
        self.seek(self.playback.position_seconds + delta)

    def _on_loop_changed(self, start: float, stop: float) -> None:
        try:
            if stop - start < 0.05:
                self.spectrograms.set_loop(None, None)
                self.playback.set_loop(None, None)
            else:
                self.playback.set_loop(start, stop)
                self.statusBar().showMessage(f"Loop {format_time(start)} – {format_time(stop)}", 4000)
        except ValueError as err:
            self.statusBar().showMessage(f"Loop not set: {err}", 4000)

    def clear_loop(self) -> None:
        self.spectrograms.set_loop(None, None)
        self.playback.set_loop(None, None)

    def _on_mix_changed(self, state: MixState) -> None:
        push_mix(self.playback, state)
        for name, heard in audible(state).items():  # silenced stems fade back in the spectrogram view
            self.spectrograms.lanes[name].image.setOpacity(1.0 if heard else 0.3)
        preset = matching_preset(state)
        self.preset_label.setText(f"Mix: {preset or 'custom'}")

    def apply_preset(self, name: str, target: str | None = None) -> None:
        try:
            self.mixer.apply_preset(name, target)
        except ValueError as err:
            self.show_error("Preset", str(err))

    def _tick(self) -> None:
        self._ticks += 1
        self.poller.poll()
        if self._ticks % 33 == 0 and self.playback.underruns:  # about once a second
            self.audio_label.setToolTip(f"{self.playback.message or 'audio output'} · "
                                        f"{self.playback.underruns} underruns")
        if self.song is None:
            return
        position = self.playback.position_seconds
        playing = self.playback.playing
        self.spectrograms.set_playhead(position, follow=playing and self.follow_action.isChecked())
        self.time_label.setText(f"{format_time(position)} / {format_time(self.song.duration_seconds)}")
        if playing != self._shown_playing:
            self._shown_playing = playing
            self.play_action.setText("Pause" if playing else "Play")
            self.play_action.setIcon(self.pause_icon if playing else self.play_icon)
        self.mixer.set_levels(self.playback.levels, self.playback.output_level)

    # -- sessions and export ---------------------------------------------------------------------------------------
    def current_session(self) -> Session | None:
        if self.song is None:
            return None
        return Session(self.song.path, self.model_name, self.device, self.mixer.state(),
                       self.playback.position_seconds, self.spectrograms.loop_region())

    def save_session_dialog(self) -> None:
        session = self.current_session()
        if session is None:
            self.show_error("Nothing to save", "open a song first")
            return
        default = str(Path(self.settings.last_folder()) / f"{self.song.export_name}{SESSION_SUFFIX}")
        path, _ = QFileDialog.getSaveFileName(self, "Save session", default, f"Shotoku session (*{SESSION_SUFFIX})")
        if path:
            self.save_session_to(path)

    def save_session_to(self, path: str | Path) -> Path | None:
        session = self.current_session()
        if session is None:
            return None
        try:
            written = save_session(path, session)
        except ShotokuError as err:
            self.show_error("Cannot save the session", str(err))
            return None
        self.statusBar().showMessage(f"Saved session {written}", 5000)
        return written

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", self.settings.last_folder(),
                                              f"Shotoku session (*{SESSION_SUFFIX})")
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        try:
            session = load_session(path, STEM_NAMES)
        except ShotokuError as err:
            self.show_error("Cannot open the session", str(err))
            return
        self._pending_session = session
        self.open_file(session.song)

    def open_export_dialog(self) -> ExportDialog | None:
        if self.song is None or self.stems is None:
            self.show_error("Nothing to export", "open a song first")
            return None
        if not self.separation_done:
            self.show_error("Not separated yet", "export is possible once the separation has finished "
                            f"({'no trained model is installed' if self.model_name is None else 'still running'})")
            return None
        gains, master = self.playback.mix_gains()
        dialog = ExportDialog(self.host, self.song.export_name, self.stems, list(self.playback.stems),
                              self.playback.model_samplerate, gains, master, self._export_folder(), self)
        self.export_dialog = dialog
        dialog.show()
        return dialog

    def _export_folder(self) -> str:
        """The song's folder if it is writable (not for the bundled demo), else the last folder used."""
        assert self.song is not None
        folder = self.song.path.parent
        if os.access(folder, os.W_OK) and folder.resolve() != demo_song().parent.resolve():
            return str(folder)
        return self.settings.last_folder() if Path(self.settings.last_folder()) != folder else str(Path.home())

    def device_choices(self) -> list[tuple[str, str]]:
        return [("auto", "Auto (GPU if any)"), *available_devices()]

    # -- window events ---------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            self.open_path(files[0])
            event.acceptProposedAction()

    def shutdown(self) -> bool:
        """Stop the timer, cancel and join every worker thread, close the audio output. True if all stopped."""
        self.timer.stop()
        if self.export_dialog is not None:
            self.export_dialog.close()
        clean = self.host.shutdown()
        self.playback.close()
        return clean

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.settings.save_window(QByteArray(self.saveGeometry()), QByteArray(self.saveState()))
        self.settings.set_log_frequency(self.spectrograms.log_frequency)
        self.settings.sync()
        self.shutdown()
        event.accept()
