"""Model cards: what ``resources/models/<name>/card.json`` says about a shipped model, read, listed and written.

A shipped model is a folder ``resources/models/<name>/`` holding ``card.json`` and, for trained models,
``weights.safetensors`` whose sha256 is recorded in the card (see :mod:`engine.models.weights`). The user's own
models (``shotoku adapt``) are the same folders in :func:`engine.paths.user_models_dir`, listed after the shipped
ones (a shipped name wins) and removable (:func:`remove_user_model`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_json
from engine.errors import ModelLoadError
from engine.paths import models_dir, user_models_dir

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"

#: Kinds of card: "neural" (trained weights), "reference" (no weights, works on any song),
#: "oracle" (needs the reference stems: evaluation upper bounds), "test" (hidden from the GUI).
CARD_KINDS = ("neural", "reference", "oracle", "test")
#: A model name: letters, digits, ".", "_", "-" (a folder name in the registry, never a path).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Bounds a card's numbers must keep (a card is data from disk: a wrong type or value is refused when read).
MAX_SEGMENT_SECONDS = 120.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEXT_FIELDS = ("name", "architecture", "summary", "paper")
_DICT_FIELDS = ("config", "training", "scores", "speed")
#: Pipeline keys of a config that every architecture reads (see engine.models.masking): checked like the card's.
_CONFIG_POSITIVE_INTS = ("n_fft", "hop_length", "n_channels", "samplerate")


def check_name(name: object) -> str:
    """``name`` if it is a model name (see :data:`NAME_PATTERN`); ModelLoadError otherwise (a path, say)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ModelLoadError(None, f"{name!r} is not a model name (letters, digits, '.', '_' and '-'; not a path)")
    return name


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _segment_ok(value: object) -> bool:
    return _is_number(value) and 0 < value <= MAX_SEGMENT_SECONDS  # type: ignore[operator]


def card_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with a card's fields (types, ranges), in words; empty when the card is usable."""
    problems = []
    for key in _TEXT_FIELDS:
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key} must be text, got {data[key]!r}")
    for key in _DICT_FIELDS:
        if key in data and not isinstance(data[key], dict):
            problems.append(f"{key} must be an object, got {type(data[key]).__name__}")
    sources = data.get("sources", [])
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources) \
            or len(set(sources)) != len(sources):
        problems.append(f"sources must be a list of distinct stem names, got {sources!r}")
    if "samplerate" in data and not (_is_int(data["samplerate"]) and 1000 <= data["samplerate"] <= 768_000):
        problems.append(f"samplerate must be a whole number of Hz (1000-768000), got {data['samplerate']!r}")
    if "n_channels" in data and not (_is_int(data["n_channels"]) and 1 <= data["n_channels"] <= 64):
        problems.append(f"n_channels must be 1-64, got {data['n_channels']!r}")
    if "segment_seconds" in data and not _segment_ok(data["segment_seconds"]):
        problems.append(f"segment_seconds must be a number of seconds in (0, {MAX_SEGMENT_SECONDS:g}], "
                        f"got {data['segment_seconds']!r}")  # fmt: skip
    if "default" in data and not isinstance(data["default"], bool):
        problems.append(f"default must be true or false, got {data['default']!r}")
    sha = data.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        problems.append(f"weights_sha256 must be 64 lowercase hex digits or null, got {sha!r}")
    if data.get("weights_dtype") is not None and not isinstance(data["weights_dtype"], str):
        problems.append(f"weights_dtype must be text or null, got {data['weights_dtype']!r}")
    if "name" in data and isinstance(data["name"], str) and not NAME_PATTERN.fullmatch(data["name"]):
        problems.append(f"name {data['name']!r} is not a model name (letters, digits, '.', '_', '-')")
    config = data.get("config", {})
    if isinstance(config, dict):
        if "segment_seconds" in config and not _segment_ok(config["segment_seconds"]):
            problems.append(f"config.segment_seconds must be a number of seconds in (0, {MAX_SEGMENT_SECONDS:g}], "
                            f"got {config['segment_seconds']!r}")  # fmt: skip
        for key in _CONFIG_POSITIVE_INTS:
            if key in config and not (_is_int(config[key]) and config[key] > 0):
                problems.append(f"config.{key} must be a positive whole number, got {config[key]!r}")
    return problems


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
        problems = card_problems(data)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**data, folder=folder)


