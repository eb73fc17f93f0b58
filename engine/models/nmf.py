"""Semi-supervised NMF (Smaragdis, Raj & Shashanka 2007), the "NMF" baseline of the semi-supervised papers' Table 1.

Sparse NMF learns ``n_bases`` (paper: l = 3) spectral bases ``W_c`` from the instrumental pool S_C
(``V_c ~ W_c H_c``, non-negative, an L1 penalty on ``H_c``, unit-norm bases, after Hoyer / Kim & Park); a mixture is
decomposed with ``W_c`` held fixed plus ``n_free`` (paper: as many, l) free bases ``W_b``:
``V_a ~ W_c H_ac + W_b H_ab``, and ``W_b H_ab`` is the vocals. Both fits minimise the squared Euclidean distance
with the L1 penalty by multiplicative updates (Lee & Seung's, with the penalty in the denominator), not Kim & Park's
active-set NNLS solver the paper names: the objective is the same, the solver slower per iteration but a few
lines. Hand-written because no dependency of the project does NMF with some bases fixed (scikit-learn, not a
dependency, can only fix all of W or all of H).

Front end as the semi-supervised network's (``engine/models/semisup.py``): 20480 Hz, ``n_fft`` 512, hop 64,
linear magnitudes; the vocals are the mixture's STFT times the ratio ``W_b H_ab / (W H)`` (the NMF model's Wiener
gain), inverted and resampled to the song's rate, the accompaniment ``mixture - vocals`` (full band, as the
network). No training: ``fit`` learns ``W_c`` (``python -m engine.models.nmf fit --instrumentals DIR --out FILE``,
a minute) into the weights file the model loads (``instrumental_bases``, ``(n_bins, n_bases)``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.dsp.stft import istft, stft
from engine.models.base import set_audio_format
from engine.models.catalogue import register_architecture
from engine.models.semisup import HOP_LENGTH, N_FFT, NETWORK_RATE, resample

EPS = 1e-9


def sparse_nmf(
    v: Tensor,
    n_bases: int,
    sparsity: float = 0.1,
    iterations: int = 200,
    fixed: Tensor | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """``v ~ W H`` by multiplicative updates of ``|v - W H|^2 + sparsity * sum(H)``, unit-norm columns of ``W``.

    Args:
        v: ``(n_bins, n_frames)`` non-negative.
        n_bases: free bases to learn.
        fixed: ``(n_bins, n_fixed)`` bases held fixed in front of the free ones (None: all free).

    Returns:
        ``W (n_bins, n_fixed + n_bases)`` and ``H (n_fixed + n_bases, n_frames)``.
    """
    generator = torch.Generator().manual_seed(seed)
    n_bins, n_frames = v.shape
    free = torch.rand(n_bins, n_bases, generator=generator, dtype=v.dtype).to(v.device) + 0.1
    w = free if fixed is None else torch.cat([fixed.to(v), free], dim=1)
    w = w / w.norm(dim=0, keepdim=True).clamp_min(EPS)
    n_fixed = 0 if fixed is None else fixed.shape[1]
    h = torch.rand(w.shape[1], n_frames, generator=generator, dtype=v.dtype).to(v.device) * v.mean() + EPS
    for _ in range(iterations):
        h = h * (w.T @ v) / (w.T @ (w @ h) + sparsity + EPS)
        update = w * (v @ h.T) / ((w @ h) @ h.T + EPS)
        w = torch.cat([w[:, :n_fixed], update[:, n_fixed:]], dim=1)
        norms = w.norm(dim=0, keepdim=True).clamp_min(EPS)
        norms[:, :n_fixed] = 1.0
        w, h = w / norms, h * norms.T
    return w, h


@register_architecture("nmf-semisup")
class SemisupNmf(nn.Module):
    """Semi-supervised NMF as a SeparationModel: ``(n_batch, n_channels, n_samples)`` -> ``(n_batch, 2,
    n_channels, n_samples)`` (vocals, accompaniment); each channel of each chunk is decomposed on its own.

    Args:
        n_bases: instrumental bases ``W_c`` (paper: 3); ``n_free``: free (vocal) bases (paper: as many).
        sparsity: L1 weight on the activations; ``iterations``: multiplicative updates per chunk.
    """

    def __init__(
        self,
        sources: Sequence[str] = ("vocals", "accompaniment"),
        samplerate: int = 44100,
        n_channels: int = 2,
        segment_seconds: float = 8.0,
        network_rate: int = NETWORK_RATE,
        n_fft: int = N_FFT,
        hop_length: int = HOP_LENGTH,
        n_bases: int = 3,
        n_free: int = 3,
        sparsity: float = 0.1,
        iterations: int = 100,
    ) -> None:
        super().__init__()
        if sorted(sources) != ["accompaniment", "vocals"]:
            raise ValueError(f"nmf-semisup separates vocals and accompaniment, not {list(sources)}")
        set_audio_format(self, list(sources), samplerate, n_channels, segment_seconds)
        self.network_rate, self.n_fft, self.hop_length = int(network_rate), int(n_fft), int(hop_length)
        self.n_free, self.sparsity, self.iterations = int(n_free), float(sparsity), int(iterations)
        self.register_buffer(
            "instrumental_bases", torch.full((n_fft // 2 + 1, n_bases), 1.0 / np.sqrt(n_fft // 2 + 1))
        )
        self.vocals_index = list(sources).index("vocals")

    def vocal_gain(self, mag: Tensor) -> Tensor:
        """``(n_bins, n_frames)`` mixture magnitude -> the vocals' ratio mask ``W_b H_ab / (W H)``, same shape."""
        n_fixed = self.instrumental_bases.shape[1]
        w, h = sparse_nmf(
            mag.float(), self.n_free, self.sparsity, self.iterations, fixed=self.instrumental_bases.float()
        )
        vocals = w[:, n_fixed:] @ h[n_fixed:]
        return (vocals / (w @ h + EPS)).to(mag.dtype)

    def forward(self, mix: Tensor) -> Tensor:
        n_samples = mix.shape[-1]
        low = resample(mix, self.samplerate, self.network_rate)
        if low.shape[-1] < self.n_fft:  # a very short chunk: zeros after it, cut away below
            low = F.pad(low, (0, self.n_fft - low.shape[-1]))
        spec = stft(low, self.n_fft, self.hop_length)  # (b, c, bins, frames)
        gains = torch.stack(
            [torch.stack([self.vocal_gain(channel.abs()) for channel in item]) for item in spec]
        )
        vocals = resample(
            istft(spec * gains, low.shape[-1], self.n_fft, self.hop_length),
            self.network_rate,
            self.samplerate,
        )
        vocals = F.pad(vocals, (0, max(0, n_samples - vocals.shape[-1])))[..., :n_samples].to(mix.dtype)
        stems = [vocals, mix - vocals]
        return torch.stack(stems if self.vocals_index == 0 else stems[::-1], dim=1)


