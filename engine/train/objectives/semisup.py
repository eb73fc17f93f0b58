"""The semi-supervised objective of Michelashvili, Benaim & Wolf: synthetic crosses, R1..R4 and two LSGANs.

Data (:meth:`SemisupObjective.train_dataset`): clips ``a`` of S_A (mixtures) and ``c`` of S_C (instrumental
recordings), unpaired (``engine/data/unpaired_pairs.py``). In the compressed domain of the network
(``|STFT|^0.3``, 256 bins), per step:

- ``g(a)``, ``b_bar = a - g(a)`` (eq. 1), the cross ``a_bar = b_bar + c`` (eq. 2) remembering ``b(a_bar) = b_bar``
  and ``c(a_bar) = c``; the ``c`` of a batch row is an independent S_C clip, so the pairing is random;
- ``R1 = |g(c) - c|``, ``R2 = |g(g(a)) - g(a)|``, ``R3 = |g(a_bar) - c|``, ``R4 = |(a_bar - g(a_bar)) - b_bar|``
  (eq. 3-6), ``GAN_C`` on ``d_C(g(a))`` and ``GAN_A`` on ``d_A(a_bar)`` (eq. 7-8);
- ``L_g = R1 + R2 + R3 + R4 + 0.5 (GAN_C + GAN_A)``. The paper prints ``L_R1 + L_R1 + ...``: its text lists R2 (the
  idempotence loss) among "the following losses used to train g" and its Table 3 ablates R2, so the second R1 is
  read as R2;
- discriminators (eq. 9-10): ``L_dC = l(d_C(g(a)), 0) + l(d_C(c), 1)``, ``L_dA = l(d_A(a_bar), 0) + l(d_A(a), 1)``,
  ``l(x, y) = (x - y)^2``, on detached generator outputs.

Readings where the paper is silent or ambiguous (also in ``configs/semisup.json`` notes):

- **Where the cross is summed.** Summed in the compressed domain, ``a_bar - g(a_bar) - b_bar = c - g(a_bar)``
  exactly, so R4 would be R3 again, and Table 3 (w/o R3 and w/o R4 differ by 2 dB) says they are not. A mix is a
  sum of signals: we sum in the complex STFT domain, ``b_bar`` with the mixture's phase (as the paper's
  reconstruction) plus ``c``'s own spectrogram, then compress (``cross_domain: "complex"``, default;
  ``"compressed"`` gives the literal sum).
- **g is not detached in the cross**: "g appears in L_GAN_A and more than once in R3, R4, since it takes part in
  the formation of the set", so gradients flow through ``b_bar`` (targets included).
- **The generator's GAN terms.** Eq. 7-8 print ``-l(d(x), 0) = -d(x)^2``, unbounded below; the text says "the
  Least Squares loss, following [17]", whose generator loss is ``(d(x) - 1)^2``. We use [17]'s (``gan_form:
  "lsgan"``, default; ``"negated"`` is the printed form).
- **Norms.** ``|.|_1`` is the mean absolute error over bins and frames and ``l`` the mean over the patch scores,
  summed over the discriminator's scales (the MUNIT code the architecture comes from); sums over the sets are
  means over the batch (a constant factor at batch 1).
- **Schedule.** Each step updates both discriminators on the current fakes, then the generator against the updated
  discriminators (one forward of g per step). Adam lr 1e-4, betas (0.5, 0.999), every learning rate halved every
  ``lr_halve_every`` iterations (paper: 100k).

- **Discriminators first (ours, off by default).** At our CPU budget (a few thousand steps; the paper halves its
  rate after 100k) every R term is minimised at once by the identity ``g(a) = a`` (then ``b_bar = 0``, ``a_bar = c``)
  and the discriminators, at chance after 800 steps on the real pools (``d_C`` 1.35-1.48 summed over 3 scales, 0.5
  per scale is chance), give no pull away from it: ``runs/semisup-real`` collapsed to silent vocals by epoch 2.
  ``d_pretrain_steps: N`` first trains ``d_C`` to tell real ``c`` from a mixture ``a`` and ``d_A`` real ``a`` from an
  instrumental ``c`` (what ``g(a)`` and ``a_bar`` are at the identity) for N steps, the generator untouched, so the
  GAN terms know what singing looks like before the R terms settle.

``objective_args``: ``weights`` (per term, default above), ``without`` (terms to drop: ``R1``..``R4``, ``GAN_A``,
``GAN_C``; the Table 3 rows), ``pool`` (``"synthetic"``: ``unpaired/mixtures`` and ``unpaired/*/instrumental.wav``
of the corpus; ``"real"``: ``unpaired/real_mixtures`` and ``$SHOTOKU_REAL/pools/unpaired_c``; ``"shared"``: the
mixtures and, at other times, the accompaniments of the same songs over real accompaniment,
:class:`engine.data.unpaired_pairs.SharedPieceClips` of ``shared_split`` (default ``train_realacc``) in blocks of
``block_seconds`` (default 4)), ``mixtures`` /
``instrumentals`` (explicit pool folders, relative to the corpus unless absolute), ``cross_domain``, ``gan_form``,
``lr_halve_every``, ``d_pretrain_steps``, ``d_lr`` (the discriminators' Adam rate, default the generator's),
``init_from`` (a finished ``semisup`` run folder whose best weights start ``g``), ``discriminator`` (``channels``,
``n_scales``), ``supervised`` (true: the supervised twin, see :meth:`SemisupObjective.supervised_step`),
``validate`` (false: no validation) and ``valid_split`` (default the paired ``valid`` split; ``valid_realacc``:
songs over real accompaniment), used only to pick ``best.safetensors``, never in a gradient.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.errors import DatasetError
from engine.models.semisup import CLIP_SAMPLES, POWER, MultiScaleDiscriminator, compress
from engine.train.config import TrainConfig
from engine.train.losses import lsgan_discriminator_loss
from engine.train.objectives import register_objective
from engine.train.objectives.base import Objective, StepContext, StepLogs, build_for, initialise_from
from engine.train.runtime import Runtime
from engine.train.validation import ValidTrack, load_valid_tracks

TERMS = ("R1", "R2", "R3", "R4", "GAN_C", "GAN_A")
DEFAULT_WEIGHTS = {"R1": 1.0, "R2": 1.0, "R3": 1.0, "R4": 1.0, "GAN_C": 0.5, "GAN_A": 0.5}
Scores = Callable[[Tensor], Sequence[Tensor]]


# --- pure loss pieces ---------------------------------------------------------------------------------------------


def front_end(audio: Tensor, model: nn.Module) -> tuple[Tensor, Tensor]:
    """Clips ``(n, 1, n_samples)`` at the network's rate -> complex STFT and compressed magnitude, both trimmed to
    the lower bins: ``(n, 1, n_bins - 1, n_frames)``."""
    from engine.dsp.stft import stft

    with torch.autocast(audio.device.type, enabled=False):
        spec = stft(audio.float(), model.n_fft, model.hop_length)[..., :-1, :]
    return spec, compress(spec.abs(), model.estimator.power)


def make_cross(
    b_bar: Tensor, a_spec: Tensor, c: Tensor, c_spec: Tensor, power: float = POWER, domain: str = "complex"
) -> Tensor:
    """The synthetic mixture ``a_bar = b_bar + c`` in the compressed domain ``(n, 1, n_bins, n_frames)``.

    ``"complex"``: ``|b_bar^(1/p) e^(i angle(A)) + C|^p`` (the sum of the two signals' spectrograms, ``b_bar`` with
    the mixture's phase); ``"compressed"``: ``b_bar + c`` literally.
    """
    if domain == "compressed":
        return b_bar + c
    if domain != "complex":
        raise ValueError(f"cross_domain must be 'complex' or 'compressed', not {domain!r}")
    phase = a_spec / a_spec.abs().clamp_min(1e-12)
    vocals = b_bar.clamp_min(0).pow(1.0 / power) * phase
    return compress((vocals + c_spec).abs(), power)


def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error (the paper's ``|x - y|_1`` per element)."""
    return (x.float() - y.float()).abs().mean()


def least_squares(scores: Sequence[Tensor], target: float) -> Tensor:
    """``l(d(x), target)`` summed over the scales: ``sum_k mean((d_k(x) - target)^2)``."""
    return sum(((s.float() - target) ** 2).mean() for s in scores)  # type: ignore[return-value]


def generator_gan(scores: Sequence[Tensor], form: str = "lsgan") -> Tensor:
    """The generator's GAN term: ``l(d(x), 1)`` (``"lsgan"``, [17]) or ``-l(d(x), 0)`` (``"negated"``, eq. 7-8)."""
    if form == "lsgan":
        return least_squares(scores, 1.0)
    if form == "negated":
        return -least_squares(scores, 0.0)
    raise ValueError(f"gan_form must be 'lsgan' or 'negated', not {form!r}")


def generator_terms(
    g: Callable[[Tensor], Tensor],
    a: Tensor,
    a_spec: Tensor,
    c: Tensor,
    c_spec: Tensor,
    active: Sequence[str],
    d_c: Scores | None = None,
    d_a: Scores | None = None,
    power: float = POWER,
    cross_domain: str = "complex",
    gan_form: str = "lsgan",
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """The generator's loss terms of one batch, and the fakes the discriminators see.

    Args:
        g: the generator on compressed patches ``(n, 1, n_bins, n_frames)``.
        a, c: compressed S_A / S_C patches ``(n, 1, n_bins, n_frames)``; ``a_spec``, ``c_spec``: their complex STFT.
        active: the terms to compute (a subset of :data:`TERMS`).
        d_c, d_a: the discriminators (patch-score lists), needed for ``GAN_C`` / ``GAN_A``.

    Returns:
        ``(terms, g(a), a_bar)``: each active term a scalar; ``g(a)`` and ``a_bar`` ``(n, 1, n_bins, n_frames)``.
    """
    n = a.shape[0]
    first = g(torch.cat([a, c])) if "R1" in active else g(a)
    ga = first[:n]
    terms: dict[str, Tensor] = {}
    if "R1" in active:
        terms["R1"] = l1(first[n:], c)
    b_bar = a - ga
    a_bar = make_cross(b_bar, a_spec, c, c_spec, power, cross_domain)
    second = []
    if "R3" in active or "R4" in active:
        second.append(a_bar)
    if "R2" in active:
        second.append(ga)
    if second:
        out = g(torch.cat(second))
        if "R3" in active or "R4" in active:
            g_bar = out[:n]
            if "R3" in active:
                terms["R3"] = l1(g_bar, c)
            if "R4" in active:
                terms["R4"] = l1(a_bar - g_bar, b_bar)
        if "R2" in active:
            terms["R2"] = l1(out[-n:], ga)
    if "GAN_C" in active:
        assert d_c is not None
        terms["GAN_C"] = generator_gan(d_c(ga), gan_form)
    if "GAN_A" in active:
        assert d_a is not None
        terms["GAN_A"] = generator_gan(d_a(a_bar), gan_form)
    return terms, ga, a_bar


def discriminator_loss(d: Scores, real: Tensor, fake: Tensor) -> Tensor:
    """Eq. 9-10: ``l(d(fake), 0) + l(d(real), 1)`` summed over scales, one call of ``d`` on both (DDP-safe)."""
    scores = d(torch.cat([real, fake.detach()]))
    n = real.shape[0]
    return sum(lsgan_discriminator_loss(s[:n], s[n:]) for s in scores)  # type: ignore[return-value]


def active_terms(args: dict[str, Any], defaults: dict[str, float] = DEFAULT_WEIGHTS) -> dict[str, float]:
    """The weight of every term that stays on, from ``objective_args`` ``weights`` and ``without``."""
    weights = {**defaults, **{k: float(v) for k, v in args.get("weights", {}).items()}}
    unknown = (set(weights) | set(args.get("without", []))) - set(TERMS)
    if unknown:
        raise DatasetError(None, f"unknown loss term(s) {sorted(unknown)}; known: {', '.join(TERMS)}")
    return {k: w for k, w in weights.items() if w != 0 and k not in set(args.get("without", []))}


class _Generator(nn.Module):
    """``g`` as a module (so DDP can wrap it): ``forward(x) = estimator.generator(x)``."""

    def __init__(self, estimator: nn.Module) -> None:
        super().__init__()
        self.estimator = estimator

    def forward(self, x: Tensor) -> Tensor:
        return self.estimator.generator(x)


class _Crosses(nn.Module):
    """Every use of ``g`` in one step as one forward (so DDP sees one forward per backward):
    ``forward(a, a_spec, c, c_spec)`` -> :func:`generator_terms` of the reconstruction terms, ``(terms, g(a),
    a_bar)``."""

    def __init__(self, estimator: nn.Module, active: Sequence[str], cross_domain: str) -> None:
        super().__init__()
        self.estimator = estimator
        self.active = [k for k in active if k.startswith("R")]
        self.cross_domain = cross_domain

    def forward(
        self, a: Tensor, a_spec: Tensor, c: Tensor, c_spec: Tensor
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        return generator_terms(
            self.estimator.generator,
            a,
            a_spec,
            c,
            c_spec,
            self.active,
            power=self.estimator.power,
            cross_domain=self.cross_domain,
        )


@register_objective("semisup")
class SemisupObjective(Objective):
    """Generator ``g`` (a ``semisup`` model's estimator) and discriminators ``d_C``, ``d_A``; see the module
    docstring for the losses and ``objective_args``."""

    default_weights: dict[str, float] = DEFAULT_WEIGHTS

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        args = config.objective_args
        self.model = build_for(config, "semisup", "semisup", "generator")
        if args.get("init_from"):
            initialise_from(self.model, config, Path(args["init_from"]))
        self.supervised = bool(args.get("supervised", False))
        self.weights = {"R3": 1.0, "R4": 1.0} if self.supervised else active_terms(args, self.default_weights)
        self.cross_domain = str(args.get("cross_domain", "complex"))
        self.gan_form = str(args.get("gan_form", "lsgan"))
        self.lr_halve_every = int(args.get("lr_halve_every", 100_000))
        self.d_pretrain_steps = int(args.get("d_pretrain_steps", 0))
        disc = dict(args.get("discriminator", {}))
        self.d_c = MultiScaleDiscriminator(**disc)
        self.d_a = MultiScaleDiscriminator(**disc)
        self.generator = _Generator(self.model.estimator)
        self.crosses = _Crosses(self.model.estimator, list(self.weights), self.cross_domain)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._schedulers: dict[str, torch.optim.lr_scheduler.StepLR] = {}

    def setup(self, runtime: Runtime) -> None:
        lr = self.config.train.lr
        self.model.to(runtime.device)
        self.d_c.to(runtime.device)
        self.d_a.to(runtime.device)
        # the network DDP wraps: g alone (supervised twin, NES) or the whole cross chain (the method)
        single = self.supervised or type(self).training_step is not SemisupObjective.training_step
        self.g_net = runtime.wrap(self.generator if single else self.crosses)
        self.d_c_net = runtime.wrap(self.d_c) if "GAN_C" in self.weights else self.d_c
        self.d_a_net = runtime.wrap(self.d_a) if "GAN_A" in self.weights else self.d_a
        d_lr = float(self.config.objective_args.get("d_lr", lr))
        for name, module in (("generator", self.model), ("d_C", self.d_c), ("d_A", self.d_a)):
            rate = lr if name == "generator" else d_lr
            self._optimizers[name] = torch.optim.Adam(module.parameters(), lr=rate, betas=(0.5, 0.999))
            self._schedulers[name] = torch.optim.lr_scheduler.StepLR(
                self._optimizers[name], self.lr_halve_every, 0.5
            )

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, "d_C": self.d_c, "d_A": self.d_a}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def schedulers(self) -> dict[str, Any]:
        return dict(self._schedulers)

    @property
    def separator(self) -> nn.Module:
        return self.model

    # -- data ------------------------------------------------------------------------------------------------------
    def pools(self, data_dir: Path) -> tuple[Path, Path]:
        """The S_A folder (mixtures) and the S_C folder (``instrumental.wav|flac`` files) for ``data_dir``; for the
        ``"shared"`` pool both are the one split of songs whose mixtures and accompaniments they are."""
        args = self.config.objective_args
        pool = args.get("pool", "synthetic")
        if pool == "synthetic":
            mixtures, instrumentals = "unpaired/mixtures", "unpaired"
        elif pool == "shared":
            split = Path(data_dir) / str(args.get("shared_split", "train_realacc"))
            return split, split
        elif pool == "real":
            real = os.environ.get("SHOTOKU_REAL")
            if not real and "instrumentals" not in args:
                raise DatasetError(
                    None,
                    "pool 'real' needs $SHOTOKU_REAL (a `shotoku dataset fetch` folder) or "
                    "objective_args.instrumentals",
                )
            mixtures, instrumentals = (
                "unpaired/real_mixtures",
                str(Path(real or ".") / "pools" / "unpaired_c"),
            )
        else:
            raise DatasetError(None, f"objective_args.pool must be 'synthetic', 'real' or 'shared', not {pool!r}")
        mixtures = args.get("mixtures", mixtures)
        instrumentals = args.get("instrumentals", instrumentals)
        return Path(data_dir) / mixtures, Path(data_dir) / instrumentals  # an absolute path stays itself

    def train_dataset(self, data_dir: Path) -> Dataset:
        from engine.data.unpaired_pairs import PairedClips, SharedPieceClips, UnpairedClips

        settings = self.config.train
        rate = self.model.network_rate
        if self.supervised:
            return PairedClips(
                data_dir,
                "train",
                CLIP_SAMPLES,
                rate,
                settings.samples_per_epoch,
                settings.augment,
                settings.seed,
            )
        args = self.config.objective_args
        mixtures, instrumentals = self.pools(data_dir)
        if args.get("pool") == "shared":  # one split holds both pools
            return SharedPieceClips(
                mixtures.parent,
                mixtures.name,
                float(args.get("block_seconds", 4.0)),
                CLIP_SAMPLES,
                rate,
                settings.samples_per_epoch,
                settings.seed,
            )
        return UnpairedClips(
            mixtures,
            instrumentals,
            "instrumental",
            CLIP_SAMPLES,
            rate,
            settings.samples_per_epoch,
            settings.seed,
        )

    def valid_tracks(self, data_dir: Path) -> list[ValidTrack]:
        """Validation excerpts with vocals and accompaniment in the separator's order: of the paired split
        ``objective_args.valid_split`` (default ``"valid"``; accompaniment = drums + bass + other), or of songs over
        real accompaniment when it ends in ``_realacc``; none with ``objective_args.validate`` false."""
        args = self.config.objective_args
        if not args.get("validate", True):
            return []
        settings = self.config.train
        split = str(args.get("valid_split", "valid"))
        out = []
        if split.endswith("_realacc"):
            from engine.data.known import iter_known_tracks

            for name, mixture, stems, rate in iter_known_tracks(data_dir, split, ("vocals", "accompaniment")):
                n = int(settings.valid_seconds * rate) if settings.valid_seconds > 0 else mixture.shape[-1]
                refs = np.stack([stems[s][:, :n] for s in self.model.sources]).astype(np.float32)  # type: ignore[index]
                out.append((name, np.ascontiguousarray(mixture[:, :n], dtype=np.float32), refs))
                if len(out) >= settings.valid_tracks:
                    break
            if not out:
                raise DatasetError(Path(data_dir) / split, "no validation tracks")
            return out
        tracks = load_valid_tracks(
            data_dir,
            ["vocals", "drums", "bass", "other"],
            settings.valid_tracks,
            settings.valid_seconds,
            split,
        )
        for name, mixture, stems in tracks:
            by_name = {"vocals": stems[0], "accompaniment": stems[1:].sum(axis=0)}
            out.append((name, mixture, np.stack([by_name[s] for s in self.model.sources])))
        return out

    # -- the step --------------------------------------------------------------------------------------------------
    def _step_lr(self) -> None:
        """One iteration of every schedule whose optimizer trains (the halving of every ``lr_halve_every``)."""
        trained = {"generator"} | {f"d_{k[-1]}" for k in self.weights if k.startswith("GAN")}
        for name, scheduler in self._schedulers.items():
            if name in trained and not self.supervised or name == "generator":
                scheduler.step()

    def supervised_step(self, batch: tuple[Tensor, Tensor, Tensor], step: StepContext) -> StepLogs:
        """The supervised twin: the same network and optimiser, ``|g(a) - c| + |(a - g(a)) - b|`` on the true
        vocals ``b`` and accompaniment ``c`` of paired clips (R3 and R4 with real pairs in place of crosses)."""
        mixture, vocals, accompaniment = batch
        _, a = front_end(mixture, self.model)
        _, b = front_end(vocals, self.model)
        _, c = front_end(accompaniment, self.model)
        with step.autocast():
            ga = self.g_net(a)
            terms = {"R3": l1(ga, c), "R4": l1(a - ga, b)}
            loss = terms["R3"] + terms["R4"]
        optimizer = self._optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        step.backward(loss)
        step.step(optimizer)
        self._step_lr()
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    def _update_discriminators(
        self, real_c: Tensor, fake_c: Tensor, real_a: Tensor, fake_a: Tensor, step: StepContext
    ) -> dict[str, Tensor]:
        """One step of ``d_C`` (``real_c`` against ``fake_c``) and ``d_A`` (``real_a`` against ``fake_a``), each only
        when its GAN term is on; returns their losses as ``d_C`` / ``d_A``."""
        logs: dict[str, Tensor] = {}
        for key, net, real, fake in (("GAN_C", self.d_c_net, real_c, fake_c), ("GAN_A", self.d_a_net, real_a, fake_a)):
            if key not in self.weights:
                continue
            with step.autocast():
                d_loss = discriminator_loss(net, real, fake)
            optimizer = self._optimizers["d_C" if key == "GAN_C" else "d_A"]
            optimizer.zero_grad(set_to_none=True)
            step.backward(d_loss)
            step.step(optimizer)
            logs[f"d_{key[-1]}"] = d_loss.detach()
        return logs

    def discriminator_pretrain_step(self, a: Tensor, c: Tensor, step: StepContext) -> StepLogs:
        """``d_C``: real ``c`` against the mixture ``a``; ``d_A``: real ``a`` against the instrumental ``c`` (what the
        fakes are at the identity); compressed patches ``(n, 1, n_bins, n_frames)``. The generator is not updated."""
        logs = self._update_discriminators(c, a, a, c, step)
        total = sum(logs.values()) if logs else torch.zeros((), device=a.device)
        return {"loss": total.detach(), **logs}  # type: ignore[union-attr]

    def training_step(self, batch: tuple[Tensor, ...], step: StepContext) -> StepLogs:
        """``batch``: S_A and S_C clips ``(n_batch, 1, n_samples)`` (three tensors when supervised)."""
        if self.supervised:
            return self.supervised_step(batch, step)  # type: ignore[arg-type]
        a_wave, c_wave = batch
        a_spec, a = front_end(a_wave, self.model)
        c_spec, c = front_end(c_wave, self.model)
        if step.global_step < self.d_pretrain_steps:
            return self.discriminator_pretrain_step(a, c, step)
        with step.autocast():
            terms, ga, a_bar = self.g_net(a, a_spec, c, c_spec)
        logs = self._update_discriminators(c, ga, a, a_bar, step)  # on the current fakes (eq. 9-10)
        # the generator against the updated discriminators (bare modules, frozen: no gradient to them)
        with step.autocast():
            for key, d, fake in (("GAN_C", self.d_c, ga), ("GAN_A", self.d_a, a_bar)):
                if key in self.weights:
                    d.requires_grad_(False)
                    terms[key] = generator_gan(d(fake), self.gan_form)
                    d.requires_grad_(True)
            loss = sum(self.weights[k] * terms[k] for k in terms)
        optimizer = self._optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        step.backward(loss)  # type: ignore[arg-type]
        step.step(optimizer)
        self._step_lr()
        logs.update({k: v.detach() for k, v in terms.items()})
        return {"loss": loss.detach(), **logs}  # type: ignore[union-attr]
