"""The objective contract: what a training method owns, and the step context the trainer hands it.

The :class:`~engine.train.trainer.Trainer` owns epochs, data order, devices, validation, checkpoints and logging;
an :class:`Objective` owns its networks, their optimizers (and schedulers) and the step. The step is manual
optimisation, as a Lightning ``training_step`` with ``automatic_optimization = False``: the objective runs its
forward passes under ``step.autocast()``, calls ``step.backward(loss)`` and ``step.step(optimizer)`` for each
network in the order and on the schedule it wants (a discriminator every k steps, two players alternating), and
returns scalar logs.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.train.config import TrainConfig
from engine.train.runtime import Runtime
from engine.train.validation import ValidTrack, load_valid_tracks

#: What :meth:`Objective.training_step` returns: named scalars (floats or 0-d tensors), averaged per epoch.
StepLogs = Mapping[str, float | Tensor]


@dataclass
class StepContext:
    """The trainer's side of one training step.

    Attributes:
        runtime: device, rank, DDP wrap, autocast.
        scaler: the run's gradient scaler (enabled for float16 autocast only); the trainer updates it once per
            step after the objective stepped its optimizers.
        epoch: the epoch being trained (from 1).
        global_step: batches trained before this one over the whole run (resumes continue the count); use it
            for update schedules (``if step.global_step % k == 0``) so a resumed run keeps the schedule.
        grad_clip: the default gradient-norm clip of :meth:`step` (0: none).
    """

    runtime: Runtime
    scaler: torch.amp.GradScaler
    epoch: int = 1
    global_step: int = 0
    grad_clip: float = 0.0
    stepped: bool = field(default=False, init=False)

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for forward passes when the run asks for it (a no-op otherwise)."""
        return self.runtime.autocast()

    def backward(self, loss: Tensor) -> None:
        """``loss.backward()``, scaled when float16 mixed precision is on."""
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, grad_clip: float | None = None) -> None:
        """Clip the gradients of ``optimizer``'s parameters (``grad_clip``, default the run's) and step it.

        With float16 mixed precision, step each optimizer at most once per training step (the gradient scaler
        unscales each optimizer once per update).
        """
        clip = self.grad_clip if grad_clip is None else grad_clip
        if clip > 0:
            self.scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)
        self.stepped = True


