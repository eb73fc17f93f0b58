"""Mixture invariant training (MixIT; Wisdom et al., NeurIPS 2020), the slides' MixIT baseline, on the blind
VAE's network and front end (``engine/models/vaebss.py``, deterministic: the encoder's means are decoded).

A batch of ``2 n`` mixtures is paired, row ``i`` with row ``n + i``; the network separates the mixture of
mixtures ``x1 + x2`` into ``M`` sources (``M = len(sources)``, e.g. 4 for two-source mixtures) and the loss is

    L = min_A  MSE(|X1|, sum_{m: A_m = 1} s_m) + MSE(|X2|, sum_{m: A_m = 2} s_m)

over the ``2^M`` assignments ``A`` of outputs to mixtures. **Reading**: MixIT's paper scores waveforms with a
negative thresholded SNR; this network estimates magnitudes, so the loss is the MSE on magnitudes normalised by
the mixture of mixtures' maximum (magnitudes of a sum are only approximately the sum of magnitudes). At test
time the ``M`` outputs of a single mixture are grouped onto the references by the best many-to-one assignment
(``bench/vae.py``).

``objective_args``: ``data`` etc. as ``vaebss``.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from engine.train.objectives import register_objective
from engine.train.objectives.base import StepContext, StepLogs
from engine.train.objectives.vaebss import VAEBSSObjective


def assignments(n_outputs: int) -> Tensor:
    """Every assignment of ``n_outputs`` outputs to two mixtures: ``(2^M, 2, M)`` 0/1, row ``[a, j]`` the outputs
    of mixture ``j``."""
    rows = torch.tensor(list(itertools.product((0, 1), repeat=n_outputs)), dtype=torch.float32)
    return torch.stack([1 - rows, rows], dim=1)


def mixit_loss(sources: Tensor, x1: Tensor, x2: Tensor) -> Tensor:
    """``sources (n, M, ...)``, references ``x1``, ``x2`` ``(n, ...)`` -> the mean over the batch of the best
    assignment's ``MSE(x1, .) + MSE(x2, .)`` (scalar)."""
    n, m = sources.shape[:2]
    flat = sources.flatten(2).float()  # (n, M, D)
    table = assignments(m).to(flat.device)  # (A, 2, M)
    remix = torch.einsum("ajm,nmd->najd", table, flat)  # (n, A, 2, D)
    refs = torch.stack([x1.flatten(1), x2.flatten(1)], dim=1).float()[:, None]  # (n, 1, 2, D)
    errors = (remix - refs).square().mean(dim=-1).sum(dim=-1)  # (n, A)
    return errors.min(dim=1).values.mean()


class _Terms(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, mom: Tensor, x1: Tensor, x2: Tensor) -> dict[str, Tensor]:
        return {"MIXIT": mixit_loss(self.net.decode(self.net.encode(mom)[0]), x1, x2)}


@register_objective("mixit")
class MixITObjective(VAEBSSObjective):
    """MixIT on the blind VAE's network (no KL, no sampling)."""

    def build_terms(self) -> nn.Module:
        return _Terms(self.net)

    def training_step(self, batch: tuple[Tensor, ...], step: StepContext) -> StepLogs:
        """``batch[0]``: ``(2 n, 1, n_samples)`` mixtures (an odd last row is left out)."""
        audio = batch[0]
        half = audio.shape[0] // 2
        if half == 0:
            raise ValueError("MixIT needs batches of at least two mixtures (train.batch_size >= 2)")
        a, b = audio[:half], audio[half : 2 * half]
        mags = self.model.magnitude(torch.cat([a, b, a + b]))[:, 0, : self.net.n_bins]
        scale = mags[2 * half :].flatten(1).amax(dim=1).clamp_min(1e-8)[:, None, None]
        x1, x2, mom = mags[:half] / scale, mags[half : 2 * half] / scale, mags[2 * half :] / scale
        with step.autocast():
            terms = self.terms_net(mom, x1, x2)
            loss = terms["MIXIT"]
        self.optimise(loss, step)
        return {"loss": loss.detach()}
