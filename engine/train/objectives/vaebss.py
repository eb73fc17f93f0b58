"""The blind VAE's objective (Neri, Depalle & Badeau, papers/004 slide 8) and its AE baseline: mixtures only.

Per example, with ``x`` a normalised mixture patch ``(256, 128)`` in [0, 1] (``engine.models.vaebss``), the
encoder's ``mu, log sigma^2`` ``(K, D_z)``, ``Z ~ q(Z | x)`` by reparameterisation and ``x_hat = sum_k D(z_k)``:

    L = -ELBO = -<ln p(x | Z)>_q + KL(q(Z | x) || N(0, I)),   -ln p(x | Z) = |x - x_hat|^2 / (2 sigma_x^2) + const

summed over the ``D_x`` values and the ``K D_z`` latents, averaged over the batch. The slides say "reconstruction
error between x and x_hat" and no more: **reading**, a Gaussian likelihood of fixed std ``sigma_x``
(``objective_args.sigma``, default 0.1: about the error of a good fit on [0, 1] data; with 1 the KL would win
and every latent collapse to the prior). ``variational: false`` is the AE row: ``z = mu``, no KL, the same
reconstruction term. No validation by default (blind sources have no order to score against; early stopping
watches the training loss); ``bench/vae.py`` scores the runs with the best permutation.

``objective_args``: ``variational`` (default true), ``sigma``, ``kl_warmup_steps`` (the KL's weight grows
linearly from 0 to 1 over this many steps, a common remedy for posterior collapse the slides do not mention;
default 0: the plain ELBO), ``data`` (``"instruments"``: two-instrument GM
mixtures, ``instruments`` names them (default bassoon, violin), ``pool_size`` source clips per instrument;
``"songs"``: clips of ``mixtures`` (default ``unpaired/mixtures`` of the corpus)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.errors import DatasetError
from engine.train.config import TrainConfig
from engine.train.losses import gaussian_kl, reparameterise
from engine.train.objectives import register_objective
from engine.train.objectives.base import OneModelObjective, StepContext, StepLogs, build_for
from engine.train.runtime import Runtime
from engine.train.validation import ValidTrack


def normalised_patches(model: nn.Module, audio: Tensor) -> tuple[Tensor, Tensor]:
    """Clips ``(n, 1, n_samples)`` at the model's rate -> patches ``(n, 256, n_frames)`` divided by their maximum,
    and the maxima ``(n, 1, 1)``."""
    mag = model.magnitude(audio)[:, 0, : model.estimator.n_bins]
    scale = mag.flatten(1).amax(dim=1).clamp_min(1e-8)[:, None, None]
    return mag / scale, scale


def elbo_terms(net: nn.Module, x: Tensor, sigma: float, variational: bool = True) -> dict[str, Tensor]:
    """``{"REC": |x - x_hat|^2 / (2 sigma^2), "KL": KL(q || p)}`` per example (sums), averaged over the batch;
    ``x`` ``(n, n_bins, n_frames)``; the AE (``variational`` false) decodes the means and has no KL."""
    mean, log_variance = net.encode(x)
    z = reparameterise(mean, log_variance) if variational else mean
    x_hat = net.decode(z).sum(dim=1)
    rec = (x.float() - x_hat.float()).square().flatten(1).sum(dim=1).mean() / (2 * sigma**2)
    terms = {"REC": rec}
    if variational:
        terms["KL"] = gaussian_kl(mean, log_variance)
    return terms


class _Terms(nn.Module):
    """The step's forward as one module (DDP)."""

    def __init__(self, net: nn.Module, sigma: float, variational: bool) -> None:
        super().__init__()
        self.net, self.sigma, self.variational = net, sigma, variational

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return elbo_terms(self.net, x, self.sigma, self.variational)


@register_objective("vaebss")
class VAEBSSObjective(OneModelObjective):
    """The ELBO (or the AE's reconstruction) of a ``vaebss`` model on mixtures alone."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        args = config.objective_args
        self.model = build_for(config, self.name, "vaebss", "decode")
        self.net = self.model.estimator
        self.variational = bool(args.get("variational", True))
        self.sigma = float(args.get("sigma", 0.1))
        self.kl_warmup_steps = int(args.get("kl_warmup_steps", 0))
        self.terms = self.build_terms()

    def build_terms(self) -> nn.Module:
        return _Terms(self.net, self.sigma, self.variational)

    def setup(self, runtime: Runtime) -> None:
        self.model.to(runtime.device)
        self.terms_net = runtime.wrap(self.terms)
        self._optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.train.lr,
                                           weight_decay=self.config.train.weight_decay)

    def train_dataset(self, data_dir: Path) -> Dataset:
        from engine.data.gm_pairs import InstrumentMixtures, MixtureClips

        args: dict[str, Any] = self.config.objective_args
        settings = self.config.train
        kind = args.get("data", "instruments")
        if kind == "instruments":
            return InstrumentMixtures(tuple(args.get("instruments", ("bassoon", "violin"))), "train",
                                      int(args.get("pool_size", 500)), settings.samples_per_epoch, settings.seed,
                                      rate=self.model.samplerate)
        if kind == "songs":
            return MixtureClips(Path(data_dir) / args.get("mixtures", "unpaired/mixtures"),
                                settings.samples_per_epoch, settings.seed, rate=self.model.samplerate)
        raise DatasetError(None, f"objective_args.data must be 'instruments' or 'songs', not {kind!r}")

    def valid_tracks(self, data_dir: Path) -> list[ValidTrack]:
        return []

    def training_step(self, batch: tuple[Tensor, ...], step: StepContext) -> StepLogs:
        """``batch[0]``: mixture clips ``(n_batch, 1, n_samples)`` (any further items, e.g. sources, unused)."""
        x, _ = normalised_patches(self.model, batch[0])
        kl_weight = min(1.0, (step.global_step + 1) / self.kl_warmup_steps) if self.kl_warmup_steps > 0 else 1.0
        with step.autocast():
            terms = self.terms_net(x)
            loss = terms["REC"] + kl_weight * terms["KL"] if "KL" in terms else terms["REC"]
        self.optimise(loss, step)  # type: ignore[arg-type]
        logs = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}  # type: ignore[union-attr]
        return {**logs, "kl_weight": kl_weight} if self.kl_warmup_steps > 0 else logs