def read_card(folder: Path) -> ModelCard:
    """Parse ``folder/card.json``; raises ModelLoadError naming the file on any problem."""
    path = folder / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return ModelCard.from_json(data, folder=folder)
    except FileNotFoundError:
        raise ModelLoadError(path, "model card is missing") from None
    except IsADirectoryError:
        raise ModelLoadError(path, "model card is a folder, not a file") from None
    except PermissionError:
        raise ModelLoadError(path, "model card cannot be read (permission denied)") from None
    except OSError as err:
        raise ModelLoadError(path, f"model card cannot be read ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as err:
        raise ModelLoadError(path, f"model card is not valid: {err}") from None


def list_cards(include_hidden: bool = False, root: Path | None = None) -> list[ModelCard]:
    """Every model card under ``root`` (default: the bundled models and the user's own), sorted default-first then
    by name.

    Test-only cards (kind "test") are left out unless ``include_hidden``. Unreadable cards are skipped here (they
    raise when loaded by name), so one broken folder never hides the others.
    """
    cards: list[ModelCard] = []
    for folder in _card_folders(root):
        try:
            card = read_card(folder)
        except ModelLoadError:
            continue
        if include_hidden or card.kind != "test":
            cards.append(card)
    return sorted(cards, key=lambda c: (not c.default, c.kind != "neural", c.name))


def _card_folders(root: Path | None) -> list[Path]:
    """The model folders of ``root``; without one, the shipped ones then the user's (``shotoku adapt``) whose
    names no shipped model has."""
    roots = [root] if root is not None else [models_dir(), user_models_dir()]
    folders: dict[str, Path] = {}
    for base in roots:
        for folder in sorted(p for p in base.iterdir() if (p / CARD_FILE).is_file()) if base.is_dir() else []:
            folders.setdefault(folder.name, folder)
    return list(folders.values())


def is_user_model(card: ModelCard) -> bool:
    """Whether ``card`` is one of the user's own models (in :func:`engine.paths.user_models_dir`)."""
    return card.folder is not None and card.folder.parent.resolve() == user_models_dir().resolve()


def remove_user_model(name: str) -> Path:
    """Delete the user's model ``name`` (renamed away first, so it leaves the list at once); returns where it was.

    ModelLoadError for a shipped model or an unknown name."""
    import shutil

    check_name(name)
    folder = user_models_dir() / name
    if (models_dir() / name / CARD_FILE).is_file():
        raise ModelLoadError(None, f"{name!r} is a model that comes with Shotoku; only your own models can be removed")
    if not (folder / CARD_FILE).is_file():
        raise ModelLoadError(None, f"no model of yours is called {name!r}")
    trash = folder.with_name(f".removed-{name}-{os.getpid()}")
    try:
        folder.rename(trash)
    except OSError as err:
        raise ModelLoadError(folder, f"cannot be removed ({err.strerror or err})") from None
    shutil.rmtree(trash, ignore_errors=True)
    return folder


def get_card(name: str, root: Path | None = None) -> ModelCard:
    """The card of model ``name``; ModelLoadError listing the known names when there is none."""
    check_name(name)
    folder = (root or models_dir()) / name
    if root is None and not (folder / CARD_FILE).is_file():
        folder = user_models_dir() / name
    if not (folder / CARD_FILE).is_file():
        known = ", ".join(c.name for c in list_cards(include_hidden=True, root=root)) or "none"
        raise ModelLoadError(None, f"unknown model {name!r} (known models: {known})")
    return read_card(folder)


def default_model_name(root: Path | None = None) -> str:
    """The card marked ``"default": true`` if any, else the first neural model, else the first reference model.

    Oracle and test cards are never the default, nor are the user's own models; ModelLoadError when no usable card
    is installed.
    """
    cards = list_cards(root=root or models_dir())
    for predicate in (lambda c: c.default, lambda c: c.kind == "neural", lambda c: c.kind == "reference"):
        for card in cards:
            if predicate(card):
                return card.name
    raise ModelLoadError(root or models_dir(), "no usable model card is installed")


def write_card(card: ModelCard) -> Path:
    """Write ``card.json`` into ``card.folder`` atomically; returns its path."""
    assert card.folder is not None
    return atomic_write_json(card.folder / CARD_FILE, card.to_json())
