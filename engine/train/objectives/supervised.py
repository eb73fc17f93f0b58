"""The supervised objective: one separation model, paired stems, AdamW, LR on plateau.

The loss domain comes from the config's ``train.loss`` (``"auto"``: the estimator's own domain for a
MaskSeparator, the waveform otherwise; see :func:`engine.train.losses.separation_loss`). The network trained is
the estimator for the spectral losses (it sees ``model.magnitude(mix)`` or ``model.spectrogram(mix)``) and the
whole model for the waveform loss; DDP wraps that network.

Songs over real accompaniment (``train_realacc/``, see docs/DATA_API.md) know their vocals and the sum of the other
stems only. With ``objective_args.real_accompaniment`` (``"auto"``, the default: on when the corpus has
``train_realacc/``; ``true``; ``false``) :meth:`SupervisedObjective.train_dataset` serves the ``train`` split and
those songs together (:class:`engine.data.known.KnownStemsDataset`, batches ``(mixture, stems + accompaniment,
known)``) and the step puts the loss on what each example knows (:func:`engine.train.losses.known_stems_loss`):
the vocals against the vocals and the sum of the other stems' estimates against the accompaniment.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.errors import DatasetError
from engine.train.config import TrainConfig
from engine.train.losses import accompaniment_row, known_stems_loss, loss_domain, separation_loss
from engine.train.objectives import register_objective
from engine.train.objectives.base import Objective, StepContext, StepLogs
from engine.train.runtime import Runtime

#: The split of songs over real accompaniment beside the ordinary ``train`` split.
REAL_ACCOMPANIMENT_SPLIT = "train_realacc"


@register_objective("supervised")
class SupervisedObjective(Objective):
    """Minimise the separation loss of ``config.architecture`` on ``(mixture, stems)`` batches, or on what is known
    of ``(mixture, references, known)`` batches.

    Args:
        config: architecture, its arguments and the settings (``lr``, ``weight_decay``, ``grad_clip``, ``loss``,
            ``lr_decay_patience``, ``lr_decay_gamma``); ``objective_args.real_accompaniment``: ``"auto"``
            (default), ``true`` or ``false`` (see the module docstring).
        model: an already-built model to train instead of building ``config.architecture``.
    """

    def __init__(self, config: TrainConfig, model: nn.Module | None = None) -> None:
        super().__init__(config)
        if model is None:
            from engine.models.catalogue import build_model

            model = build_model(config.architecture, config.model)
        self.model = model
        self.domain = loss_domain(model, config.train.loss)
        #: weights over the model's stems whose sum is the accompaniment (None: the model cannot form it)
        self.accompaniment = accompaniment_row(list(model.sources))
        self.network: nn.Module = model
        self.optimizer: torch.optim.Optimizer | None = None
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None

    def setup(self, runtime: Runtime) -> None:
        settings = self.config.train
        self.model.to(runtime.device)
        whole = self.domain == "waveform" or getattr(self.model, "estimator", None) is None
        trained = self.model if whole else self.model.estimator
        self.network = runtime.wrap(trained)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=settings.lr_decay_gamma, patience=settings.lr_decay_patience
        )

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.optimizer} if self.optimizer is not None else {}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.ReduceLROnPlateau]:
        return {"plateau": self.plateau} if self.plateau is not None else {}

    @property
    def separator(self) -> nn.Module:
        return self.model

    def uses_real_accompaniment(self, data_dir: Path) -> bool:
        """Whether :meth:`train_dataset` adds the songs over real accompaniment of ``data_dir``."""
        setting = self.config.objective_args.get("real_accompaniment", "auto")
        present = (Path(data_dir) / REAL_ACCOMPANIMENT_SPLIT).is_dir()
        if setting == "auto":
            return present
        if not isinstance(setting, bool):
            raise DatasetError(None, f"objective_args.real_accompaniment must be 'auto', true or false, not "
                                     f"{setting!r}")
        if setting and not present:
            raise DatasetError(Path(data_dir) / REAL_ACCOMPANIMENT_SPLIT, "no such split folder (real_accompaniment "
                                                                          "is true)")
        return setting

    def train_dataset(self, data_dir: Path) -> Dataset:
        """The ``train`` split, plus ``train_realacc`` (known-stem batches) when :meth:`uses_real_accompaniment`."""
        if not self.uses_real_accompaniment(data_dir):
            return super().train_dataset(data_dir)
        from engine.data.known import KNOWN_SOURCES, KnownStemsDataset

        sources = list(self.model.sources)
        unknown = set(sources) - set(KNOWN_SOURCES)
        if unknown:
            raise DatasetError(data_dir, f"songs over real accompaniment have no {sorted(unknown)} stems; set "
                                         "objective_args.real_accompaniment to false")
        if self.accompaniment is not None:
            sources.append("accompaniment")
        settings = self.config.train
        return KnownStemsDataset(data_dir, ("train", REAL_ACCOMPANIMENT_SPLIT), sources=tuple(sources),
                                 segment_seconds=settings.segment_seconds, samples_per_epoch=settings.samples_per_epoch,
                                 augment=settings.augment, seed=settings.seed)

    def training_step(self, batch: tuple[Tensor, ...], step: StepContext) -> StepLogs:
        """``batch``: mixture ``(n_batch, n_channels, n_samples)`` and stems ``(n_batch, n_stems, n_channels,
        n_samples)``, or from :meth:`train_dataset` with real accompaniment: mixture, references ``(n_batch,
        n_stems [+ 1 accompaniment], n_channels, n_samples)`` and ``known`` ``(n_batch, n_references)`` bool."""
        assert self.optimizer is not None, "setup() first"
        with step.autocast():
            if len(batch) == 3:
                mixture, references, known = batch
                loss = known_stems_loss(self.model, mixture, references, known, self.domain,
                                        accompaniment=self.accompaniment, network=self.network)
            else:
                mixture, stems = batch
                loss = separation_loss(self.model, mixture, stems, self.domain, network=self.network)
        self.optimizer.zero_grad(set_to_none=True)
        step.backward(loss)
        step.step(self.optimizer)
        return {"loss": loss.detach()}
