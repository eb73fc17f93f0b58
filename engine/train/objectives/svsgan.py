"""The SVSGAN objective (papers/003): stage 1, the generator alone on the generalised Kullback-Leibler divergence;
stage 2, the conditional GAN.

- **Stage 1** (eq. 1-2): ``D(X || Y) = sum_ij x_ij (log(x_ij + eps) - log(y_ij + eps)) - x_ij + y_ij`` between the
  true vocal magnitude ``X`` and the generator's ``Y = G(z)``, summed over frequency bins and averaged over the
  batch and the frames ("averaged over batch size and the number of time steps"; each channel of a stereo example
  counts as one monaural example).
- **Stage 2** (eq. 3): ``min_G max_D E[log D(s_c, z)] + E[log(1 - D(G(z), z))]``, per frame: the discriminator
  (:class:`~engine.models.svsgan.SvsganDiscriminator`) scores (vocal spectrum, mixture spectrum) pairs, binary
  cross-entropy on logits; the generator minimises the non-saturating form ``-log D(G(z), z)`` (Goodfellow et
  al.'s advice for the same fixed point; ``objective_args.generator_loss: "minimax"`` uses ``log(1 - D)`` as
  written). ``gkl_weight`` (default 0, as the report) can keep the stage-1 loss in stage 2.

Stages: epochs ``1 .. pretrain_epochs`` are stage 1, later ones stage 2 (``pretrain_epochs`` >= ``epochs``: a
purely supervised run, the report's "Encoder" and "RNN" rows). ``init_from``: a finished run folder whose
``best.safetensors`` initialises the generator before epoch 1 (the report's protocol: the supervised generator,
then adversarial training; with ``pretrain_epochs`` 0 the whole run is stage 2, so its best epoch is a GAN epoch).

Data: the default paired segments (``train`` split) with the vocals as the only target; the accompaniment is the
mixture minus the vocals. Optimisers: Adam for both players (``lr``, ``betas`` from ``objective_args``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.errors import DatasetError
from engine.train.config import TrainConfig
from engine.train.objectives import register_objective
from engine.train.objectives.base import Objective, StepContext, StepLogs, build_for, initialise_from
from engine.train.runtime import Runtime
from engine.train.validation import ValidTrack

GKL_EPS = 1e-8


def generalised_kl(target: Tensor, estimate: Tensor, eps: float = GKL_EPS) -> Tensor:
    """Eq. 1, summed over bins and averaged over everything else: ``target``, ``estimate`` ``(..., n_bins,
    n_frames)`` non-negative -> a scalar."""
    divergence = target * (torch.log(target + eps) - torch.log(estimate + eps)) - target + estimate
    return divergence.sum(dim=-2).mean()


@register_objective("svsgan")
class SvsganObjective(Objective):
    """Stage 1 (GKL) then stage 2 (conditional GAN) for an ``svsgan-fc`` or ``svsgan-rnn`` generator.

    ``objective_args``: ``pretrain_epochs`` (default 10), ``init_from`` (a run folder, default none),
    ``discriminator`` (``hidden`` 512, ``n_layers`` 3), ``d_lr``, ``g_lr`` (default the run's ``lr``), ``betas``
    (default [0.5, 0.999]), ``generator_loss`` (``"non_saturating"`` or ``"minimax"``), ``gkl_weight`` (stage 2,
    default 0), ``d_steps`` (discriminator updates per generator update, default 1).
    """

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        from engine.models.svsgan import SvsganDiscriminator

        args = config.objective_args
        self.model = build_for(config, "svsgan", "svsgan-fc or svsgan-rnn", needs="vocal_magnitude")
        self.generator = self.model.estimator
        disc = dict(args.get("discriminator", {}))
        disc.setdefault("max_bin", self.generator.max_bin)
        self.discriminator = SvsganDiscriminator(self.generator.n_bins, **disc)
        self.pretrain_epochs = int(args.get("pretrain_epochs", 10))
        self.generator_loss = str(args.get("generator_loss", "non_saturating"))
        if self.generator_loss not in ("non_saturating", "minimax"):
            raise DatasetError(None, f"objective_args.generator_loss must be 'non_saturating' or 'minimax', not "
                                     f"{self.generator_loss!r}")
        self.gkl_weight = float(args.get("gkl_weight", 0.0))
        self.d_steps = max(1, int(args.get("d_steps", 1)))
        if args.get("init_from"):
            initialise_from(self.model, config, Path(args["init_from"]))
        self.g_opt: torch.optim.Optimizer | None = None
        self.d_opt: torch.optim.Optimizer | None = None

    def setup(self, runtime: Runtime) -> None:
        args, settings = self.config.objective_args, self.config.train
        self.model.to(runtime.device)
        self.discriminator.to(runtime.device)
        self.g, self.d = runtime.wrap(self.generator), runtime.wrap(self.discriminator)
        betas = tuple(args.get("betas", (0.5, 0.999)))
        self.g_opt = torch.optim.Adam(self.generator.parameters(), float(args.get("g_lr", settings.lr)), betas=betas)
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), float(args.get("d_lr", settings.lr)),
                                      betas=betas)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.model, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self.g_opt is None or self.d_opt is None:
            return {}
        return {"generator": self.g_opt, "discriminator": self.d_opt}

    @property
    def separator(self) -> nn.Module:
        return self.model

    def train_dataset(self, data_dir: Path) -> Dataset:
        from engine.data.musdb import MusdbDataset

        settings = self.config.train
        return MusdbDataset(data_dir, "train", sources=("vocals",), segment_seconds=settings.segment_seconds,
                            samples_per_epoch=settings.samples_per_epoch, augment=settings.augment,
                            seed=settings.seed)

    def valid_tracks(self, data_dir: Path) -> list[ValidTrack]:
        """The default excerpts with the stems as the separator names them: vocals and mixture minus vocals."""
        from engine.train.validation import load_valid_tracks

        settings = self.config.train
        tracks = load_valid_tracks(data_dir, ["vocals"], settings.valid_tracks, settings.valid_seconds)
        sources = list(self.model.sources)
        out = []
        for name, mixture, stems in tracks:
            by_name = {"vocals": stems[0], "accompaniment": mixture - stems[0]}
            out.append((name, mixture, np.stack([by_name[s] for s in sources]).astype(np.float32)))
        return out

    def _vocals(self, mix_mag: Tensor) -> Tensor:
        """G(z) through the (possibly DDP-wrapped) generator's forward: ``(b, c, f, t)`` -> the same."""
        return self.g(mix_mag)[:, self.generator.vocals_index]

    def stage(self, epoch: int) -> int:
        """1 (supervised GKL) for the first ``pretrain_epochs`` epochs, then 2 (conditional GAN)."""
        return 1 if epoch <= self.pretrain_epochs else 2

    def training_step(self, batch: tuple[Tensor, Tensor], step: StepContext) -> StepLogs:
        """``batch``: mixture ``(n_batch, n_channels, n_samples)``, vocals ``(n_batch, 1, n_channels, n_samples)``."""
        assert self.g_opt is not None and self.d_opt is not None, "setup() first"
        mixture, stems = batch
        with torch.no_grad():
            mix_mag = self.model.magnitude(mixture)  # (b, c, f, t)
            target = self.model.magnitude(stems[:, 0])
        if self.stage(step.epoch) == 1:
            with step.autocast():
                loss = generalised_kl(target, self._vocals(mix_mag).float())
            self.g_opt.zero_grad(set_to_none=True)
            step.backward(loss)
            step.step(self.g_opt)
            return {"loss": loss.detach(), "gkl": loss.detach()}
        logs: dict[str, Any] = {}
        n = len(mix_mag)
        for _ in range(self.d_steps):
            with step.autocast():
                with torch.no_grad():
                    fake = self._vocals(mix_mag)
                # one discriminator pass over real and fake pairs (one forward per backward under DDP)
                logits_d = self.d(torch.cat([target, fake.to(target.dtype)]), torch.cat([mix_mag, mix_mag]))
                real_logits, fake_logits = logits_d[:n], logits_d[n:]
                d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                          + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            self.d_opt.zero_grad(set_to_none=True)
            step.backward(d_loss)
            step.step(self.d_opt)
        with step.autocast():
            estimate = self._vocals(mix_mag)
            logits = self.d(estimate, mix_mag)
            if self.generator_loss == "non_saturating":
                g_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            else:
                g_adv = -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))  # log(1 - D)
            gkl = generalised_kl(target, estimate.float())
            g_loss = g_adv + self.gkl_weight * gkl if self.gkl_weight else g_adv
        self.g_opt.zero_grad(set_to_none=True)
        self.d_opt.zero_grad(set_to_none=True)
        step.backward(g_loss)
        step.step(self.g_opt)
        logs.update(loss=g_loss.detach(), d_loss=d_loss.detach(), g_adv=g_adv.detach(), gkl=gkl.detach(),
                    d_real=torch.sigmoid(real_logits).mean().detach(), d_fake=torch.sigmoid(fake_logits).mean().detach())
        return logs
