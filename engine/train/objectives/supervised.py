"""The supervised objective: one separation model, paired stems, AdamW, LR on plateau.

The loss domain comes from the config's ``train.loss`` (``"auto"``: the estimator's own domain for a
MaskSeparator, the waveform otherwise; see :func:`engine.train.losses.separation_loss`). The network trained is
the estimator for the spectral losses (it sees ``model.magnitude(mix)`` or ``model.spectrogram(mix)``) and the
whole model for the waveform loss; DDP wraps that network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.train.config import TrainConfig
from engine.train.losses import loss_domain, separation_loss
from engine.train.objectives import register_objective
from engine.train.objectives.base import Objective, StepContext, StepLogs
from engine.train.runtime import Runtime


@register_objective("supervised")
class SupervisedObjective(Objective):
    """Minimise the separation loss of ``config.architecture`` on ``(mixture, stems)`` batches.

    Args:
        config: architecture, its arguments and the settings (``lr``, ``weight_decay``, ``grad_clip``, ``loss``,
            ``lr_decay_patience``, ``lr_decay_gamma``).
        model: an already-built model to train instead of building ``config.architecture``.
    """

    def __init__(self, config: TrainConfig, model: nn.Module | None = None) -> None:
        super().__init__(config)
        if model is None:
            from engine.models.catalogue import build_model

            model = build_model(config.architecture, config.model)
        self.model = model
        self.domain = loss_domain(model, config.train.loss)
        self.network: nn.Module = model
        self.optimizer: torch.optim.Optimizer | None = None
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None

    def setup(self, runtime: Runtime) -> None:
        settings = self.config.train
        self.model.to(runtime.device)
        trained = self.model if self.domain == "waveform" else self.model.estimator
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

    def training_step(self, batch: tuple[Tensor, Tensor], step: StepContext) -> StepLogs:
        """``batch``: mixture ``(n_batch, n_channels, n_samples)``, stems ``(n_batch, n_stems, n_channels,
        n_samples)``."""
        assert self.optimizer is not None, "setup() first"
        mixture, stems = batch
        with step.autocast():
            loss = separation_loss(self.model, mixture, stems, self.domain, network=self.network)
        self.optimizer.zero_grad(set_to_none=True)
        step.backward(loss)
        step.step(self.optimizer)
        return {"loss": loss.detach()}