class Objective(ABC):
    """A training method: its networks, optimizers, schedulers and step.

    Subclasses set :attr:`name` (registered with :func:`engine.train.objectives.register_objective`) and build
    their networks in ``__init__`` from the config (on the CPU); :meth:`setup` moves them to the run's device,
    wraps the ones it trains with ``runtime.wrap`` and creates the optimizers. Networks and optimizers are named,
    and the names key the checkpoint, so keep them stable.
    """

    name: ClassVar[str] = ""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    @abstractmethod
    def setup(self, runtime: Runtime) -> None:
        """Move the networks to ``runtime.device``, wrap them for DDP (``runtime.wrap``), create optimizers."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every network whose weights the checkpoint holds, by name (bare modules, not DDP wrappers)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer, by name (after :meth:`setup`)."""

    def schedulers(self) -> dict[str, Any]:
        """Learning-rate schedulers (anything with ``state_dict``/``load_state_dict``), by name, checkpointed.

        :meth:`end_epoch` steps the ``ReduceLROnPlateau`` ones with the validation score; step any other where the
        method wants it (per iteration in :meth:`training_step`, per epoch in an :meth:`end_epoch` override).
        """
        return {}

    @property
    @abstractmethod
    def separator(self) -> nn.Module:
        """The SeparationModel validated each epoch and exported: ``(n_batch, n_channels, n_samples)`` ->
        ``(n_batch, n_stems, n_channels, n_samples)``, with ``sources``, ``samplerate``, ``n_channels``."""

    @abstractmethod
    def training_step(self, batch: Any, step: StepContext) -> StepLogs:
        """One batch (already on the device): forward, backward and optimizer steps; returns scalar logs.

        Name the main training loss ``"loss"``: it is logged as ``train_loss`` and, when there are no validation
        tracks, its negative is the score early stopping watches.
        """

    def train_dataset(self, data_dir: Path) -> Dataset:
        """The training data of ``shotoku train`` from a corpus folder; what :meth:`training_step` gets, batched.

        Default: paired segments of the MUSDB-layout ``train`` split, ``(mixture (n_channels, n_samples), stems
        (n_stems, n_channels, n_samples))`` in the separator's source order. Unpaired methods override this.
        """
        from engine.data.musdb import MusdbDataset

        settings = self.config.train
        return MusdbDataset(data_dir, "train", sources=tuple(self.separator.sources),
                            segment_seconds=settings.segment_seconds, samples_per_epoch=settings.samples_per_epoch,
                            augment=settings.augment, seed=settings.seed)

    def valid_tracks(self, data_dir: Path) -> list[ValidTrack]:
        """The validation excerpts of ``shotoku train``: ``(name, mixture (n_channels, n_samples), stems (n_stems,
        n_channels, n_samples))``; default: the first ``valid_tracks`` tracks of the ``valid`` split, cut to
        ``valid_seconds``, stems in the separator's source order."""
        settings = self.config.train
        return load_valid_tracks(data_dir, list(self.separator.sources), settings.valid_tracks, settings.valid_seconds)

    def end_epoch(self, epoch: int, score: float) -> None:
        """After validation: step the plateau schedulers with ``score`` (higher is better)."""
        for scheduler in self.schedulers().values():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)

    def state(self) -> dict[str, Any]:
        """Extra JSON-serialisable state to checkpoint (counters, running statistics); default none."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook, nothing to restore by default
        """Restore what :meth:`state` returned."""

    def train(self, mode: bool = True) -> None:
        """Training (or evaluation) mode for every network."""
        for module in self.modules().values():
            module.train(mode)

    def learning_rates(self) -> dict[str, float]:
        """The first parameter group's learning rate of each optimizer (logged per epoch)."""
        return {name: float(opt.param_groups[0]["lr"]) for name, opt in self.optimizers().items()}


class OneModelObjective(Objective):
    """An objective that trains one network, ``self.model`` (also the exported separator), with one optimizer,
    ``self._optimizer`` (set in :meth:`setup`): the checkpoint names both ``"model"``."""

    model: nn.Module
    _optimizer: torch.optim.Optimizer | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        assert self._optimizer is not None, "setup() first"
        return {"model": self._optimizer}

    @property
    def separator(self) -> nn.Module:
        return self.model

    def optimise(self, loss: Tensor, step: StepContext) -> None:
        """One optimizer step on ``loss``: zero the gradients, back-propagate (scaled), step."""
        assert self._optimizer is not None, "setup() first"
        self._optimizer.zero_grad(set_to_none=True)
        step.backward(loss)
        step.step(self._optimizer)


def build_for(config: TrainConfig, objective: str, architecture: str, needs: str) -> nn.Module:
    """The config's model, checked to be one this objective trains: its estimator must have the method ``needs``
    (e.g. ``"generator"``); otherwise a DatasetError naming ``objective`` and the ``architecture`` it trains."""
    from engine.errors import DatasetError
    from engine.models.catalogue import build_model

    model = build_model(config.architecture, config.model)
    if not hasattr(getattr(model, "estimator", None), needs):
        raise DatasetError(None, f"the {objective} objective trains a {architecture!r} model, not {config.architecture!r}")
    return model


def initialise_from(model: nn.Module, config: TrainConfig, run_dir: Path) -> None:
    """Load the best weights of the finished run ``run_dir`` (same architecture and arguments as ``config``) into
    ``model``: an objective's ``init_from`` warm start. DatasetError naming the run when it does not fit."""
    from engine.errors import DatasetError
    from engine.train.export import load_run

    source_config, source = load_run(run_dir)
    if source_config.architecture != config.architecture:
        raise DatasetError(run_dir, f"init_from is a {source_config.architecture!r} run, this one trains "
                                    f"{config.architecture!r}")
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as err:
        raise DatasetError(run_dir, f"init_from weights do not fit this config: {str(err).splitlines()[0]}") \
            from None
