"""The UDT objective (Venkataramani, Tzinis & Smaragdis, papers/000 section 3.2) and its supervised twin.

Data (:meth:`UDTObjective.train_dataset`): monaural clips ``m`` of the mixture pool and ``s`` of the clean-source
pool, **unpaired** (``engine.data.unpaired_pairs.UnpairedClips``: a mixture never comes with its own source). On
compressed magnitudes ``x = |STFT|^a`` ``(n, n_bins, n_frames)``, with ``z_m = E_M(m) + eps``, ``z_s = E_S(s) +
eps`` (UNIT's reparameterisation, ``eps ~ N(0, I)``):

- reconstruction (3.2.1): ``REC_M = MSE(D_M(z_m), m)``, ``REC_S = MSE(D_S(z_s), s)``;
- straight consistency (3.2.2): ``CYC_M = MSE(E_M(D_M(z_m)), z_m)``, ``CYC_S = MSE(E_S(D_S(z_s)), z_s)``;
- cross consistency: ``CROSS_M = MSE(E_S(D_S(z_m)), z_m)`` (a mixture's latent, decoded as a clean source and
  re-encoded by the source encoder, comes back), ``CROSS_S = MSE(E_M(D_M(z_s)), z_s)``;
- the KL / "sparsity" term: ``KL = mean(E_M(m)^2) / 2 + mean(E_S(s)^2) / 2`` (KL to N(0, I) of a unit-variance
  Gaussian posterior, per element).

``L = sum_k w_k term_k``. **Readings**: the paper gives no weights; every term has weight 1 except the KL, at
UNIT's ratio of KL to reconstruction weight (0.01 / 10 = 1e-3); every MSE and the KL are means over elements; the
consistency targets ``z`` are not detached (the MSE between "the left and right sides"); the target is the
decoded sample ``z`` ("for a point in the latent space, a decoding followed by an encoding maps to vicinity of the
same point"; ``consistency_target: "mean"`` compares with the posterior mean instead, a knob for the lead). Adam (the paper names no
optimiser; UNIT's Adam, betas (0.5, 0.999)), one optimiser over both VAEs.

**The supervised twin** (section 4.1, "a denoising VAE having the same encoder, decoder architecture"):
``objective_args.supervised = true`` trains the same network's separation path on paired clips of the ``train``
split: ``MSE(D_S(E_M(m) + eps), s) + w_KL mean(E_M(m)^2) / 2``.

``objective_args``: ``weights`` (per term), ``without`` (terms to drop), ``mixtures`` / ``sources`` (pool
folders relative to the corpus, default ``unpaired/mixtures`` and ``unpaired/vocals`` for vocals,
``unpaired/instrumental`` otherwise), ``clip_seconds`` (paper, as we read it: 2.0), ``consistency_target``, ``supervised``,
``validate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.errors import DatasetError
from engine.train.config import TrainConfig
from engine.train.objectives import register_objective
from engine.train.objectives.base import OneModelObjective, StepContext, StepLogs, build_for
from engine.train.runtime import Runtime
from engine.train.validation import ValidTrack, load_valid_tracks

TERMS = ("REC_M", "REC_S", "CYC_M", "CYC_S", "CROSS_M", "CROSS_S", "KL")
DEFAULT_WEIGHTS = {**{k: 1.0 for k in TERMS}, "KL": 1e-3}
STEMS = ("vocals", "drums", "bass", "other")


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error over every element (float32)."""
    return (x.float() - y.float()).square().mean()


def latent_kl(mean: Tensor) -> Tensor:
    """``KL(N(mean, I) || N(0, I))`` per element: ``mean(mean^2) / 2``."""
    return 0.5 * mean.float().square().mean()


