"""The model list: which registry cards can run on the open song, and a dialog describing each card in a
musician's words (quality per stem in dB, speed as a multiple of real time, what it was trained on)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
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


#: Card kinds in words.
KIND_WORDS = {"neural": "trained model", "reference": "reference model", "oracle": "oracle (needs the true stems)",
              "test": "test model"}
QUALITY_HINT = "SDR: how close each stem comes to the real one, in dB; higher is better"


@dataclass(frozen=True)
class CardFacts:
    """A card in a musician's words: each a short line ("—" when the card does not say)."""

    quality: str  #: quality per stem in dB, e.g. "vocals 6.5 dB · drums 7.6 dB · bass 7.7 dB · other 4.8 dB"
    speed: str  #: e.g. "36× real time on the CPU (2 threads): a 4-minute song in about 7 s"
    trained: str  #: what it learnt from, e.g. "180 synthetic songs of 60 s (FluidR3 GM instruments), 66 min on CPU"
    compare: str = ""  #: what the quality figures mean next to the untouched mix and a perfect mask ("" if unknown)


def _per_stem(scores: object, sources: list[str]) -> dict[str, float]:
    """``{stem: dB}`` of a card's per-stem score dict (card order; non-numbers left out)."""
    if not isinstance(scores, dict):
        return {}
    values = {str(k): float(v) for k, v in scores.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    order = [s for s in sources if s in values] + [s for s in values if s not in sources]
    return {s: values[s] for s in order}


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None


def _quality(card: ModelCard) -> tuple[str, str]:
    scores = card.scores or {}
    for key in ("sdr_median", "sdr", "SDR", "median_sdr", "usdr_mean"):
        per_stem = _per_stem(scores.get(key), card.sources)
        if per_stem:
            break
    else:
        single = next((scores[k] for k in ("sdr", "SDR", "median_sdr") if isinstance(scores.get(k), int | float)),
                      None)
        return (f"{single:.1f} dB" if single is not None else "—"), ""
    quality = " · ".join(f"{stem} {db:.1f} dB" for stem, db in per_stem.items())
    mixture = _mean(_per_stem(scores.get("mixture_sdr_median"), card.sources))
    ideal = _mean(_per_stem(scores.get("irm_sdr_median"), card.sources))
    compare = ""
    if mixture is not None and ideal is not None:
        compare = (f"average {_mean(per_stem):.1f} dB, where the untouched mix scores {mixture:.1f} dB and a "
                   f"perfect mask (irm) {ideal:.1f} dB")
    return quality, compare


def _speed(card: ModelCard) -> str:
    speed = card.speed or {}
    factor = speed.get("cpu_realtime_factor")
    if not isinstance(factor, int | float) or factor <= 0:
        return "—"
    threads = speed.get("threads")
    on = f"the CPU ({threads} thread{'s' if threads != 1 else ''})" if isinstance(threads, int) else "the CPU"
    song_seconds = 240.0 / factor
    took = f"about {song_seconds:.0f} s" if song_seconds >= 1.5 else "about a second"
    return f"{factor:.0f}× real time on {on}: a 4-minute song in {took}"


def _trained(card: ModelCard) -> str:
    if card.kind == "oracle":
        return "not trained: computed from the song's true stems"
    if card.kind == "test":
        return "not trained (for tests)"
    training = card.training or {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    counts = data.get("counts") if isinstance(data.get("counts"), dict) else {}
    n_songs = counts.get("train")
    seconds = data.get("seconds_per_track")
    parts = []
    if isinstance(n_songs, int):
        kind = "synthetic songs" if "synth" in str(data.get("generator", "")) else "songs"
        length = f" of {seconds:.0f} s" if isinstance(seconds, int | float) else ""
        parts.append(f"{n_songs} {kind}{length}")
    soundfont = data.get("soundfont")
    if isinstance(soundfont, str) and soundfont:
        parts[-1:] = [f"{parts[-1]} ({soundfont.removesuffix('.sf2').replace('_', ' ')} instruments)"] if parts \
            else [f"{soundfont} instruments"]
    minutes = training.get("minutes")
    if isinstance(minutes, int | float):
        where = "GPU" if "gpu" in str(training.get("hardware", "")).lower().replace("no gpu", "") else "CPU"
        parts.append(f"{minutes:.0f} min on {where}")
    return ", ".join(parts) if parts else "—"


def card_facts(card: ModelCard) -> CardFacts:
    """What the tooltip and the Models dialog say about ``card``: quality, speed, training data."""
    quality, compare = _quality(card)
    return CardFacts(quality, _speed(card), _trained(card), compare)


def describe_card(card: ModelCard, reason: str = "") -> str:
    """Rich text for the tooltip and the Models dialog: name, kind, summary, quality, speed, training, paper."""
    facts = card_facts(card)
    kind = KIND_WORDS.get(card.kind, card.kind) + (", the default" if card.default else "")
    lines = [f"<b>{escape(card.name)}</b> — {escape(kind)}", escape(card.summary)]
    quality = f"<b>Quality</b>: {escape(facts.quality)}"
    if facts.quality != "—":
        quality += f"<br><small>{escape(QUALITY_HINT)}{'; ' + escape(facts.compare) if facts.compare else ''}</small>"
    lines += [quality, f"<b>Speed</b>: {escape(facts.speed)}", f"<b>Trained on</b>: {escape(facts.trained)}",
              f"<b>Stems</b>: {escape(', '.join(card.sources))}"]
    if card.paper:
        lines.append(f"<b>Paper</b>: {escape(card.paper)}")
    if reason:
        lines.append(f"<i>Unavailable: {escape(reason)}</i>")
    return "<br>".join(lines)


def fill_combo(combo: QComboBox, choices: list[ModelChoice], current: str | None, has_song: bool = True) -> None:
    """Put the choices in ``combo`` (unusable ones disabled, with the reason) and select ``current``."""
    model = QStandardItemModel(combo)
    for choice in choices:
        label = f"{choice.card.name} ({choice.card.kind})"
        item = QStandardItem(label)
        item.setData(choice.card.name, Qt.ItemDataRole.UserRole)
        if not choice.usable:
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
        item.setToolTip(f"<p style='white-space: normal; width: 420px'>"
                        f"{describe_card(choice.card, '' if choice.usable else choice.reason)}</p>")
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
    """Every model card, one block each (wrapped to the dialog's width): what it is, quality per stem, speed,
    training data, paper, and whether it can run on the open song."""

    def __init__(self, choices: list[ModelChoice], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Separation models")
        self.resize(760, 620)
        layout = QVBoxLayout(self)
        if not has_trained_model(choices):
            note = QLabel(NO_TRAINED_MODEL)
            note.setWordWrap(True)
            note.setStyleSheet("color: #ffcc66;")
            layout.addWidget(note)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        blocks = []
        for choice in choices:
            available = "yes" if choice.usable else escape(choice.reason)
            blocks.append(f"<p>{describe_card(choice.card)}<br><b>Available</b>: {available}</p>")
        self.browser.setHtml("<hr>".join(blocks) or "<p>No model is installed.</p>")
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def text(self) -> str:
        """The dialog's words (tests)."""
        return self.browser.toPlainText()
