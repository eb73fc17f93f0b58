"""A mixer channel strip: name, pan knob, mute/solo, a dB fader (down to -inf) with its dB scale, and a level
meter."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QDial,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QVBoxLayout,
    QWidget,
)

from app.theme import STEM_COLORS
from engine.playback.mix import MAX_DB, MIN_DB, StripState, format_db

#: The fader moves in half-dB steps; its lowest position is -inf.
FADER_STEPS_PER_DB = 2
FADER_MIN = int(MIN_DB * FADER_STEPS_PER_DB) - 1
FADER_MAX = int(MAX_DB * FADER_STEPS_PER_DB)
METER_FLOOR_DB = -60.0
METER_TOP_DB = 6.0
#: The fader scale's marks in dB (the bottom position, silence, is labelled "-inf").
SCALE_MARKS_DB = (6.0, 0.0, -6.0, -12.0, -24.0, -36.0, -48.0, -math.inf)


def fader_to_db(value: int) -> float:
    """Fader position -> dB (the bottom position is ``-inf``)."""
    return -math.inf if value <= FADER_MIN else value / FADER_STEPS_PER_DB


def db_to_fader(db: float) -> int:
    """dB -> the nearest fader position."""
    if math.isinf(db) or db <= MIN_DB:
        return FADER_MIN
    return int(round(min(MAX_DB, db) * FADER_STEPS_PER_DB))


class LevelMeter(QWidget):
    """A vertical peak meter in dBFS (-60..+6) with a falling bar and a 1.5 s peak hold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(10)
        self.setMaximumWidth(14)
        self.level_db = -math.inf
        self.hold_db = -math.inf
        self._hold_time = 0.0
        self.active = True

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(12, 160)

    def set_level(self, peak: float) -> None:
        """Show a new linear peak; the bar falls at ~24 dB/s when the signal drops."""
        db = 20.0 * math.log10(peak) if peak > 1e-6 else -math.inf
        now = time.monotonic()
        fallen = self.level_db - 0.8 if math.isfinite(self.level_db) else -math.inf
        self.level_db = max(db, fallen) if math.isfinite(db) or math.isfinite(fallen) else -math.inf
        if self.level_db < METER_FLOOR_DB:
            self.level_db = -math.inf
        if db >= self.hold_db or now - self._hold_time > 1.5:
            self.hold_db, self._hold_time = db, now
        self.update()

    def _y(self, db: float, height: float) -> float:
        span = METER_TOP_DB - METER_FLOOR_DB
        frac = 0.0 if not math.isfinite(db) else min(1.0, max(0.0, (db - METER_FLOOR_DB) / span))
        return height * (1.0 - frac)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        rect = QRectF(self.rect())
        painter.fillRect(rect, QColor("#0d0d10"))
        height = rect.height()
        gradient = QLinearGradient(0, height, 0, 0)
        gradient.setColorAt(0.0, QColor("#2ecc71"))
        gradient.setColorAt(self._frac(-12.0), QColor("#2ecc71"))
        gradient.setColorAt(self._frac(-3.0), QColor("#f1c40f"))
        gradient.setColorAt(self._frac(0.0), QColor("#e74c3c"))
        gradient.setColorAt(1.0, QColor("#e74c3c"))
        top = self._y(self.level_db, height)
        if top < height:
            painter.setOpacity(1.0 if self.active else 0.35)
            painter.fillRect(QRectF(1, top, rect.width() - 2, height - top), gradient)
        if math.isfinite(self.hold_db) and self.hold_db > METER_FLOOR_DB:
            y = self._y(self.hold_db, height)
            painter.fillRect(QRectF(1, y, rect.width() - 2, 2), QColor("#ffffff"))
        painter.setOpacity(0.5)
        painter.setPen(QColor("#555"))
        for mark in (0.0, -12.0, -24.0, -48.0):
            y = self._y(mark, height)
            painter.drawLine(0, int(y), int(rect.width()), int(y))
        painter.end()

    @staticmethod
    def _frac(db: float) -> float:
        return (db - METER_FLOOR_DB) / (METER_TOP_DB - METER_FLOOR_DB)


def scale_label(db: float) -> str:
    """``"+6"``, ``"0"``, ``"-12"``, ``"-inf"``: a fader-scale mark."""
    return "-inf" if math.isinf(db) else f"{db:+.0f}" if db > 0 else f"{db:.0f}"


class FaderScale(QWidget):
    """dB labels beside a fader, each level with the handle's centre at that value (the slider's own geometry)."""

    def __init__(self, fader: QSlider, marks: tuple[float, ...] = SCALE_MARKS_DB, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fader, self.marks = fader, marks
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
        self.setFont(font)
        width = max(self.fontMetrics().horizontalAdvance(scale_label(db)) for db in marks)
        self.setFixedWidth(width + 4)
        self.setToolTip("Fader level in dB (the bottom position is silence)")

    def labels(self) -> list[str]:
        return [scale_label(db) for db in self.marks]

    def handle_centre_y(self, value: int) -> float:
        """Where the fader's handle centre is when it is at ``value``, in this widget's coordinates."""
        fader = self.fader
        option = QStyleOptionSlider()
        fader.initStyleOption(option)
        style = fader.style()
        groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove,
                                      fader)
        handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle,
                                      fader)
        span = max(0, groove.height() - handle.height())
        offset = QStyle.sliderPositionFromValue(fader.minimum(), fader.maximum(), value, span, option.upsideDown)
        y_in_fader = groove.top() + offset + handle.height() / 2.0
        return self.mapFromGlobal(fader.mapToGlobal(QPoint(0, int(round(y_in_fader))))).y()

    def mark_y(self, db: float) -> float:
        """The y of mark ``db`` in this widget."""
        return self.handle_centre_y(db_to_fader(db))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setPen(QColor("#9aa0aa"))
        metrics = self.fontMetrics()
        for db in self.marks:
            y = self.mark_y(db)
            text = scale_label(db)
            x = self.width() - metrics.horizontalAdvance(text) - 2
            painter.drawText(int(x), int(round(y + metrics.ascent() / 2.0 - 1)), text)
        painter.end()