def udt_terms(
    net: nn.Module, m: Tensor, s: Tensor, active: set[str] | None = None, target: str = "sample"
) -> dict[str, Tensor]:
    """Every loss term of one batch (module docstring), for compressed mixtures ``m`` and sources ``s`` ``(n,
    n_bins, n_frames)``; ``net`` is a :class:`~engine.models.udt.UDTNet`. Noise from torch's global generator.

    ``target``: what a re-encoded latent is compared with, ``"sample"`` (the ``z`` that was decoded; default) or
    ``"mean"`` (the posterior mean ``E(x)`` it was drawn around)."""
    if target not in ("sample", "mean"):
        raise ValueError(f"consistency_target must be 'sample' or 'mean', not {target!r}")
    active = set(TERMS) if active is None else active
    mu_m, mu_s = net.encode(m, "m"), net.encode(s, "s")
    z_m = mu_m + torch.randn_like(mu_m)
    z_s = mu_s + torch.randn_like(mu_s)
    t_m, t_s = (z_m, z_s) if target == "sample" else (mu_m, mu_s)
    terms: dict[str, Tensor] = {}
    m_rec, s_rec = net.decode(z_m, "m"), net.decode(z_s, "s")
    terms["REC_M"], terms["REC_S"] = mse(m_rec, m), mse(s_rec, s)
    if "CYC_M" in active:
        terms["CYC_M"] = mse(net.encode(m_rec, "m"), t_m)
    if "CYC_S" in active:
        terms["CYC_S"] = mse(net.encode(s_rec, "s"), t_s)
    if "CROSS_M" in active:
        terms["CROSS_M"] = mse(net.encode(net.decode(z_m, "s"), "s"), t_m)
    if "CROSS_S" in active:
        terms["CROSS_S"] = mse(net.encode(net.decode(z_s, "m"), "m"), t_s)
    terms["KL"] = latent_kl(mu_m) + latent_kl(mu_s)
    return {k: v for k, v in terms.items() if k in active}


def twin_terms(net: nn.Module, m: Tensor, s: Tensor) -> dict[str, Tensor]:
    """The supervised denoising VAE: ``{"REC": MSE(D_S(E_M(m) + eps), s), "KL": mean(E_M(m)^2) / 2}``."""
    mu = net.encode(m, "m")
    return {"REC": mse(net.decode(mu + torch.randn_like(mu), "s"), s), "KL": latent_kl(mu)}


def weights_of(args: dict[str, Any]) -> dict[str, float]:
    """The weight of every term that stays on, from ``objective_args`` ``weights`` and ``without``."""
    weights = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in args.get("weights", {}).items()}}
    without = set(args.get("without", []))
    unknown = (set(weights) | without) - set(TERMS)
    if unknown:
        raise DatasetError(None, f"unknown loss term(s) {sorted(unknown)}; known: {', '.join(TERMS)}")
    return {k: w for k, w in weights.items() if w != 0 and k not in without}


class _Terms(nn.Module):
    """One forward for every use of the network in a step (so DDP sees one forward per backward)."""

    def __init__(self, net: nn.Module, active: set[str], supervised: bool, target: str = "sample") -> None:
        super().__init__()
        self.net, self.active, self.supervised, self.target = net, active, supervised, target

    def forward(self, m: Tensor, s: Tensor) -> dict[str, Tensor]:
        if self.supervised:
            return twin_terms(self.net, m, s)
        return udt_terms(self.net, m, s, self.active, self.target)


class TargetClips(Dataset):
    """Paired monaural clips of a split for the supervised twin: ``(mixture (1, n), target (1, n))`` at 44.1 kHz
    (one channel drawn at random; remixed across songs with ``augment``). Item ``i`` of epoch ``e`` is a pure
    function of ``(seed, e, i)``."""

    def __init__(self, root: Path, target: str, n_samples: int, samples_per_epoch: int, augment: bool,
                 seed: int, split: str = "train") -> None:
        from engine.data.musdb import ChunkSampler

        if target not in STEMS:
            raise DatasetError(root, f"the supervised twin needs a standard target stem, not {target!r}")
        self.sampler = ChunkSampler(root, split, STEMS, n_samples / 44100, augment)
        self.index = STEMS.index(target)
        self.samples_per_epoch, self.seed, self.epoch = int(samples_per_epoch), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        mixture, stems, _ = self.sampler.sample(rng)
        channel = int(rng.integers(0, mixture.shape[0]))
        pick = np.ascontiguousarray(np.stack([stems.sum(axis=0)[channel], stems[self.index, channel]]))
        both = torch.from_numpy(pick.astype(np.float32))[:, None]
        return both[0], both[1]


