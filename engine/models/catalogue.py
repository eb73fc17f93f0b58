"""The model catalogue: the one import path for architectures, cards and weights.

- architectures by name: :func:`register_architecture`, :func:`architectures`, :func:`build_model`
  (:mod:`engine.models.architectures`);
- shipped models by card: :class:`ModelCard`, :func:`read_card`, :func:`list_cards`, :func:`get_card`,
  :func:`default_model_name`, :func:`write_card`; the user's own models beside them: :func:`is_user_model`,
  :func:`remove_user_model` (:mod:`engine.models.cards`);
- weights: safetensors checked against the card's sha256, :func:`sha256_file` (:mod:`engine.models.weights`);
- both together: :func:`load_model`, :func:`load_from_card`, :func:`save_model` (here).

The weights file holds :func:`~engine.models.masking.weights_module`'s ``state_dict``: a
:class:`~engine.models.masking.MaskSeparator`'s estimator, any other model itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import ModelLoadError
from engine.models.architectures import architectures, build_model, register_architecture
from engine.models.cards import (
    CARD_FILE,
    CARD_KINDS,
    WEIGHTS_FILE,
    ModelCard,
    default_model_name,
    get_card,
    is_user_model,
    list_cards,
    read_card,
    remove_user_model,
    write_card,
)
from engine.models.masking import weights_module
from engine.models.weights import load_verified, save_state, sha256_file
from engine.paths import models_dir

__all__ = [
    "CARD_FILE",
    "CARD_KINDS",
    "WEIGHTS_FILE",
    "ModelCard",
    "architectures",
    "build_model",
    "default_model_name",
    "get_card",
    "is_user_model",
    "list_cards",
    "load_from_card",
    "load_model",
    "read_card",
    "register_architecture",
    "remove_user_model",
    "save_model",
    "sha256_file",
    "weights_module",
    "write_card",
]


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
    try:
        model = build_model(card.architecture, dict(card.config))
    except (TypeError, ValueError, OverflowError, RuntimeError, MemoryError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelLoadError(card.folder, f"card config does not fit architecture {card.architecture!r}: {first}") from None
    if card.weights_sha256 is not None:
        assert card.weights_path is not None
        state = load_verified(card.weights_path, card.weights_sha256)
        target = weights_module(model)
        reference = target.state_dict()
        state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
        try:
            target.load_state_dict(state, strict=True)
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
    folder = (root or models_dir()) / name
    folder.mkdir(parents=True, exist_ok=True)
    sha256 = save_state(weights_module(model).state_dict(), folder / WEIGHTS_FILE, dtype)
    fields = dict(card_fields)
    fields.update(
        name=name,
        weights_sha256=sha256,
        weights_dtype=str(dtype).removeprefix("torch.") if dtype is not None else "float32",
    )
    write_card(ModelCard.from_json(fields, folder=folder))
    return folder
