"""The practice toolbar: tempo (50-150 %) and transpose (-12..+12 semitones) while playing, and the song's
tempo and key as detected (the key shown follows the transposition, the BPM the tempo).

A view over :class:`app.controller.AppController`: it calls ``set_tempo``/``set_transpose`` and redraws from the
controller's ``tempo_changed`` and ``analysis_changed`` signals; it never talks to the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QLabel, QSlider, QSpinBox, QToolBar, QToolButton, QWidget

if TYPE_CHECKING:
    from app.controller import AppController
    from engine.analysis import SongAnalysis


class TempoPitchBar(QToolBar):
    """Tempo slider and spin box (percent), transpose spin box (semitones), a reset button and the tempo/key
    label."""

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__("Tempo and pitch", parent)
        self.setObjectName("tempo_toolbar")
        self.controller = controller
        self.addWidget(QLabel(" Tempo "))
        self.tempo_slider = QSlider(Qt.Orientation.Horizontal)
        self.tempo_slider.setRange(50, 150)
        self.tempo_slider.setValue(100)
        self.tempo_slider.setFixedWidth(140)
        self.tempo_slider.setToolTip("Playback speed without changing pitch (50-150 %)")
        self.tempo_slider.setAccessibleName("Tempo")
        self.addWidget(self.tempo_slider)
        self.tempo_box = QSpinBox()
        self.tempo_box.setRange(50, 150)
        self.tempo_box.setSuffix(" %")
        self.tempo_box.setValue(100)
        self.tempo_box.setAccessibleName("Tempo percent")
        self.addWidget(self.tempo_box)
        self.addWidget(QLabel("  Transpose "))
        self.pitch_box = QSpinBox()
        self.pitch_box.setRange(-12, 12)
        self.pitch_box.setSuffix(" st")
        self.pitch_box.setToolTip("Transpose without changing tempo (semitones)")
        self.pitch_box.setAccessibleName("Transpose")
        self.addWidget(self.pitch_box)
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset")
        self.reset_button.setToolTip("Back to 100 % and the original key")
        self.addWidget(self.reset_button)
        self.info = QLabel("  — BPM · key —  ")
        self.info.setToolTip("Tempo and key detected in the song (as heard with the tempo and transpose above)")
        self.addWidget(self.info)
        self._analysis: SongAnalysis | None = None

        self.tempo_slider.valueChanged.connect(self._tempo_moved)
        self.tempo_box.valueChanged.connect(self._tempo_moved)
        self.pitch_box.valueChanged.connect(self._pitch_moved)
        self.reset_button.clicked.connect(self._reset)
        controller.tempo_changed.connect(self._on_tempo_changed)
        controller.analysis_changed.connect(self._on_analysis)

    @Slot(int)
    def _tempo_moved(self, percent: int) -> None:
        self.controller.set_tempo(percent / 100.0)

    @Slot(int)
    def _pitch_moved(self, semitones: int) -> None:
        self.controller.set_transpose(semitones)

    @Slot()
    def _reset(self) -> None:
        self.controller.set_tempo(1.0)
        self.controller.set_transpose(0)

    @Slot(float, float)
    def _on_tempo_changed(self, tempo: float, semitones: float) -> None:
        percent = int(round(tempo * 100))
        for widget, value in ((self.tempo_slider, percent), (self.tempo_box, percent),
                              (self.pitch_box, int(round(semitones)))):
            if widget.value() != value:
                widget.blockSignals(True)
                widget.setValue(value)
                widget.blockSignals(False)
        self._show()

    @Slot(object)
    def _on_analysis(self, analysis: SongAnalysis | None) -> None:
        self._analysis = analysis
        self._show()

    def _show(self) -> None:
        analysis = self._analysis
        if analysis is None:
            self.info.setText("  — BPM · key —  ")
            return
        tempo, semitones = self.controller.tempo, self.controller.transpose
        bpm = f"{analysis.bpm_at(tempo):.0f} BPM" if analysis.bpm > 0 else "— BPM"
        key = analysis.key(semitones) if analysis.key_confidence > 0 else "key —"  # 0: too short or silent
        if tempo != 1.0 and analysis.bpm > 0:
            bpm += f" (song {analysis.bpm:.0f})"
        if semitones and analysis.key_confidence > 0:
            key += f" (song {analysis.key()})"
        self.info.setText(f"  {bpm} · {key}  ")
