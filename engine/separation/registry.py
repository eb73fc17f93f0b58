"""The model registry: architectures by name, shipped models by card.

A shipped model is a folder ``resources/models/<name>/`` holding ``card.json`` and, for trained models,
``weights.safetensors`` whose sha256 is recorded in the card and checked before loading. Weights are never
unpickled: only safetensors is read.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import ModelLoadError
from engine.paths import models_dir

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"

#: Kinds of card: "neural" (trained weights), "reference" (no weights, works on any song),
#: "oracle" (needs the reference stems: evaluation upper bounds), "test" (hidden from the GUI).
CARD_KINDS = ("neural", "reference", "oracle", "test")

_ARCHITECTURES: dict[str, type[nn.Module]] = {}
_architectures_imported = False


def register_architecture(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``cls`` constructible by ``name`` from a card's ``architecture`` field."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not cls:
            raise ValueError(f"architecture {name!r} is registered twice")
        _ARCHITECTURES[name] = cls
        cls.architecture = name  # type: ignore[attr-defined]
        return cls

    return decorator


def _import_architectures() -> None:
    """Import every module of ``engine.models`` once so their ``@register_architecture`` calls run."""
    global _architectures_imported
    if _architectures_imported:
        return
    import engine.models as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"engine.models.{module.name}")
    _architectures_imported = True


def architectures() -> dict[str, type[nn.Module]]:
    """All registered architectures, by name."""
    _import_architectures()
    return dict(_ARCHITECTURES)


def build_model(architecture: str, config: dict[str, Any] | None = None) -> nn.Module:
    """A randomly initialised model of a registered architecture with constructor arguments ``config``."""
    classes = architectures()
    if architecture not in classes:
        raise ModelLoadError(None, f"unknown architecture {architecture!r}; known: {', '.join(sorted(classes))}")
    return classes[architecture](**(config or {}))


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


def sha256_file(path: Path, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def _load_state_dict(card: ModelCard) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = card.weights_path
    assert path is not None
    if not path.is_file():
        raise ModelLoadError(path, "weights file is missing (reinstall Shotoku or retrain the model)")
    actual = sha256_file(path)
    if actual != card.weights_sha256:
        raise ModelLoadError(
            path, f"weights are corrupt or do not match the card (sha256 {actual[:12]}… != {card.weights_sha256[:12]}…)"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(path, f"weights are not a valid safetensors file: {err}") from None


def load_model(name: str, device: torch.device | str | None = None, root: Path | None = None) -> nn.Module:
    """Build model ``name`` from its card, load and verify its weights, move it to ``device``, eval mode.

    The returned module satisfies :class:`engine.models.base.SeparationModel` and carries its card as ``.card``.
    """
    card = get_card(name, root=root)
    model = load_from_card(card)
    if device is not None:
        model = model.to(device)
    return model


def load_from_card(card: ModelCard) -> nn.Module:
    """Build the model a card describes and load its verified weights (CPU, eval mode)."""
    config = dict(card.config)
    try:
        model = build_model(card.architecture, config)
    except TypeError as err:
        raise ModelLoadError(card.folder, f"card config does not fit architecture {card.architecture!r}: {err}") from None
    if card.weights_sha256 is not None:
        state = _load_state_dict(card)
        reference = model.state_dict()
        state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ModelLoadError(card.weights_path, f"weights do not fit the architecture: {first}") from None
    model.eval()
    model.card = card  # type: ignore[attr-defined]
    return model


def save_model(
    model: nn.Module,
    name: str,
    card_fields: dict[str, Any],
    root: Path | None = None,
    dtype: torch.dtype | None = torch.float16,
) -> Path:
    """Write ``<root>/<name>/weights.safetensors`` and ``card.json`` (atomically) and return the folder.

    ``card_fields`` holds everything but name, sha256 and dtype (architecture, config, sources, paper, training,
    scores, ...). Floating-point weights are stored as ``dtype`` (float16 by default; None keeps float32).
    """
    from safetensors.torch import save_file

    folder = (root or models_dir()) / name
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to("cpu").to(dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu())
        .contiguous()
        for k, v in model.state_dict().items()
    }
    weights = folder / WEIGHTS_FILE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".weights-", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        os.replace(tmp, weights)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fields = dict(card_fields)
    fields.update(
        name=name,
        weights_sha256=sha256_file(weights),
        weights_dtype=str(dtype).removeprefix("torch.") if dtype is not None else "float32",
    )
    card = ModelCard.from_json(fields, folder=folder)
    write_card(card)
    return folder


def write_card(card: ModelCard) -> Path:
    """Write ``card.json`` into ``card.folder`` atomically."""
    assert card.folder is not None
    path = card.folder / CARD_FILE
    fd, tmp = tempfile.mkstemp(dir=card.folder, prefix=".card-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(card.to_json(), handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path
