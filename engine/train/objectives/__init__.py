"""Training objectives by name: the config's ``"objective"`` key picks one (default ``"supervised"``).

Adding an objective is one module here with a subclass of :class:`Objective` decorated with
:func:`register_objective`, and its module name in :data:`_BUILTIN` (imported on first lookup).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from engine.errors import DatasetError
from engine.train.config import TrainConfig
from engine.train.objectives.base import Objective, StepContext, StepLogs

__all__ = ["Objective", "StepContext", "StepLogs", "build_objective", "objective_names", "register_objective"]

#: Modules that register the shipped objectives.
_BUILTIN = (
    "engine.train.objectives.supervised",
    "engine.train.objectives.semisup",
    "engine.train.objectives.gan_mask",
    "engine.train.objectives.nes",
    "engine.train.objectives.udt",
    "engine.train.objectives.vaebss",
    "engine.train.objectives.mixit",
    "engine.train.objectives.svsgan",
)
_OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: make ``cls`` the objective called ``name`` (also sets ``cls.name``)."""

    def decorate(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        _OBJECTIVES[name] = cls
        return cls

    return decorate


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def objective_names() -> list[str]:
    """Every registered objective, sorted."""
    _load_builtin()
    return sorted(_OBJECTIVES)


def build_objective(config: TrainConfig) -> Objective:
    """The objective ``config.objective`` built from ``config`` (its networks on the CPU, no optimizer yet)."""
    _load_builtin()
    if config.objective not in _OBJECTIVES:
        raise DatasetError(None, f"unknown training objective {config.objective!r}; known: "
                                 f"{', '.join(sorted(_OBJECTIVES))}")
    return _OBJECTIVES[config.objective](config)
