"""The architecture registry: model classes by the name a card's ``architecture`` field gives.

A model file registers its class with ``@register_architecture("name")`` (imported from
:mod:`engine.models.catalogue`). A class deriving :class:`~engine.models.masking.Estimator` is a spectrogram-mask
architecture: :func:`build_model` then returns a :class:`~engine.models.masking.MaskSeparator` around it, splitting
the config into the pipeline's keys and the estimator's.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from torch import nn

from engine.errors import ModelLoadError
from engine.models.masking import Estimator, MaskSeparator

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
    """All registered architectures, by name (model classes, or estimator classes of mask architectures)."""
    _import_architectures()
    return dict(_ARCHITECTURES)


def build_model(architecture: str, config: dict[str, Any] | None = None) -> nn.Module:
    """A randomly initialised model of a registered architecture with constructor arguments ``config``.

    Raises:
        ModelLoadError: the architecture is unknown.
        TypeError: ``config`` names an argument the architecture does not take.
    """
    classes = architectures()
    if architecture not in classes:
        raise ModelLoadError(None, f"unknown architecture {architecture!r}; known: {', '.join(sorted(classes))}")
    cls = classes[architecture]
    if issubclass(cls, Estimator):
        return MaskSeparator.build(cls, config or {})
    return cls(**(config or {}))
