"""The export dialog: stems (all or chosen), the remix with the current mix, or both; the quality; format, depth,
folder.

Quality: "Fast" writes the stems the playing model has already separated; "Best quality" separates the song again
with :func:`engine.separation.quality.plan_separation`'s plan (the best recorded model or ensemble, random shifts,
more Wiener iterations) in the export worker, while playback keeps the fast model's stems. The dialog shows the
plan's one-line description (models, shifts, Wiener iterations, the estimated time for this song), computed from
the model cards only.

Format "STEM": one NI STEM file ``<song>.stem.mp4`` for DJ software (the song as the master track, then drums, bass,
other, vocals at unity gain, the song's tags); the stem and remix choices do not apply to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.workers import STEM_FORMAT, BestSeparation, ExportJob, ExportWorker, WorkerHost
from engine.audio.stem_mp4 import STEM_ORDER
from engine.errors import ShotokuError
from engine.models.catalogue import get_card
from engine.separation.quality import QUALITY_CHOICES, SeparationPlan, plan_separation

#: Format label -> (extension, bit depth choices, default)
FORMATS: dict[str, tuple[str, list[str], str | None]] = {
    "WAV": ("wav", ["16", "24", "float"], "24"),
    "FLAC": ("flac", ["16", "24"], "24"),
    "MP3": ("mp3", [], None),
    "OGG (Vorbis)": ("ogg", [], None),
    "STEM (.stem.mp4, for DJ software)": (STEM_FORMAT, [], None),
}
STEM_LABEL = "STEM (.stem.mp4, for DJ software)"
REMIX_NAME = "remix"
#: Quality -> the radio button's words.
QUALITY_LABELS = {"fast": "Fast (the model playing now)", "best": "Best quality"}


def export_paths(folder: Path, song: str, stems: list[str], remix: bool, extension: str) -> list[tuple[str, Path]]:
    """``(what, path)`` of each file to write: ``<song> - <stem>.<ext>`` and ``<song> - remix.<ext>``; for the STEM
    format the one file ``<song>.stem.mp4``."""
    if extension == STEM_FORMAT:
        return [(STEM_FORMAT, folder / f"{song}.{STEM_FORMAT}")]
    items = [(stem, folder / f"{song} - {stem}.{extension}") for stem in stems]
    if remix:
        items.append((REMIX_NAME, folder / f"{song} - {REMIX_NAME}.{extension}"))
    return items


class ExportDialog(QDialog):
    """Modal-less export dialog; writing runs in an :class:`ExportWorker`, with a progress bar and Cancel.

    Args:
        song_name: the ``<song>`` part of file names.
        stems: the separated stems ``(n_stems, 2, n_samples)`` in ``stem_names`` order (the session's stem store).
        stem_names: names of its rows.
        gains / master: the current mix as playback applies it (``PlaybackSession.mix_gains``) for the remix.
        mixture: the song ``(2, n_samples)`` at ``mixture_samplerate``, separated again for "Best quality" (None:
            only "Fast" is offered).
        model_name: the model playing now (named in the "Fast" line); device: the compute device ("auto"/None,
            "cpu", "cuda:0", ...) of the best-quality separation and its estimate.
        best_model: the model "Best quality" runs (None: the plan's choice among the bundled cards).
        threads: torch threads of the best-quality separation (None: the engine's default).
    """

    def __init__(
        self, host: WorkerHost, song_name: str, stems: np.ndarray, stem_names: list[str], samplerate: int,
        gains: np.ndarray, master: float, folder: str, parent: QWidget | None = None, *,
        mixture: np.ndarray | None = None, mixture_samplerate: int | None = None, model_name: str | None = None,
        device: str | None = None, best_model: str | None = None, threads: int | None = None,
        tags_from: Path | None = None, tempo: float = 1.0, semitones: float = 0.0,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export — {song_name}")
        self.setMinimumWidth(480)
        self.host, self.song_name, self.stems, self.stem_names = host, song_name, stems, stem_names
        self.samplerate, self.gains, self.master = samplerate, gains, master
        self.mixture, self.mixture_samplerate = mixture, mixture_samplerate or samplerate
        self.model_name, self.threads = model_name, threads
        self.tags_from = tags_from  #: the song's file: a STEM export carries its tags
        self.tempo, self.semitones = tempo, semitones  #: the practice playback's tempo (ratio) and transposition
        missing = [name for name in STEM_ORDER if name not in stem_names]
        #: why these stems cannot make a STEM file ("" when they can)
        self.stem_problem = f"a STEM file holds {', '.join(STEM_ORDER)}: no {', '.join(missing)}" if missing else ""
        self.device = None if device in (None, "auto") else device
        self.worker: ExportWorker | None = None
        self.exporting_quality: str | None = None  #: the quality of the export running now
        self.plans: dict[str, SeparationPlan] = {}
        self.plan_problems: dict[str, str] = {}
        self._plan(best_model)
        self.written: list[Path] = []
        self.block_frames = 1 << 17  #: samples written per block (cancel is checked between blocks)

        layout = QVBoxLayout(self)
        what = QGroupBox("What to export")
        what_layout = QVBoxLayout(what)
        self.mode_stems = QRadioButton("Stems")
        self.mode_remix = QRadioButton("Remix (current mixer settings)")
        self.mode_both = QRadioButton("Both")
        self.mode_stems.setChecked(True)
        group = QButtonGroup(self)
        stem_row = QHBoxLayout()
        self.stem_boxes: dict[str, QCheckBox] = {}
        for name in stem_names:
            box = QCheckBox(name)
            box.setChecked(True)
            stem_row.addWidget(box)
            self.stem_boxes[name] = box
        for button in (self.mode_stems, self.mode_remix, self.mode_both):
            group.addButton(button)
            what_layout.addWidget(button)
            button.toggled.connect(self._update)
        what_layout.insertLayout(1, stem_row)
        layout.addWidget(what)

        quality = QGroupBox("Quality")
        quality_layout = QVBoxLayout(quality)
        quality_row = QHBoxLayout()
        self.quality_group = QButtonGroup(self)
        self.quality_buttons: dict[str, QRadioButton] = {}
        for choice in QUALITY_CHOICES:
            button = QRadioButton(QUALITY_LABELS[choice])
            self.quality_group.addButton(button)
            quality_row.addWidget(button)
            self.quality_buttons[choice] = button
        quality_row.addStretch(1)
        self.quality_buttons["fast"].setChecked(True)
        if "best" in self.plan_problems:
            self.quality_buttons["best"].setToolTip(self.plan_problems["best"])
        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)
        self.plan_label.setStyleSheet("color: #9a9a9a;")
        quality_layout.addLayout(quality_row)
        quality_layout.addWidget(self.plan_label)
        layout.addWidget(quality)
        for button in self.quality_buttons.values():
            button.toggled.connect(self._update)

        form = QFormLayout()
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.depth = QComboBox()
        self.folder = QLineEdit(folder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        if self.stem_problem:
            self.format.model().item(list(FORMATS).index(STEM_LABEL)).setEnabled(False)
            self.format.setItemData(list(FORMATS).index(STEM_LABEL), self.stem_problem, Qt.ItemDataRole.ToolTipRole)
        form.addRow("Format", self.format)
        form.addRow("Bit depth", self.depth)
        form.addRow("Folder", folder_row)
        layout.addLayout(form)
        #: "Apply the tempo and pitch playing now" (shown only when they are not 100 % and 0 semitones)
        self.apply_tempo = QCheckBox(f"At the tempo and pitch playing now ({tempo * 100:.0f} %, "
                                     f"{semitones:+.0f} semitones)")
        self.apply_tempo.setChecked(True)
        self.apply_tempo.setVisible(abs(tempo - 1.0) > 1e-6 or abs(semitones) > 1e-6)
        layout.addWidget(self.apply_tempo)
        self.names_label = QLabel()
        self.names_label.setStyleSheet("color: #9a9a9a;")
        self.names_label.setWordWrap(True)
        layout.addWidget(self.names_label)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.cancel_button = QPushButton("Close")
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        self.format.currentTextChanged.connect(self._on_format)
        self.folder.textChanged.connect(self._update)
        for box in self.stem_boxes.values():
            box.toggled.connect(self._update)
        self._on_format(self.format.currentText())

    # -- choices ---------------------------------------------------------------------------------------------------
    def _on_format(self, label: str) -> None:
        _, depths, default = FORMATS[label]
        self.depth.clear()
        self.depth.addItems(depths or ["(set by the codec)"])
        if default:
            self.depth.setCurrentText(default)
        self.depth.setEnabled(bool(depths))
        self._update()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _plan(self, best_model: str | None) -> None:
        """Plan both qualities for this song from the cards (cheap: no weights are read); a quality that cannot
        run gets a one-line reason in :attr:`plan_problems` instead."""
        n_seconds = (self.mixture.shape[-1] / self.mixture_samplerate if self.mixture is not None
                     else self.stems.shape[-1] / self.samplerate)
        if self.model_name is not None:
            try:
                self.plans["fast"] = plan_separation("fast", self.model_name, n_seconds, self.device,
                                                     threads=self.threads)
            except ShotokuError as err:
                self.plan_problems["fast"] = str(err)
        if self.mixture is None:
            self.plan_problems["best"] = "the song's audio is not available to separate again"
            return
        try:
            plan = plan_separation("best", best_model, n_seconds, self.device, threads=self.threads)
            sources = get_card(plan.models[0], root=plan.root).sources
        except ShotokuError as err:
            self.plan_problems["best"] = str(err)
            return
        if sorted(sources) != sorted(self.stem_names):
            self.plan_problems["best"] = (f"{' + '.join(plan.models)} separates {', '.join(sources)}, not the "
                                          f"playing stems ({', '.join(self.stem_names)})")
            return
        self.plans["best"] = plan

    def quality(self) -> str:
        """The chosen quality: ``"fast"`` or ``"best"``."""
        return next((q for q, b in self.quality_buttons.items() if b.isChecked()), "fast")

    def plan_text(self) -> str:
        """The line under the quality choice: what the chosen quality runs and how long it takes for this song."""
        if self.quality() == "best":
            return self.plans["best"].describe()
        fast = self.plans.get("fast")
        what = fast.describe().split("; ", 1)[0] if fast is not None else "Fast: the stems playing now"
        text = f"{what}. Already separated for playback: only the files are written."
        if "best" in self.plan_problems:
            text += f" (Best quality unavailable: {self.plan_problems['best']}.)"
        return text

    def stem_format(self) -> bool:
        """The STEM format is chosen (one .stem.mp4 holding every stem)."""
        return FORMATS[self.format.currentText()][0] == STEM_FORMAT

    def chosen_stems(self) -> list[str]:
        if self.stem_format():
            return list(STEM_ORDER)
        if self.mode_remix.isChecked():
            return []
        return [name for name, box in self.stem_boxes.items() if box.isChecked()]

    def wants_remix(self) -> bool:
        return self.mode_remix.isChecked() or self.mode_both.isChecked()

    def planned(self) -> list[tuple[str, Path]]:
        extension = FORMATS[self.format.currentText()][0]
        return export_paths(Path(self.folder.text()).expanduser(), self.song_name, self.chosen_stems(),
                            self.wants_remix(), extension)

    def _update(self) -> None:
        stem_format = self.stem_format()
        for box in self.stem_boxes.values():
            box.setEnabled(not self.mode_remix.isChecked() and not stem_format)
        for button in (self.mode_stems, self.mode_remix, self.mode_both):
            button.setEnabled(not stem_format)
        for choice, button in self.quality_buttons.items():
            button.setEnabled(self.worker is None and (choice == "fast" or choice in self.plans))
        self.plan_label.setText(self.plan_text())
        planned = self.planned()
        self.names_label.setText("Files: " + ", ".join(p.name for _, p in planned) if planned else "Nothing chosen")
        self.export_button.setEnabled(bool(planned) and bool(self.folder.text().strip()) and self.worker is None)

    # -- running ---------------------------------------------------------------------------------------------------
    def confirm_overwrite(self, existing: list[Path]) -> bool:
        """Ask before replacing files (tests replace this method)."""
        names = "\n".join(p.name for p in existing[:8]) + ("\n…" if len(existing) > 8 else "")
        answer = QMessageBox.question(
            self, "Replace files?", f"These files already exist in {existing[0].parent}:\n\n{names}\n\nReplace them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _stretch(self) -> dict[str, float]:
        """The export's tempo and transposition: the playing ones when the box is ticked, else as recorded."""
        if not self.apply_tempo.isHidden() and self.apply_tempo.isChecked():
            return {"tempo": self.tempo, "semitones": self.semitones}
        return {"tempo": 1.0, "semitones": 0.0}

    def start(self) -> bool:
        """Start writing (after asking about existing files). False if nothing was started."""
        planned = self.planned()
        if not planned or self.worker is not None:
            return False
        existing = [p for _, p in planned if p.exists()]
        if existing and not self.confirm_overwrite(existing):
            self.status.setText("Nothing written: the files exist and were kept.")
            return False
        jobs = [
            ExportJob(path, stem=what) if what != REMIX_NAME else ExportJob(path, gains=self.gains, master=self.master)
            for what, path in planned
        ]
        label = self.format.currentText()
        extension, depths, _ = FORMATS[label]
        depth = self.depth.currentText() if depths else None
        quality = self.quality()
        separation = None
        if quality == "best":
            assert self.mixture is not None  # "best" is planned only with the mixture
            separation = BestSeparation(self.plans["best"], self.mixture, self.mixture_samplerate, self.threads)
        master = None  # the STEM file's master track: the song itself when it lines up with the stems
        if (extension == STEM_FORMAT and self.mixture is not None and self.mixture_samplerate == self.samplerate
                and self.mixture.shape[0] == self.stems.shape[1]):
            master = self.mixture
        self.worker = ExportWorker(jobs, self.stems, self.samplerate, extension, depth, block=self.block_frames,
                                   stem_names=self.stem_names, separation=separation, master=master,
                                   tags_from=self.tags_from,
                                   **self._stretch())
        self.exporting_quality = quality
        self.worker.progress.connect(self._on_progress)
        self.worker.succeeded.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.done.connect(self._on_finished)
        self.export_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.status.setText("Separating at best quality…" if quality == "best" else "Exporting…")
        self._update()
        self.host.start(self.worker)
        return True

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(text)

    def _on_done(self, paths: list[Path]) -> None:
        self.written = list(paths)
        self.progress.setValue(1000)
        how = " at best quality" if self.exporting_quality == "best" else ""
        self.status.setText(f"Exported {len(paths)} file(s){how} to {paths[0].parent if paths else ''}")

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Export failed: {message}")
        QMessageBox.warning(self, "Export failed", message)

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self.status.setText("Export cancelled: nothing was written, existing files are as they were.")

    def _on_finished(self) -> None:
        self.worker = None
        self.exporting_quality = None
        self.cancel_button.setText("Close")
        self._update()

    def _cancel_or_close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        else:
            self.close()

    def closeEvent(self, event: object) -> None:  # noqa: N802
        if self.worker is not None:
            self.worker.cancel()
        super().closeEvent(event)
