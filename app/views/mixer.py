"""The mixer console: one channel strip per stem and a master strip, holding the :class:`MixState`."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QWidget

from app.views.channel_strip import ChannelStrip
from engine.playback.mix import MixState, StripState, apply_preset, audible


class MixerPanel(QWidget):
    """Strips for ``stems`` plus master. Emits :attr:`mix_changed` with a copy of the state on every change."""

    mix_changed = Signal(object)  #: MixState

    def __init__(self, stems: list[str] | tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stems = list(stems)
        self._state = MixState.default(self.stems)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        self.strips: dict[str, ChannelStrip] = {}
        for name in self.stems:
            strip = ChannelStrip(name)
            strip.changed.connect(self._on_strip)
            layout.addWidget(strip)
            self.strips[name] = strip
        line = QFrame()
        line.setFrameShape(QFrame.Shape.VLine)
        line.setStyleSheet("color: #444;")
        layout.addWidget(line)
        self.master = ChannelStrip("master")
        self.master.changed.connect(self._on_master)
        layout.addWidget(self.master)
        self._refresh_audible()

    def state(self) -> MixState:
        return self._state.copy()

    def set_state(self, state: MixState, emit: bool = True) -> None:
        """Show ``state`` on every strip (stems it lacks are reset)."""
        fresh = MixState.default(self.stems)
        fresh.master_db = state.master_db
        for name in self.stems:
            if name in state.strips:
                fresh.strips[name] = StripState(**vars(state.strips[name]))
        self._state = fresh
        for name, strip in self.strips.items():
            strip.set_state(fresh.strips[name])
        self.master.set_state(StripState(gain_db=fresh.master_db))
        self._refresh_audible()
        if emit:
            self.mix_changed.emit(self.state())

    def apply_preset(self, name: str, target: str | None = None) -> None:
        """Apply a preset (raises ValueError for an unknown one)."""
        self.set_state(apply_preset(self._state, name, target))

    def toggle_solo(self, index: int) -> None:
        if 0 <= index < len(self.stems):
            self.strips[self.stems[index]].solo.toggle()

    def toggle_mute(self, index: int) -> None:
        if 0 <= index < len(self.stems):
            self.strips[self.stems[index]].mute.toggle()

    def set_levels(self, levels: dict[str, float], master: float) -> None:
        for name, peak in levels.items():
            if name in self.strips:
                self.strips[name].set_level(peak)
        self.master.set_level(master)

    def _on_strip(self, name: str, strip_state: StripState) -> None:
        self._state.strips[name] = strip_state
        self._refresh_audible()
        self.mix_changed.emit(self.state())

    def _on_master(self, _name: str, strip_state: StripState) -> None:
        self._state.master_db = strip_state.gain_db
        self.mix_changed.emit(self.state())

    def _refresh_audible(self) -> None:
        for name, heard in audible(self._state).items():
            self.strips[name].set_audible(heard)
