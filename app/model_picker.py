"""The model list: which registry cards can run on the open song, and a dialog describing each card."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from engine.errors import ShotokuError
from engine.models.catalogue import ModelCard, list_cards

NO_TRAINED_MODEL = (
    "No trained separation model is installed yet: Shotoku plays the original mix. The oracle models (irm, ibm) "
    "only work on songs whose true stems lie beside them, like the demo song."
)


@dataclass
class ModelChoice:
    """A card and whether it can run on the open song (``reason`` says why not)."""

    card: ModelCard
    usable: bool
    reason: str = ""


def model_choices(has_references: bool, include_test: bool = False) -> list[ModelChoice]:
    """Every card in the registry, marked usable or not for a song with/without reference stems."""
    try:
        cards = list_cards(include_hidden=include_test)
    except (ShotokuError, OSError):
        return []
    out = []
    for card in cards:
        if card.needs_references and not has_references:
            out.append(ModelChoice(card, False, "needs the song's reference stems (open the demo song)"))
        else:
            out.append(ModelChoice(card, True))
    return out


def pick_model(choices: list[ModelChoice], preferred: str | None) -> str | None:
    """``preferred`` if usable; else the default card, a neural one, a reference one, an oracle; else None."""
    usable = [c.card for c in choices if c.usable]
    if preferred and any(c.name == preferred for c in usable):
        return preferred
    for predicate in (lambda c: c.default, lambda c: c.kind == "neural", lambda c: c.kind == "reference",
                      lambda c: c.name == "irm", lambda c: c.kind == "oracle", lambda c: True):
        for card in usable:
            if predicate(card):
                return card.name
    return None


def has_trained_model(choices: list[ModelChoice]) -> bool:
    return any(c.card.kind in ("neural", "reference") for c in choices)


def _format_scores(card: ModelCard) -> str:
    scores = card.scores or {}
    sdr = scores.get("sdr") or scores.get("SDR") or scores.get("median_sdr")
    if isinstance(sdr, dict):
        parts = [f"{k} {v:.1f}" for k, v in sdr.items() if isinstance(v, (int, float))]
        return "SDR " + ", ".join(parts) + " dB" if parts else "—"
    if isinstance(sdr, (int, float)):
        return f"SDR {sdr:.1f} dB"
    return "—" if not scores else ", ".join(f"{k}: {v}" for k, v in list(scores.items())[:3])


def _format_speed(card: ModelCard) -> str:
    speed = card.speed or {}
    if not speed:
        return "—"
    return ", ".join(f"{k}: {v}" for k, v in list(speed.items())[:3])


def describe_card(card: ModelCard) -> str:
    """Tooltip text: summary, stems, paper, quality, speed."""
    lines = [f"<b>{card.name}</b> ({card.kind})", card.summary, f"Stems: {', '.join(card.sources)}"]
    if card.paper:
        lines.append(f"Paper: {card.paper}")
    lines.append(f"Quality: {_format_scores(card)}")
    lines.append(f"Speed: {_format_speed(card)}")
    return "<br>".join(lines)


def fill_combo(combo: QComboBox, choices: list[ModelChoice], current: str | None, has_song: bool = True) -> None:
    """Put the choices in ``combo`` (unusable ones disabled, with the reason) and select ``current``."""
    model = QStandardItemModel(combo)
    for choice in choices:
        label = f"{choice.card.name} ({choice.card.kind})"
        item = QStandardItem(label)
        item.setData(choice.card.name, Qt.ItemDataRole.UserRole)
        tip = describe_card(choice.card)
        if not choice.usable:
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            tip += f"<br><i>Unavailable: {choice.reason}</i>"
        item.setToolTip(tip)
        model.appendRow(item)
    if not choices:
        item = QStandardItem("no model installed")
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
        model.appendRow(item)
    combo.blockSignals(True)
    combo.setModel(model)
    if not has_song:
        combo.setPlaceholderText("open a song first")
    else:
        combo.setPlaceholderText("no model for this song" if not any(c.usable for c in choices) else "choose a model")
    index = next((i for i, c in enumerate(choices) if c.card.name == current), -1)
    combo.setCurrentIndex(index)
    combo.blockSignals(False)


class ModelsDialog(QDialog):
    """A table of every model card: name, kind, stems, summary, paper, speed, quality, availability."""

    def __init__(self, choices: list[ModelChoice], parent: object = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Separation models")
        self.resize(1100, 360)
        layout = QVBoxLayout(self)
        if not has_trained_model(choices):
            note = QLabel(NO_TRAINED_MODEL)
            note.setWordWrap(True)
            note.setStyleSheet("color: #ffcc66;")
            layout.addWidget(note)
        headers = ["Model", "Kind", "Stems", "Summary", "Paper", "Speed", "Quality", "Available"]
        table = QTableWidget(len(choices), len(headers))
        table.setHorizontalHeaderLabels(headers)
        for row, choice in enumerate(choices):
            card = choice.card
            values = [card.name, card.kind, ", ".join(card.sources), card.summary, card.paper or "—",
                      _format_speed(card), _format_scores(card), "yes" if choice.usable else choice.reason]
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                table.setItem(row, col, item)
        table.setWordWrap(True)
        table.resizeColumnsToContents()
        header = table.horizontalHeader()
        for column in (3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        table.resizeRowsToContents()
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(table)
        self.table = table

    def showEvent(self, event: object) -> None:  # noqa: N802
        super().showEvent(event)
        self.table.resizeRowsToContents()  # now that the stretched columns have their final width
