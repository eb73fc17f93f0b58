"""The mixer console: one channel strip per stem and a master strip, holding the :class:`MixState`.

The strips follow the model: :meth:`MixerPanel.set_stems` rebuilds them for another model's stems (a spatial
model's left/centre/right, a two-stem vocals/accompaniment model), keeping the strips of the names both share.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QWidget

from app.theme import stem_colors
from app.views.channel_strip import ChannelStrip
from engine.playback.mix import MixState, StripState, apply_preset, audible


class MixerPanel(QWidget):
    """Strips for ``stems`` plus master. Emits :attr:`mix_changed` with a copy of the state on every change."""

    mix_changed = Signal(object)  #: MixState

    def __init__(self, stems: list[str] | tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stems: list[str] = []
        self._state = MixState.default([])
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._layout.setSpacing(2)
        self.strips: dict[str, ChannelStrip] = {}
        self._line = QFrame()
        self._line.setFrameShape(QFrame.Shape.VLine)
        self._line.setStyleSheet("color: #444;")
        self._layout.addWidget(self._line)
        self.master = ChannelStrip("master")
        self.master.changed.connect(self._on_master)
        self._layout.addWidget(self.master)
        self.set_stems(stems)

    def set_stems(self, stems: list[str] | tuple[str, ...]) -> None:
        """One strip per name of ``stems`` (in that order), without emitting :attr:`mix_changed`: strips of names
        the old and new stems share keep their state, new ones start at 0 dB, the master is kept. The new strips
        take the focus policy the master strip has (the window keeps the keyboard for its shortcuts)."""
        stems = list(stems)
        if stems == self.stems:
            return
        for strip in self.strips.values():
            self._layout.removeWidget(strip)
            strip.setParent(None)
            strip.deleteLater()
        self.strips = {}
        colors = stem_colors(stems)
        policy = self.master.fader.focusPolicy()
        for position, name in enumerate(stems):
            strip = ChannelStrip(name, color=colors[name])
            strip.changed.connect(self._on_strip)
            for widget in strip.findChildren(QWidget):
                widget.setFocusPolicy(policy)
            self._layout.insertWidget(position, strip)
            self.strips[name] = strip
        old, self.stems = self._state, stems
        self._state = MixState.default(stems)
        self.set_state(old, emit=False)

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
        """Apply a preset (raises ValueError for an unknown one, or one whose stem the strips lack)."""
        self.set_state(apply_preset(self._state, name, target))

    def toggle_solo(self, index: int) -> None:
        """Solo (again: un-solo) the ``index``-th stem; nothing when there are fewer stems."""
        if 0 <= index < len(self.stems):
            self.strips[self.stems[index]].solo.toggle()

    def toggle_mute(self, index: int) -> None:
        """Mute (again: un-mute) the ``index``-th stem; nothing when there are fewer stems."""
        if 0 <= index < len(self.stems):
            self.strips[self.stems[index]].mute.toggle()

    def set_levels(self, levels: dict[str, float], master: float) -> None:
        for name, peak in levels.items():
            if name in self.strips:
                self.strips[name].set_level(peak)
        self.master.set_level(master)

    def _on_strip(self, name: str, strip_state: StripState) -> None:
        if name not in self.strips:  # a strip being replaced
            return
        self._state.strips[name] = strip_state
        self._refresh_audible()
        self.mix_changed.emit(self.state())

    def _on_master(self, _name: str, strip_state: StripState) -> None:
        self._state.master_db = strip_state.gain_db
        self.mix_changed.emit(self.state())

    def _refresh_audible(self) -> None:
        for name, heard in audible(self._state).items():
            self.strips[name].set_audible(heard)
