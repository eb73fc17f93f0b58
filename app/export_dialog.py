"""The export dialog: stems (all or chosen), the remix with the current mix, or both; format, depth, folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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

from app.workers import ExportJob, ExportWorker, WorkerHost

#: Format label -> (extension, bit depth choices, default)
FORMATS: dict[str, tuple[str, list[str], str | None]] = {
    "WAV": ("wav", ["16", "24", "float"], "24"),
    "FLAC": ("flac", ["16", "24"], "24"),
    "MP3": ("mp3", [], None),
    "OGG (Vorbis)": ("ogg", [], None),
}
REMIX_NAME = "remix"


def export_paths(folder: Path, song: str, stems: list[str], remix: bool, extension: str) -> list[tuple[str, Path]]:
    """``(what, path)`` of each file to write: ``<song> - <stem>.<ext>`` and ``<song> - remix.<ext>``."""
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
    """

    def __init__(
        self, host: WorkerHost, song_name: str, stems: np.ndarray, stem_names: list[str], samplerate: int,
        gains: np.ndarray, master: float, folder: str, parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export — {song_name}")
        self.setMinimumWidth(480)
        self.host, self.song_name, self.stems, self.stem_names = host, song_name, stems, stem_names
        self.samplerate, self.gains, self.master = samplerate, gains, master
        self.worker: ExportWorker | None = None
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
        form.addRow("Format", self.format)
        form.addRow("Bit depth", self.depth)
        form.addRow("Folder", folder_row)
        layout.addLayout(form)
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

    def chosen_stems(self) -> list[str]:
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
        for box in self.stem_boxes.values():
            box.setEnabled(not self.mode_remix.isChecked())
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
        self.worker = ExportWorker(jobs, self.stems, self.samplerate, extension, depth, block=self.block_frames,
                                   stem_names=self.stem_names)
        self.worker.progress.connect(self._on_progress)
        self.worker.succeeded.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.done.connect(self._on_finished)
        self.export_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.status.setText("Exporting…")
        self.host.start(self.worker)
        return True

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(text)

    def _on_done(self, paths: list[Path]) -> None:
        self.written = list(paths)
        self.progress.setValue(1000)
        self.status.setText(f"Exported {len(paths)} file(s) to {paths[0].parent if paths else ''}")

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Export failed: {message}")
        QMessageBox.warning(self, "Export failed", message)

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self.status.setText("Export cancelled; unfinished files were removed.")

    def _on_finished(self) -> None:
        self.worker = None
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
