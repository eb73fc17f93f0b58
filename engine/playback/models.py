"""What :class:`~engine.playback.session.PlaybackSession` needs of a separation model, and the model's input.

A model is resolved from a name (its card; the weights load in the separation worker's process), from a loaded
module, or from nothing (the registry's default; ``None`` when no usable card is installed, so the session plays
the original mix only). Oracle models (``needs_references``) take the mixture's channels followed by each
reference stem's channels, in ``model.sources`` order, as :func:`engine.models.oracle.oracle_input` stacks them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ModelLoadError
from engine.models.oracle import oracle_input


class CardModel:
    """A model read from its card without the weights: names, rate, channels, chunk length, oracle or not."""

    def __init__(self, card: Any) -> None:
        self.card, self.name = card, card.name
        self.sources, self.samplerate, self.n_channels = list(card.sources), int(card.samplerate), card.n_channels
        self.segment_samples = int(card.segment_seconds * card.samplerate)
        self.needs_references = card.kind == "oracle"


@dataclass
class ResolvedModel:
    """A model ready to hand to the separation worker.

    Attributes:
        model: a :class:`CardModel` (weights load in the worker) or a loaded module.
        name: the card's name (or the module's class name for an uncarded module).
        sha256: what keys the stem cache besides the audio (weights hash, or a hash of the parameters).
    """

    model: Any
    name: str
    sha256: str | None

    @property
    def needs_references(self) -> bool:
        return bool(getattr(self.model, "needs_references", False))


def resolve_model(
    model: str | Any | None, default_name: str | None, load_weights: bool, device: str | None = None
) -> ResolvedModel | None:
    """Resolve ``model`` (a name, a module, or None for ``default_name`` / the registry default).

    Args:
        load_weights: load the module here (thread mode); otherwise only the card is read.
        device: compute device for a module loaded here (``None``/``"auto"``: the best available).
    Returns:
        None when ``model`` and ``default_name`` are None and no usable model card is installed.
    Raises:
        ModelLoadError: a named model cannot be found or loaded.
    """
    if model is None or isinstance(model, str):
        name = model or default_name
        if name is None:
            from engine.separation.registry import default_model_name

            try:
                name = default_model_name()
            except ModelLoadError:
                return None
        from engine.separation.registry import get_card, load_model

        if load_weights:
            from engine.separation.device import select_device

            obj: Any = load_model(name, device=select_device(None if device == "auto" else device))
        else:
            obj = CardModel(get_card(name))
        return ResolvedModel(obj, name, getattr(obj.card, "weights_sha256", None))
    name = getattr(getattr(model, "card", None), "name", None) or type(model).__name__
    card = getattr(model, "card", None)
    sha = getattr(card, "weights_sha256", None)
    if sha is None and card is None and any(True for _ in getattr(model, "parameters", list)()):
        # An uncarded model (tests, benchmarks): key the cache on its parameters.
        digest = hashlib.sha256()
        for p in model.state_dict().values():
            digest.update(p.detach().cpu().numpy().tobytes())
        sha = digest.hexdigest()
    return ResolvedModel(model, name, sha)


def model_input(
    samples: np.ndarray, sources: list[str], needs_references: bool, references: dict[str, np.ndarray] | None
) -> np.ndarray:
    """The separation worker's input: ``samples`` ``(n_channels, n_samples)``, or for an oracle model the
    stacked input of :func:`engine.models.oracle.oracle_input`.

    Raises:
        ShotokuError: an oracle model without every reference stem.
    """
    if not needs_references:
        return samples
    return oracle_input(samples, sources, references)
