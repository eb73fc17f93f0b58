"""Neural Egg Separation (Halperin, Ephrat & Hoshen, "Neural separation of observed and unobserved
distributions", ICML 2019), the iterative baseline of Table 1, on the semi-supervised network.

NES alternates (i) estimating the unobserved source of each mixture, (ii) synthesising mixtures of those estimates
with observed samples, (iii) training a mapping from mixture to observed source on the synthetic ones. Here the
mapping is the ``semisup`` network ``g`` (same front end and data as the method) trained with ``|g(a_bar) - c|``
(L1 in the compressed domain), and an iteration is ``steps_per_iteration`` training steps: the estimate of
iteration 0 is half of the mixture (the initialisation of the semi-supervised paper's comparison), the estimate of
iteration ``k > 0`` is ``a - g_{k-1}(a)`` from a frozen copy of ``g`` taken at the iteration's start (``previous``,
checkpointed, so a resumed run continues the same iteration). The cross is summed in the complex STFT domain as
the method's (``b_bar`` with the mixture's phase). NES-FT (initialised from GLOM) is not implemented.

``objective_args``: ``steps_per_iteration`` (default 2000), ``pool`` / ``mixtures`` / ``instrumentals`` /
``validate`` as the semisup objective's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from engine.models.semisup import compress
from engine.train.config import TrainConfig
from engine.train.objectives import register_objective
from engine.train.objectives.base import StepContext, StepLogs
from engine.train.objectives.semisup import SemisupObjective, front_end, l1, make_cross
from engine.train.runtime import Runtime


@register_objective("nes")
class NesObjective(SemisupObjective):
    """NES on the ``semisup`` network; no discriminator is trained (they stay in the checkpoint, unused)."""

    def __init__(self, config: TrainConfig) -> None:
        config = copy.deepcopy(config)
        config.objective_args = {
            **config.objective_args,
            "weights": {},
            "without": ["R1", "R2", "R4", "GAN_A", "GAN_C"],
        }
        super().__init__(config)
        self.steps_per_iteration = int(config.objective_args.get("steps_per_iteration", 2000))
        self.previous = copy.deepcopy(self.model.estimator).requires_grad_(False)

    def setup(self, runtime: Runtime) -> None:
        super().setup(runtime)
        self.previous.to(runtime.device)

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "previous": self.previous}

    def iteration(self, global_step: int) -> int:
        """The NES iteration a step belongs to (0: the half-mixture initialisation)."""
        return global_step // self.steps_per_iteration

    def training_step(self, batch: tuple[Tensor, ...], step: StepContext) -> StepLogs:
        a_wave, c_wave = batch
        if step.global_step > 0 and step.global_step % self.steps_per_iteration == 0:
            self.previous.load_state_dict(self.model.estimator.state_dict())  # the next iteration's estimates
        a_spec, a = front_end(a_wave, self.model)
        c_spec, c = front_end(c_wave, self.model)
        power = self.model.estimator.power
        with torch.no_grad():
            if self.iteration(step.global_step) == 0:
                a_bar = compress((0.5 * a_spec + c_spec).abs(), power)
            else:
                self.previous.eval()
                b_bar = a - self.previous.generator(a)
                a_bar = make_cross(b_bar, a_spec, c, c_spec, power, "complex")
        with step.autocast():
            loss = l1(self.g_net(a_bar), c)
        optimizer = self._optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        step.backward(loss)
        step.step(optimizer)
        self._step_lr()
        return {"loss": loss.detach(), "nes_iteration": float(self.iteration(step.global_step))}

    def state(self) -> dict[str, Any]:
        return {"steps_per_iteration": self.steps_per_iteration}
