"""The *Audio* menu: choose the output device and the latency, reconnect after a device was lost.

A view of the :class:`~app.controller.AppController`: its entries ask the controller to (re)open the output, which
happens in a worker thread; while one runs the entries are disabled (the controller's ``output_busy_changed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from app.output import SYSTEM_DEFAULT
from engine.playback.stream import backend, backend_error, list_output_devices

if TYPE_CHECKING:
    from app.controller import AppController

#: Latency presets as the menu names them.
LATENCY_LABELS = {"robust": "&Robust (larger buffers)", "low": "&Low latency"}
NO_DEVICES = "(no output devices found)"


def device_label(name: str, hostapi: str) -> str:
    return f"{name} ({hostapi})"


class AudioMenu(QObject):
    """The *Audio* menu, filled into ``menu`` (the caller adds it to its menu bar)."""

    def __init__(self, menu: QMenu, controller: AppController) -> None:
        super().__init__(menu)
        self.controller = controller
        self.menu = menu
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
            action.triggered.connect(lambda _checked=False, name=name: controller.set_latency(name))
            self.latency_group.addAction(action)
            latency.addAction(action)
            self.latency_actions[name] = action
        latency.aboutToShow.connect(self._check_latency)
        self._check_latency()
        self.reconnect_action = QAction("&Reconnect audio output", self)
        self.reconnect_action.setStatusTip("Reopen the chosen output (after it was unplugged or its server restarted)")
        self.reconnect_action.triggered.connect(lambda _checked=False: controller.reconnect_output())
        self.menu.addAction(self.reconnect_action)
        controller.output_busy_changed.connect(self._on_busy)

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        for action in (*self.latency_actions.values(), self.reconnect_action, *self.device_group.actions()):
            action.setEnabled(not busy)

    def _check_latency(self) -> None:
        self.latency_actions[self.controller.latency].setChecked(True)

    def rebuild_devices(self) -> None:
        """List the output devices PortAudio knows (no rescan here: that needs the stream closed; see Rescan)."""
        menu: QMenu = self.devices
        menu.clear()
        for action in self.device_group.actions():
            self.device_group.removeAction(action)
            action.deleteLater()
        if self.controller.output_busy:  # PortAudio may be re-initialising in the worker: do not query it now
            menu.addAction("(opening the audio output…)").setEnabled(False)
            return
        if backend() is None:
            menu.addAction(backend_error() or "audio output unavailable").setEnabled(False)
            return
        current = self.controller.output_spec
        playing = self.controller.output_device
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
            action.triggered.connect(lambda _checked=False, name=name: self.controller.choose_output(name))
            menu.addAction(action)
        if not devices:
            menu.addAction(NO_DEVICES).setEnabled(False)
        menu.addSeparator()
        rescan = menu.addAction("Re&scan devices")
        rescan.setStatusTip("Close the output, look for devices again and reopen it")
        rescan.triggered.connect(lambda _checked=False: self.controller.reconnect_output())
