"""Unsupervised domain translation (UDT) for source separation: Venkataramani, Tzinis & Smaragdis, "A Style
Transfer Approach to Source Separation" (papers/000), a modified UNIT [12] on magnitude spectrograms.

**The network** (their section 3.1, Figures 1-2): two VAEs, one for the mixture domain (``E_M``, ``D_M``) and one
for the clean-source domain (``E_S``, ``D_S``). Each encoder is three conv-layer blocks, each block a 1-D
convolution over time (frequency bins as channels) of kernel width ``kernel_size``, a softplus, batch norm and
dropout; each decoder is three blocks of the same shape with a transposed 1-D convolution. Every block keeps the
``n_bins``-dimensional space ("``F`` input and output channels"; ``hidden`` below, the paper's ``F``). The last
encoder block and the first decoder block are **shared** by the two domains (one module used by both), which with
the consistency losses ties the two latent spaces together. Reparameterisation as UNIT: the encoder output is the
posterior mean, the sample adds unit Gaussian noise (``z = E(x) + eps``), so the KL term is ``|E(x)|^2 / 2``
(the paper's "sparsity term on the encoder outputs to push the latent representation towards a zero-mean
distribution"). Paths (section 3.1): ``D_M(E_M(m))`` reconstructs a mixture, ``D_S(E_M(m))`` extracts the source,
``D_S(E_S(s))`` reconstructs a source, ``D_M(E_S(s))`` makes a dummy mixture holding ``s``. Inference:
``D_S(E_M(m))`` on the mean (no noise, batch norm in eval mode, no dropout).

**The front end** (section 4.1): magnitude spectrograms raised to ``power`` ("to emphasize the contribution of
low-energy time-frequency bins"), the estimate raised to ``1 / power`` and given the mixture's phase.

**Readings** (the plain-text copy of the paper lost its numbers; also in ``configs/udt*.json`` notes):

- Sizes: the copy keeps "``F`` frequency coefficients", "kernel width of ``k``", "dropout with ``p``", "power of
  ``a``". Those values are our own choices, not verified against the published paper: STFT 1024 / hop 256 (513
  bins, so every block is 513 -> 513 channels), kernel width 5, dropout 0.2, power 0.5 (``configs/udt.json``
  ``paper_model``); check them against the paper's PDF when it can be read.
- The last decoder block ends at its softplus: batch norm there would let a magnitude go negative and dropout
  would zero random output bins that the MSE then compares; the other five blocks are as printed.
- The shared blocks share their batch norm too (the whole block is one module).
- Stereo: the network is monaural; each channel is a batch row. Output: the target stem is
  ``min(D_S(E_M(|X|^a))^(1/a), |X|)`` with the mixture's phase and the other stem the rest of the mixture's
  magnitude (ratio masks of the pipeline give exactly this), so the two stems sum to the song.

Public API: :class:`UDTNet` (the estimator; architecture ``"udt"``), :class:`ConvBlock`, :data:`PAPER`.
The objective (losses, supervised twin) is ``engine/train/objectives/udt.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat

#: The paper's sizes as we read them (see the module docstring): STFT, kernel width, dropout, power.
PAPER = {"n_fft": 1024, "hop_length": 256, "kernel_size": 5, "dropout": 0.2, "power": 0.5}
#: Floor of magnitudes before the power law (its gradient is infinite at 0).
MAG_FLOOR = 1e-7


class ConvBlock(nn.Module):
    """One conv-layer block: 1-D (transposed) convolution over time, softplus, batch norm, dropout.

    ``forward(x (n, n_in, n_frames))`` -> ``(n, n_out, n_frames)`` (same length: padding ``kernel_size // 2``).

    Args:
        transposed: a transposed convolution (decoder blocks).
        last: end at the softplus (the decoder's output block; see the module docstring).
    """

    def __init__(
        self, n_in: int, n_out: int, kernel_size: int, dropout: float, transposed: bool = False, last: bool = False
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length blocks), not {kernel_size}")
        conv = nn.ConvTranspose1d if transposed else nn.Conv1d
        self.conv = conv(n_in, n_out, kernel_size, padding=kernel_size // 2)
        self.last = last
        self.norm = nn.Identity() if last else nn.BatchNorm1d(n_out)
        self.drop = nn.Identity() if last else nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.norm(F.softplus(self.conv(x))))


@register_architecture("udt")
class UDTNet(Estimator):
    """The two VAEs with a shared latent space; as an estimator: mixture magnitude ``(n_batch, n_channels, n_bins,
    n_frames)`` -> ``(n_batch, 2, n_channels, n_bins, n_frames)`` (``target`` and the rest, in ``sources`` order).

    Args:
        fmt: the pipeline's format; ``sources`` has two names, one of them ``target``.
        target: the stem the clean domain holds (``"vocals"``; ``"bass"`` for the second experiment).
        hidden: channels of every inner block (paper: ``n_bins``, i.e. 513; 0 means ``n_bins``).
        kernel_size: convolution width (paper, as we read it: 5).
        dropout: dropout probability (paper, as we read it: 0.2).
        power: the magnitude exponent (paper, as we read it: 0.5).
    """

    pipeline_defaults: ClassVar[dict[str, Any]] = {
        "n_fft": PAPER["n_fft"],
        "hop_length": PAPER["hop_length"],
        "segment_seconds": 4.0,
        "sources": ["vocals", "accompaniment"],
    }

    def __init__(
        self,
        fmt: SpectrogramFormat,
        target: str = "vocals",
        hidden: int = 0,
        kernel_size: int = PAPER["kernel_size"],
        dropout: float = PAPER["dropout"],
        power: float = PAPER["power"],
    ) -> None:
        super().__init__()
        if fmt.n_stems != 2 or target not in fmt.sources:
            raise ValueError(f"udt separates a target and the rest: sources must be 2 with {target!r} among them")
        self.target = target
        self.target_index = list(fmt.sources).index(target)
        self.power = float(power)
        n_bins, width = fmt.n_bins, int(hidden) or fmt.n_bins
        self.n_bins, self.hidden = n_bins, width

        def encoder_front() -> nn.Sequential:
            return nn.Sequential(
                ConvBlock(n_bins, width, kernel_size, dropout), ConvBlock(width, width, kernel_size, dropout)
            )

        def decoder_back() -> nn.Sequential:
            return nn.Sequential(
                ConvBlock(width, width, kernel_size, dropout, transposed=True),
                ConvBlock(width, n_bins, kernel_size, dropout, transposed=True, last=True),
            )

        self.enc_m, self.enc_s = encoder_front(), encoder_front()
        self.enc_shared = ConvBlock(width, width, kernel_size, dropout)
        self.dec_shared = ConvBlock(width, width, kernel_size, dropout, transposed=True)
        self.dec_m, self.dec_s = decoder_back(), decoder_back()

    # -- the two VAEs (on compressed magnitudes (n, n_bins, n_frames)) --------------------------------------------
    def compress(self, mag: Tensor) -> Tensor:
        """``max(mag, floor) ** power``; same shape."""
        return mag.clamp_min(MAG_FLOOR).pow(self.power)

    def encode(self, x: Tensor, domain: str) -> Tensor:
        """``E_M`` (``domain="m"``) or ``E_S`` (``"s"``): ``(n, n_bins, n_frames)`` -> posterior mean ``(n,
        hidden, n_frames)``."""
        front = self.enc_m if domain == "m" else self.enc_s
        return self.enc_shared(front(x))

    def decode(self, z: Tensor, domain: str) -> Tensor:
        """``D_M`` or ``D_S``: latent ``(n, hidden, n_frames)`` -> compressed magnitude ``(n, n_bins, n_frames)``."""
        back = self.dec_m if domain == "m" else self.dec_s
        return back(self.dec_shared(z))

    def extract(self, x: Tensor) -> Tensor:
        """The separation path ``D_S(E_M(x))`` on the posterior mean: ``(n, n_bins, n_frames)`` -> same shape."""
        return self.decode(self.encode(x, "m"), "s")

    def forward(self, mix_mag: Tensor) -> Tensor:
        n_batch, n_channels, n_bins, n_frames = mix_mag.shape
        x = self.compress(mix_mag.reshape(n_batch * n_channels, n_bins, n_frames))
        estimate = self.extract(x).clamp_min(0).pow(1.0 / self.power).reshape(mix_mag.shape)
        target = torch.minimum(estimate, mix_mag)
        rest = mix_mag - target
        stems = [target, rest] if self.target_index == 0 else [rest, target]
        return torch.stack(stems, dim=1)