def pool_magnitudes(model: SemisupNmf, clips: Iterable[Tensor]) -> Tensor:
    """Magnitude frames of clips ``(1, n_samples)`` at the model's network rate, concatenated ``(n_bins, n)``."""
    return torch.cat([stft(clip, model.n_fft, model.hop_length).abs()[0] for clip in clips], dim=-1)


def fit(model: SemisupNmf, clips: Iterable[Tensor], iterations: int = 300, seed: int = 0) -> SemisupNmf:
    """Learn ``model.instrumental_bases`` from S_C clips ``(1, n_samples)`` at its network rate (in place)."""
    v = pool_magnitudes(model, clips).double()
    w, _ = sparse_nmf(v, model.instrumental_bases.shape[1], model.sparsity, iterations, seed=seed)
    model.instrumental_bases.copy_(w.to(model.instrumental_bases.dtype))
    return model


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.models.nmf fit --mixtures DIR --instrumentals DIR --run RUN_DIR [--clips N]``: learn the
    instrumental bases and write ``RUN_DIR/{config.json, best.safetensors}`` like a training run."""
    from engine.atomic import atomic_write_json
    from engine.data.unpaired_pairs import UnpairedClips
    from engine.errors import ShotokuError
    from engine.models.weights import save_state

    parser = argparse.ArgumentParser(prog="python -m engine.models.nmf")
    parser.add_argument("command", choices=["fit"])
    parser.add_argument(
        "--mixtures", type=Path, required=True, help="S_A folder (the sampler checks it is disjoint)"
    )
    parser.add_argument(
        "--instrumentals", type=Path, required=True, help="S_C folder (instrumental.wav|flac)"
    )
    parser.add_argument("--run", type=Path, required=True, help="run folder to write")
    parser.add_argument("--clips", type=int, default=200, help="S_C clips of 3.2 s to learn from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = {
        "sources": ["vocals", "accompaniment"],
        "n_bases": 3,
        "n_free": 3,
        "sparsity": 0.1,
        "iterations": 100,
    }
    model = SemisupNmf(**config)
    try:
        data = UnpairedClips(
            args.mixtures,
            args.instrumentals,
            samplerate=model.network_rate,
            samples_per_epoch=args.clips,
            seed=args.seed,
            n_samples=4 * 16320,
        )
        fit(model, (data[i][1] for i in range(len(data))), seed=args.seed)
        args.run.mkdir(parents=True, exist_ok=True)
        save_state(model.state_dict(), args.run / "best.safetensors", dtype=None)
        atomic_write_json(
            args.run / "config.json",
            {
                "architecture": "nmf-semisup",
                "model": config,
                "notes": f"S_C bases from {args.clips} clips of {args.instrumentals}",
            },
        )
    except ShotokuError as err:
        print(f"nmf: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.run}: {model.instrumental_bases.shape[1]} instrumental bases from {args.clips} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