class ChannelStrip(QWidget):
    """One stem's strip. Emits :attr:`changed` with the new :class:`StripState` on any user change.

    Args:
        name: stem name (``"master"`` makes a master strip: no mute/solo/pan).
        color: the name's colour (default: the theme's colour for the name, grey for a name it does not know).
    """

    changed = Signal(str, object)  #: stem name, StripState

    def __init__(self, name: str, parent: QWidget | None = None, color: str | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.is_master = name == "master"
        self._state = StripState()
        color = color or STEM_COLORS.get(name, "#cccccc")
        self.color = color
        self.setObjectName(f"strip_{name}")
        self.setMinimumWidth(74)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.title = QLabel(name.upper())
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet(f"color: {color}; font-weight: bold; border-bottom: 2px solid {color};")
        layout.addWidget(self.title)

        self.pan = QDial()
        self.pan.setRange(-100, 100)
        self.pan.setNotchesVisible(True)
        self.pan.setFixedSize(40, 40)
        self.pan.setToolTip("Pan (double-click the label to centre)")
        self.pan_label = QLabel("C")
        self.pan_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pan_label.setStyleSheet("color: #aaa; font-size: 8pt;")
        layout.addWidget(self.pan, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.pan_label)

        buttons = QHBoxLayout()
        buttons.setSpacing(3)
        self.mute = QPushButton("M")
        self.mute.setObjectName("mute")
        self.mute.setCheckable(True)
        self.mute.setToolTip(f"Mute {name}")
        self.solo = QPushButton("S")
        self.solo.setObjectName("solo")
        self.solo.setCheckable(True)
        self.solo.setToolTip(f"Solo {name}")
        buttons.addWidget(self.mute)
        buttons.addWidget(self.solo)
        layout.addLayout(buttons)
        if self.is_master:
            for widget in (self.pan, self.pan_label, self.mute, self.solo):
                widget.setVisible(False)
            layout.addSpacing(4)

        body = QHBoxLayout()
        body.setSpacing(4)
        self.fader = QSlider(Qt.Orientation.Vertical)
        self.fader.setRange(FADER_MIN, FADER_MAX)
        self.fader.setValue(0)
        self.fader.setPageStep(6 * FADER_STEPS_PER_DB)
        self.fader.setToolTip(f"{name} level in dB (bottom: off)")
        self.fader.setMinimumHeight(120)
        self.meter = LevelMeter()
        self.scale = FaderScale(self.fader)
        body.addStretch(1)
        body.addWidget(self.scale)
        body.addWidget(self.fader)
        body.addWidget(self.meter)
        body.addStretch(1)
        layout.addLayout(body, 1)
        self.db_label = QLabel("0.0 dB")
        self.db_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.db_label.setStyleSheet("font-family: monospace;")
        layout.addWidget(self.db_label)

        self.fader.valueChanged.connect(self._on_fader)
        self.pan.valueChanged.connect(self._on_pan)
        self.mute.toggled.connect(self._on_mute)
        self.solo.toggled.connect(self._on_solo)

    # -- state -----------------------------------------------------------------------------------------------------
    def state(self) -> StripState:
        return StripState(self._state.gain_db, self._state.mute, self._state.solo, self._state.pan)

    def set_state(self, state: StripState) -> None:
        """Show ``state`` without emitting :attr:`changed`."""
        self._state = StripState(state.gain_db, state.mute, state.solo, state.pan)
        for widget in (self.fader, self.pan, self.mute, self.solo):
            widget.blockSignals(True)
        try:
            self.fader.setValue(db_to_fader(state.gain_db))
            self.pan.setValue(int(round(state.pan * 100)))
            self.mute.setChecked(state.mute)
            self.solo.setChecked(state.solo)
        finally:
            for widget in (self.fader, self.pan, self.mute, self.solo):
                widget.blockSignals(False)
        self._update_labels()

    def set_audible(self, audible: bool) -> None:
        """Dim the meter and the name when mute or another stem's solo silences this one."""
        self.meter.active = audible
        self.title.setEnabled(audible)

    def set_level(self, peak: float) -> None:
        self.meter.set_level(peak)

    # -- user changes ----------------------------------------------------------------------------------------------
    def _on_fader(self, value: int) -> None:
        self._state.gain_db = fader_to_db(value)
        self._update_labels()
        self.changed.emit(self.name, self.state())

    def _on_pan(self, value: int) -> None:
        self._state.pan = value / 100.0
        self._update_labels()
        self.changed.emit(self.name, self.state())

    def _on_mute(self, on: bool) -> None:
        self._state.mute = on
        self.changed.emit(self.name, self.state())

    def _on_solo(self, on: bool) -> None:
        self._state.solo = on
        self.changed.emit(self.name, self.state())

    def _update_labels(self) -> None:
        self.db_label.setText(f"{format_db(self._state.gain_db)} dB")
        pan = int(round(self._state.pan * 100))
        self.pan_label.setText("C" if pan == 0 else f"L{-pan}" if pan < 0 else f"R{pan}")
