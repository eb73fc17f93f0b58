""""Learn from my music": the adaptation job in the app (issue 13).

The dialog asks for a folder of songs (and optionally one of instrument-only recordings), a name and a time budget,
then runs :class:`engine.adapt.job.AdaptJob` in a child process at low priority
(:class:`engine.adapt.process.AdaptProcess`), polled by a timer (nothing here blocks the GUI or playback). It shows
the phase, a progress bar and the time left, what was found and, at the end, the vocal leakage before and after.
Closing the dialog leaves the job running (open it again to see it); Cancel stops the job resumably, and so does
quitting the app (:meth:`AdaptDialog.shutdown` on ``aboutToQuit``); an unfinished job is offered for resuming when
the dialog opens again. The user's own models are listed, removable; the model picker is refreshed after each change.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import ShotokuError

if TYPE_CHECKING:
    from app.controller import AppController

#: How often the child's messages are read (ms).
POLL_MS = 200


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "estimating the time left…"
    return f"about {max(1, round(seconds / 60))} min left" if seconds >= 60 else "less than a minute left"


def describe_scores(state: dict) -> str:
    """The before/after lines of a finished job's state, in a musician's words."""
    before, after = state.get("before", {}), state.get("after", {})
    lines = []
    for group, words in (("passages", "on instrument-only passages held out of the training"),
                         ("songs", "on songs kept out of the adaptation")):
        b, a = before.get("leakage_db", {}).get(group), after.get("leakage_db", {}).get(group)
        if b is not None and a is not None:
            lines.append(f"Voice leaking into the band {words}: {b:.1f} dB before, {a:.1f} dB after "
                         "(lower is better).")
    return "\n".join(lines)


class AdaptDialog(QDialog):
    """The job's form, progress and results; ``controller`` (optional) gets ``refresh_models`` after changes."""

    def __init__(self, controller: AppController | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Learn from my music")
        self.controller = controller
        self.process = None
        self.result_state: dict | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Shotoku can improve its voice/band separation on your own songs: no stems "
                                "needed. It finds the passages without singing by itself."))
        form = QFormLayout()
        self.songs_edit, self.instrumentals_edit = QLineEdit(), QLineEdit()
        self.instrumentals_edit.setPlaceholderText("optional: instrumental versions, backing tracks")
        for label, edit in (("Your songs", self.songs_edit), ("Instrument-only", self.instrumentals_edit)):
            row = QHBoxLayout()
            row.addWidget(edit)
            browse = QPushButton("Choose…")
            browse.clicked.connect(lambda _=False, e=edit: self._choose(e))
            row.addWidget(browse)
            form.addRow(label, row)
        self.name_edit = QLineEdit("my-music")
        form.addRow("Model name", self.name_edit)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(5, 600)
        self.minutes.setValue(60)
        self.minutes.setSuffix(" min")
        form.addRow("Time budget", self.minutes)
        layout.addLayout(form)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        for button in (self.start_button, self.resume_button, self.cancel_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("Your models"))
        self.models_list = QListWidget()
        layout.addWidget(self.models_list)
        self.remove_button = QPushButton("Remove the selected model")
        self.remove_button.clicked.connect(self.remove_selected)
        layout.addWidget(self.remove_button)
        self.refresh()

    # -- state -------------------------------------------------------------------------------------------------------
    def _choose(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text() or str(Path.home()))
        if folder:
            edit.setText(folder)

    def refresh(self) -> None:
        """The user's models and the unfinished job (offered for resuming)."""
        from engine.adapt.job import unfinished_jobs
        from engine.models.catalogue import is_user_model, list_cards

        self.models_list.clear()
        for card in (c for c in list_cards() if is_user_model(c)):
            self.models_list.addItem(f"{card.name}: {card.summary}")
        self.unfinished = unfinished_jobs()
        running = self.process is not None
        self.resume_button.setEnabled(bool(self.unfinished) and not running)
        self.start_button.setEnabled(not running)
        self.remove_button.setEnabled(not running and self.models_list.count() > 0)
        if self.unfinished and not running:
            request = self.unfinished[0]["request"]
            self.status.setText(f"An adaptation was stopped before it finished: {request['name']} "
                                f"({request['songs']}). Resume it, or start another.")

    @property
    def running(self) -> bool:
        return self.process is not None

    # -- the job -----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        from engine.adapt.job import AdaptJob, AdaptRequest

        songs, name = self.songs_edit.text().strip(), self.name_edit.text().strip()
        instrumentals = self.instrumentals_edit.text().strip() or None
        request = AdaptRequest(songs=songs, name=name, instrumentals=instrumentals,
                               max_minutes=float(self.minutes.value()))
        try:
            if not songs:
                raise ShotokuError("choose the folder of your songs first")
            AdaptJob(request).check()  # bad input gets its message now, not from the child
        except ShotokuError as err:
            self.status.setText(str(err))
            return
        self.launch(request.to_json())

    def resume(self) -> None:
        if self.unfinished:
            self.launch(self.unfinished[0]["request"])

    def launch(self, request: dict) -> None:
        """Start the child process for ``request`` (a new job, or the resumption of an unfinished one)."""
        from engine.adapt.process import AdaptProcess

        self.result_state = None
        self.process = AdaptProcess(request)
        self.process.start()
        self.status.setText(f"Adapting {request['name']}: starting…")
        self.cancel_button.setEnabled(True)
        self.refresh()
        self.timer.start()

    def poll(self) -> None:
        """Read the child's messages: progress, then its end."""
        if self.process is None:
            return
        for message in self.process.poll():
            kind = message[0]
            if kind == "progress":
                event = message[1]
                self.bar.setValue(int(1000 * event["fraction"]))
                self.status.setText(f"{event['detail']}; {_minutes(event['seconds_left'])}")
            elif kind == "done":
                self.result_state = message[2]
                self.bar.setValue(1000)
                self._finish(f"Your model {self.result_state['request']['name']!r} is ready: pick it in the model "
                             f"list.\n{describe_scores(self.result_state)}")
            elif kind == "cancelled":
                self._finish("Stopped. Resume it later: the work done is kept.")
            elif kind == "error":
                self._finish(f"The adaptation stopped: {message[1]}")

    def _finish(self, text: str) -> None:
        self.timer.stop()
        if self.process is not None:
            self.process.stop(timeout=5.0)
        self.process = None
        self.cancel_button.setEnabled(False)
        self.refresh()
        self.status.setText(text)
        if self.controller is not None:
            self.controller.refresh_models()

    def cancel(self) -> None:
        if self.process is not None:
            self.process.cancel()
            self.status.setText("Stopping at the next step…")

    def remove_selected(self) -> None:
        from engine.models.catalogue import remove_user_model

        item = self.models_list.currentItem()
        if item is None:
            return
        name = item.text().split(":", 1)[0]
        answer = QMessageBox.question(self, "Remove model", f"Remove your model {name!r}?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            remove_user_model(name)
        except ShotokuError as err:
            self.status.setText(str(err))
        self.refresh()
        if self.controller is not None:
            self.controller.refresh_models()

    def shutdown(self) -> None:
        """Stop the child (the job stays resumable) and the timer; safe to call twice."""
        self.timer.stop()
        if self.process is not None:
            self.process.stop(timeout=5.0)
            self.process = None
