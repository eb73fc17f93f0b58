"""What :class:`~engine.playback.session.PlaybackSession` needs of a separation model, and the model's input.

A model is resolved from a name (its card; the weights load in the separation worker's process), from a loaded
module, or from nothing (the catalogue's default; ``None`` when no usable card is installed, so the session plays
the original mix only). The worker's input is :func:`engine.models.base.prepare_input` of the mixture (an oracle
model's hook stacks the reference stems after it); a model known only by its card runs that hook of its
architecture.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ModelLoadError


class CardModel:
    """A model read from its card without the weights: names, rate, channels, chunk length, oracle or not."""

    def __init__(self, card: Any) -> None:
        self.card, self.name = card, card.name
        self.sources, self.samplerate, self.n_channels = list(card.sources), int(card.samplerate), card.n_channels
        self.segment_samples = int(card.segment_seconds * card.samplerate)
        self.needs_references = bool(card.needs_references)

    def prepare_input(self, mix: np.ndarray, references: dict[str, np.ndarray] | None) -> np.ndarray:
        """The architecture's ``prepare_input`` hook, if it has one (built without weights to run it), else ``mix``."""
        from engine.models.catalogue import architectures, build_model

        if getattr(architectures().get(self.card.architecture), "prepare_input", None) is None:
            return mix
        return build_model(self.card.architecture, dict(self.card.config)).prepare_input(mix, references)


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
            from engine.models.catalogue import default_model_name

            try:
                name = default_model_name()
            except ModelLoadError:
                return None
        from engine.models.catalogue import get_card, load_model

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


def model_input(resolved: ResolvedModel, mix: np.ndarray, references: dict[str, np.ndarray] | None) -> np.ndarray:
    """The separation worker's input: :func:`engine.models.base.prepare_input` of ``mix`` ``(n_channels,
    n_samples)``, i.e. ``mix`` itself or, for a model with the hook, e.g. ``(n_channels * (1 + n_stems),
    n_samples)`` with the reference stems stacked after it.

    Raises:
        ShotokuError: an oracle model without every reference stem.
    """
    from engine.models.base import prepare_input

    return prepare_input(resolved.model, mix, references)


class ModelResolver:
    """Resolves a session's model choices, remembering the last one chosen by name (its card is read once)."""

    def __init__(self) -> None:
        self._last: tuple[ResolvedModel, bool] | None = None

    def resolve(
        self, model: str | Any | None, default_name: str | None, load_weights: bool, device: str | None
    ) -> ResolvedModel | None:
        """:func:`resolve_model` with the cache: a name (or None for ``default_name``) resolved before, the same
        way (``load_weights``), is reused."""
        if (model is None or isinstance(model, str)) and self._last is not None:
            last, loaded = self._last
            name = model or default_name
            if name is not None and last.name == name and loaded == load_weights:
                return last
        resolved = resolve_model(model, default_name, load_weights, device)
        if resolved is not None and (model is None or isinstance(model, str)):
            self._last = (resolved, load_weights)
        return resolved

    def forget(self) -> None:
        """Resolve again next time (the compute device changed: modules loaded here must move)."""
        self._last = None