@register_objective("udt")
class UDTObjective(OneModelObjective):
    """Both VAEs of a ``udt`` model, trained on unpaired pools (or, ``supervised``, its denoising twin)."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        args = config.objective_args
        self.model = build_for(config, "udt", "udt", "encode")
        self.net = self.model.estimator
        self.supervised = bool(args.get("supervised", False))
        self.weights = {"REC": 1.0, "KL": weights_of(args).get("KL", 0.0)} if self.supervised else weights_of(args)
        self.clip_samples = int(float(args.get("clip_seconds", 2.0)) * self.model.samplerate)
        self.terms = _Terms(self.net, set(self.weights), self.supervised, str(args.get("consistency_target",
                                                                                         "sample")))

    def setup(self, runtime: Runtime) -> None:
        self.model.to(runtime.device)
        # the twin never runs E_S and D_M; an ablation may leave a path unused
        unused = self.supervised or set(self.weights) != set(TERMS)
        self.terms_net = runtime.wrap(self.terms, find_unused_parameters=unused)
        self._optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.train.lr, betas=(0.5, 0.999),
                                           weight_decay=self.config.train.weight_decay)

    # -- data ------------------------------------------------------------------------------------------------------
    def pools(self, data_dir: Path) -> tuple[Path, Path]:
        """The mixture pool and the clean-source pool (``<target>.wav`` files below it)."""
        args = self.config.objective_args
        default = "unpaired/vocals" if self.net.target == "vocals" else "unpaired/instrumental"
        return Path(data_dir) / args.get("mixtures", "unpaired/mixtures"), Path(data_dir) / args.get("sources",
                                                                                                        default)

    def train_dataset(self, data_dir: Path) -> Dataset:
        settings = self.config.train
        if self.supervised:
            return TargetClips(Path(data_dir), self.net.target, self.clip_samples, settings.samples_per_epoch,
                               settings.augment, settings.seed)
        from engine.data.unpaired_pairs import UnpairedClips

        mixtures, sources = self.pools(data_dir)
        return UnpairedClips(mixtures, sources, self.net.target, self.clip_samples, self.model.samplerate,
                             settings.samples_per_epoch, settings.seed)

    def valid_tracks(self, data_dir: Path) -> list[ValidTrack]:
        """Excerpts of the paired ``valid`` split: the target and the sum of the other stems (picks the best
        epoch only; never in a gradient); none with ``objective_args.validate`` false."""
        if not self.config.objective_args.get("validate", True):
            return []
        settings = self.config.train
        tracks = load_valid_tracks(data_dir, list(STEMS), settings.valid_tracks, settings.valid_seconds)
        index = STEMS.index(self.net.target)
        out = []
        for name, mixture, stems in tracks:
            target, rest = stems[index], stems.sum(axis=0) - stems[index]
            out.append((name, mixture, np.stack([target, rest] if self.net.target_index == 0 else [rest, target])))
        return out

    # -- the step --------------------------------------------------------------------------------------------------
    def front_end(self, audio: Tensor) -> Tensor:
        """Clips ``(n, 1, n_samples)`` -> compressed magnitudes ``(n, n_bins, n_frames)``."""
        return self.net.compress(self.model.magnitude(audio)[:, 0])

    def training_step(self, batch: tuple[Tensor, Tensor], step: StepContext) -> StepLogs:
        """``batch``: mixture clips and source clips ``(n_batch, 1, n_samples)`` (unpaired, or paired for the
        twin)."""
        m, s = self.front_end(batch[0]), self.front_end(batch[1])
        with step.autocast():
            terms = self.terms_net(m, s)
            loss = sum(self.weights[k] * terms[k] for k in terms)
        self.optimise(loss, step)  # type: ignore[arg-type]
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}  # type: ignore[union-attr]
