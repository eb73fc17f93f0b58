"""The *Audio* menu: choose the output device and the latency, reconnect after a device was lost.

Opening an output (and re-initialising PortAudio, which :meth:`PlaybackSession.select_device` does first so that
devices plugged in since are seen) can take seconds, so it runs in a :class:`OutputWorker` off the GUI thread;
while one runs the menu's entries are disabled. The window's poller shows the new state in the status bar. The
choice is remembered by device *name* (PortAudio's indices change when devices come and go) with the latency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from app.workers import Worker
from engine.errors import PlaybackError
from engine.playback.stream import backend, backend_error, find_device, list_output_devices

if TYPE_CHECKING:
    from app.main_window import MainWindow
    from app.settings import AppSettings
    from engine.playback.session import PlaybackSession

#: Latency presets as the menu names them.
LATENCY_LABELS = {"robust": "&Robust (larger buffers)", "low": "&Low latency"}
NO_DEVICES = "(no output devices found)"
SYSTEM_DEFAULT = "System default"
MENU_PATH = "Audio ▸ Output device"


def startup_output(settings: AppSettings) -> tuple[str | None, str]:
    """The device to open at start (the remembered one, None for the default) and a note for the status bar.

    A remembered device that is not there now falls back to the system default, and the note says so.
    """
    name = settings.audio_output()
    if not name or backend() is None or find_device(name) is not None:
        return name or None, ""
    return None, f"Audio output “{name}” not found: using the system default (choose another in {MENU_PATH})"


def device_label(name: str, hostapi: str) -> str:
    return f"{name} ({hostapi})"


class OutputWorker(Worker):
    """(Re)open the session's audio output on ``device`` with ``latency`` (None: keep it); returns the device name."""

    def __init__(self, session: PlaybackSession, device: str | None, latency: str | None) -> None:
        super().__init__()
        self.session, self.device, self.latency = session, device, latency

    def work(self) -> str:
        if not self.session.select_device(self.device, latency=self.latency):
            raise PlaybackError(self.session.message or "could not open the audio output")
        info = self.session.output.device
        return info.name if info is not None else SYSTEM_DEFAULT


class AudioMenu(QObject):
    """The *Audio* menu of ``window`` (added to its menu bar where it is created)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.worker: OutputWorker | None = None
        self.menu = window.menuBar().addMenu("&Audio")
        self.menu.setToolTipsVisible(True)
        self.devices = self.menu.addMenu("&Output device")
        self.devices.aboutToShow.connect(self.rebuild_devices)
        self.device_group = QActionGroup(self)
        self.device_group.setExclusive(True)
        latency = self.menu.addMenu("&Latency")
        self.latency_group = QActionGroup(self)
        self.latency_group.setExclusive(True)
        self.latency_actions: dict[str, QAction] = {}
        for name, label in LATENCY_LABELS.items():
            action = QAction(label, self)
            action.setCheckable(True)
            action.triggered.connect(lambda _checked=False, name=name: self.set_latency(name))
            self.latency_group.addAction(action)
            latency.addAction(action)
            self.latency_actions[name] = action
        latency.aboutToShow.connect(self._check_latency)
        self._check_latency()
        self.reconnect_action = QAction("&Reconnect audio output", self)
        self.reconnect_action.setStatusTip("Reopen the chosen output (after it was unplugged or its server restarted)")
        self.reconnect_action.triggered.connect(lambda _checked=False: self.reconnect())
        self.menu.addAction(self.reconnect_action)

    # -- what the musician chose -----------------------------------------------------------------------------------
    def _current(self) -> str | None:
        spec = self.window.playback.device_spec
        return str(spec) if spec not in (None, "") else None

    def choose(self, name: str | None) -> OutputWorker | None:
        """Open the output device called ``name`` (None: the system default) and remember it once it plays."""
        return self._start(name, None)

    def set_latency(self, latency: str) -> OutputWorker | None:
        """Reopen the chosen device with the "robust" or "low" preset (remembered at once)."""
        if latency not in LATENCY_LABELS:
            raise ValueError(f"latency must be one of {', '.join(LATENCY_LABELS)}")
        self.window.settings.set_audio_latency(latency)
        return self._start(self._current(), latency)

    def reconnect(self) -> OutputWorker | None:
        """Reopen the chosen device (PortAudio rescans first, so a device that came back is found)."""
        return self._start(self._current(), None)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def _start(self, device: str | None, latency: str | None) -> OutputWorker | None:
        if self.worker is not None:  # one at a time; the entries are disabled meanwhile anyway
            return None
        worker = OutputWorker(self.window.playback, device, latency)
        worker.succeeded.connect(self._on_opened)
        worker.failed.connect(self._on_failed)
        worker.done.connect(self._on_done)
        self.worker = worker
        self._set_enabled(False)
        self.window.statusBar().showMessage(f"Opening the audio output ({device or SYSTEM_DEFAULT.lower()})…")
        self.window.host.start(worker)
        return worker

    @Slot(object)
    def _on_opened(self, name: str) -> None:
        if self.sender() is not self.worker:
            return
        self.window.settings.set_audio_output(self._current() or "")
        self.window.statusBar().showMessage(f"Audio output: {name}", 5000)
        self._refresh_label()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if self.sender() is not self.worker:
            return
        self._refresh_label()
        self.window.show_error("Audio output", message)

    @Slot()
    def _on_done(self) -> None:
        if self.sender() is self.worker:
            self.worker = None
            self._set_enabled(True)

    def _refresh_label(self) -> None:
        playback = self.window.playback
        self.window._on_output_changed(playback.state.value, playback.message)

    def _set_enabled(self, enabled: bool) -> None:
        for action in (*self.latency_actions.values(), self.reconnect_action, *self.device_group.actions()):
            action.setEnabled(enabled)

    # -- the menus -------------------------------------------------------------------------------------------------
    def _check_latency(self) -> None:
        self.latency_actions[self.window.playback.latency].setChecked(True)

    def rebuild_devices(self) -> None:
        """List the output devices PortAudio knows (no rescan here: that needs the stream closed; see Rescan)."""
        menu: QMenu = self.devices
        menu.clear()
        for action in self.device_group.actions():
            self.device_group.removeAction(action)
            action.deleteLater()
        if self.worker is not None:  # PortAudio may be re-initialising in the worker: do not query it now
            menu.addAction("(opening the audio output…)").setEnabled(False)
            return
        if backend() is None:
            menu.addAction(backend_error() or "audio output unavailable").setEnabled(False)
            return
        current = self._current()
        playing = self.window.playback.output.device
        devices = list_output_devices()
        entries: list[tuple[str, str | None, bool]] = [(SYSTEM_DEFAULT, None, current is None)] if devices else []
        for info in devices:
            chosen = current is not None and (info.name == current or (
                playing is not None and info.index == playing.index and not any(d.name == current for d in devices)))
            entries.append((device_label(info.name, info.hostapi), info.name, chosen))
        for label, name, chosen in entries:
            action = QAction(label, self.device_group)
            action.setCheckable(True)
            action.setChecked(chosen)
            action.triggered.connect(lambda _checked=False, name=name: self.choose(name))
            menu.addAction(action)
        if not devices:
            menu.addAction(NO_DEVICES).setEnabled(False)
        menu.addSeparator()
        rescan = menu.addAction("Re&scan devices")
        rescan.setStatusTip("Close the output, look for devices again and reopen it")
        rescan.triggered.connect(lambda _checked=False: self.reconnect())
