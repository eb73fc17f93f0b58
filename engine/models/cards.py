"""Model cards: what ``resources/models/<name>/card.json`` says about a shipped model, read, listed and written.

A shipped model is a folder ``resources/models/<name>/`` holding ``card.json`` and, for trained models,
``weights.safetensors`` whose sha256 is recorded in the card (see :mod:`engine.models.weights`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_json
from engine.errors import ModelLoadError
from engine.paths import models_dir

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"

#: Kinds of card: "neural" (trained weights), "reference" (no weights, works on any song),
#: "oracle" (needs the reference stems: evaluation upper bounds), "test" (hidden from the GUI).
CARD_KINDS = ("neural", "reference", "oracle", "test")


@dataclass
class ModelCard:
    """What ``resources/models/<name>/card.json`` says about a model."""

    name: str
    architecture: str
    kind: str = "neural"
    summary: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    samplerate: int = 44100
    n_channels: int = 2
    segment_seconds: float = 10.0
    paper: str = ""
    default: bool = False
    weights_sha256: str | None = None
    weights_dtype: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def weights_path(self) -> Path | None:
        """Path of the weights file, or None for models without weights."""
        if self.weights_sha256 is None or self.folder is None:
            return None
        return self.folder / WEIGHTS_FILE

    @property
    def needs_references(self) -> bool:
        """True for oracle models, which compute masks from the reference stems."""
        return self.kind == "oracle"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("folder")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path | None = None) -> ModelCard:
        known = {f for f in cls.__dataclass_fields__ if f != "folder"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown card fields: {', '.join(sorted(unknown))}")
        if data.get("kind", "neural") not in CARD_KINDS:
            raise ValueError(f"kind must be one of {CARD_KINDS}")
        return cls(**data, folder=folder)


def read_card(folder: Path) -> ModelCard:
    """Parse ``folder/card.json``; raises ModelLoadError naming the file on any problem."""
    path = folder / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelCard.from_json(data, folder=folder)
    except FileNotFoundError:
        raise ModelLoadError(path, "model card is missing") from None
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ModelLoadError(path, f"model card is not valid: {err}") from None


def list_cards(include_hidden: bool = False, root: Path | None = None) -> list[ModelCard]:
    """Every model card under ``root`` (default: the bundled models), sorted default-first then by name.

    Test-only cards (kind "test") are left out unless ``include_hidden``. Unreadable cards are skipped here (they
    raise when loaded by name), so one broken folder never hides the others.
    """
    root = root or models_dir()
    cards = []
    for folder in sorted(p for p in root.iterdir() if (p / CARD_FILE).is_file()) if root.is_dir() else []:
        try:
            card = read_card(folder)
        except ModelLoadError:
            continue
        if include_hidden or card.kind != "test":
            cards.append(card)
    return sorted(cards, key=lambda c: (not c.default, c.kind != "neural", c.name))


def get_card(name: str, root: Path | None = None) -> ModelCard:
    """The card of model ``name``; ModelLoadError listing the known names when there is none."""
    root = root or models_dir()
    folder = root / name
    if not (folder / CARD_FILE).is_file():
        known = ", ".join(c.name for c in list_cards(include_hidden=True, root=root)) or "none"
        raise ModelLoadError(None, f"unknown model {name!r} (known models: {known})")
    return read_card(folder)


def default_model_name(root: Path | None = None) -> str:
    """The card marked ``"default": true`` if any, else the first neural model, else the first reference model.

    Oracle and test cards are never the default; ModelLoadError when no usable card is installed.
    """
    cards = list_cards(root=root)
    for predicate in (lambda c: c.default, lambda c: c.kind == "neural", lambda c: c.kind == "reference"):
        for card in cards:
            if predicate(card):
                return card.name
    raise ModelLoadError(root or models_dir(), "no usable model card is installed")


def write_card(card: ModelCard) -> Path:
    """Write ``card.json`` into ``card.folder`` atomically; returns its path."""
    assert card.folder is not None
    return atomic_write_json(card.folder / CARD_FILE, card.to_json())
