"""Unsupervised blind source separation with a VAE: Neri, Depalle & Badeau, EUSIPCO 2021 (papers/004, slides).

**The network** (slides 5-9): a fully connected encoder maps a mixture spectrogram ``x`` (``D_x`` values) to the
posterior of ``K`` latent sources, ``q(Z | x) = N(mu(x), sigma^2(x) I)`` with ``Z = (z_1 .. z_K)``, ``z_k`` of
``latent_dim`` each (the output layer has ``2 x D_z K`` units: means and log-variances); the prior is
``prod_k N(z_k | 0, I)``; **one shared decoder** generates each source ``s_k = D(z_k)`` independently, and the
mixture model is ``x_hat = sum_k s_k``. Layer sizes (the slides' MUMS row): ``D_x = 32768`` (256 x 128), hidden
2560, 2048, 1536, 1024, 512, output ``2 x 64 K``; the decoder mirrors the hidden layers. At run time the VAE mask
(VAEM) makes the sources sum exactly to the input: ``s_k * (x / x_hat)``. The AE baseline is the same network
without sampling or KL (``variational`` false in the objective; the network is the same).

**The front end** (slide 10): 256 x 128 magnitude spectrograms of audio at about 5.5 kHz over 1.5 s, normalised to
[0, 1]. Here: audio at 5512 Hz (44.1 kHz / 8, rounded down), STFT 512 / hop 64 with the top bin dropped (256 bins),
patches of 128 frames (127 hops: 8128 samples, 1.47 s), each patch divided by its maximum (the scale is put back
after separation).

**Readings** (the slides give no more; also in ``configs/vaebss*.json`` notes): hidden activations ReLU and
a sigmoid on the decoder output (the data lie in [0, 1]) whose last bias starts at ``output_bias`` = -4 (sigmoid
0.018, the order of the data's mean value: normalised magnitude spectrograms are sparse): with PyTorch's default
(outputs 0.5 per source) the first steps drove every output to 0 and the saturated sigmoids stalled training
(measured: the reconstruction stayed at the all-zero fit); each source gets the mixture's top bin divided by ``K``;
songs of any length are cut into half-overlapping 128-frame patches blended with triangular weights (the slides
name "arbitrary duration" as future work); stereo channels are separated one by one. Latent order is arbitrary
(blind separation): sources are named ``source1..sourceK`` and the bench matches them to references by the best
permutation. The model works at 5512 Hz; the Separator resamples a song to it and back, so nothing above 2.76 kHz
is separated (fine for the paper's instrument pairs, a hard limit on songs: see ``bench/vae.py``).

Public API: :class:`VAEBSSNet` (architecture ``"vaebss"``), :func:`patch_apply`, :func:`vaem_mask`, constants.
The objectives are ``engine/train/objectives/vaebss.py`` (AE, VAE) and ``mixit.py`` (MixIT baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.dsp.wiener import mixture_phase
from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat

#: The front end: network rate (Hz), FFT, hop, kept bins, frames per patch, clip samples (127 hops).
RATE = 5512
N_FFT = 512
HOP_LENGTH = 64
N_BINS = 256
PATCH_FRAMES = 128
CLIP_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH
#: The slides' MUMS encoder (hidden layers) and latent size per source.
PAPER_HIDDEN = (2560, 2048, 1536, 1024, 512)
PAPER_LATENT = 64
EPS = 1e-8


def vaem_mask(sources: Tensor, x: Tensor) -> Tensor:
    """VAEM: ``s_k * (x / sum_k s_k)``; ``sources (n, K, ...)``, ``x (n, ...)`` -> ``(n, K, ...)`` summing to ``x``."""
    return sources * (x / (sources.sum(dim=1) + EPS)).unsqueeze(1)


def patch_apply(x: Tensor, fn: Callable[[Tensor], Tensor], size: int, batch: int = 16) -> Tensor:
    """``fn`` on half-overlapping ``size``-frame patches of ``x (n, n_bins, n_frames)``, blended back.

    ``fn``: ``(p, n_bins, size)`` -> ``(p, K, n_bins, size)``. Returns ``(n, K, n_bins, n_frames)``; one patch
    (``n_frames <= size``, zero-padded) is ``fn`` itself.
    """
    n, n_bins, n_frames = x.shape
    hop = size // 2
    n_patches = 1 if n_frames <= size else -(-(n_frames - size) // hop) + 1
    total = size + (n_patches - 1) * hop
    padded = F.pad(x, (0, total - n_frames))
    patches = padded.unfold(-1, size, hop).permute(0, 2, 1, 3).reshape(n * n_patches, n_bins, size)
    out_patches = torch.cat([fn(part) for part in patches.split(batch)])
    k = out_patches.shape[1]
    out_patches = out_patches.reshape(n, n_patches, k, n_bins, size)
    ramp = torch.minimum(torch.arange(size, device=x.device) + 0.5, size - torch.arange(size, device=x.device) - 0.5)
    weights = ramp.to(x.dtype) if n_patches > 1 else torch.ones(size, device=x.device, dtype=x.dtype)
    out = torch.zeros(n, k, n_bins, total, device=x.device, dtype=x.dtype)
    norm = torch.zeros(total, device=x.device, dtype=x.dtype)
    for index in range(n_patches):
        out[..., index * hop : index * hop + size] += out_patches[:, index] * weights
        norm[index * hop : index * hop + size] += weights
    return (out / norm)[..., :n_frames]


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@register_architecture("vaebss")
class VAEBSSNet(Estimator):
    """Encoder to ``K`` Gaussian latents, one shared decoder; as an estimator: complex mixture STFT ``(n_batch,
    n_channels, 257, n_frames)`` -> complex sources ``(n_batch, K, n_channels, 257, n_frames)``, the estimated
    magnitudes with the mixture's phase.

    A complex-domain estimator so that the pipeline inverts the decoded magnitudes as they are: the pipeline's
    ratio masks would turn every estimate into a mask of the mixture, i.e. make the "VAE" row the "VAEM" row.

    Args:
        fmt: the pipeline's format (``K`` = ``len(sources)``; 5512 Hz, ``n_fft`` 512).
        hidden: encoder hidden widths (slides: 2560, 2048, 1536, 1024, 512); the decoder mirrors them.
        latent_dim: ``D_z`` per source (slides: 64).
        patch_frames: frames per patch (slides: 128).
        vaem: apply the VAE mask at run time (VAEM; false: the decoded sources as they are, the "VAE"/"AE" rows).
        patch_batch: patches per network call at inference.
        output_bias: initial bias of the decoder's last layer (a logit; see the module docstring).
    """

    domain: ClassVar[str] = "complex"
    pipeline_defaults: ClassVar[dict[str, Any]] = {
        "samplerate": RATE,
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "segment_seconds": 12.0,
        "sources": ["source1", "source2"],
    }

    def __init__(
        self,
        fmt: SpectrogramFormat,
        hidden: Sequence[int] = PAPER_HIDDEN,
        latent_dim: int = PAPER_LATENT,
        patch_frames: int = PATCH_FRAMES,
        vaem: bool = True,
        patch_batch: int = 16,
        output_bias: float = -4.0,
    ) -> None:
        super().__init__()
        self.n_sources = fmt.n_stems
        self.n_bins = fmt.n_bins - 1
        self.patch_frames = int(patch_frames)
        self.latent_dim = int(latent_dim)
        self.vaem = bool(vaem)
        self.patch_batch = int(patch_batch)
        self.d_x = self.n_bins * self.patch_frames
        hidden = [int(h) for h in hidden]
        self.encoder = _mlp([self.d_x, *hidden, 2 * self.latent_dim * self.n_sources])
        self.decoder = nn.Sequential(_mlp([self.latent_dim, *hidden[::-1], self.d_x]), nn.Sigmoid())
        nn.init.constant_(self.decoder[0][-1].bias, float(output_bias))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised patches ``(n, n_bins, patch_frames)`` -> means and log-variances ``(n, K, latent_dim)``."""
        out = self.encoder(x.flatten(1)).view(x.shape[0], self.n_sources, 2, self.latent_dim)
        return out[:, :, 0], out[:, :, 1]

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``(n, K, latent_dim)`` -> sources ``(n, K, n_bins, patch_frames)`` (the shared decoder on each)."""
        n = z.shape[0]
        return self.decoder(z.reshape(n * self.n_sources, -1)).view(n, self.n_sources, self.n_bins, -1)

    def separate_patches(self, x: Tensor) -> Tensor:
        """Run-time separation of normalised patches ``(n, n_bins, patch_frames)`` -> ``(n, K, n_bins,
        patch_frames)``: the decoded posterior means, VAE-masked when :attr:`vaem`."""
        sources = self.decode(self.encode(x)[0])
        return vaem_mask(sources, x) if self.vaem else sources

    def _scaled(self, patches: Tensor) -> Tensor:
        scale = patches.flatten(1).amax(dim=1).clamp_min(EPS)[:, None, None]
        return self.separate_patches(patches / scale) * scale[:, None]

    def forward(self, mix_spec: Tensor) -> Tensor:
        return mixture_phase(mix_spec, self.magnitudes(mix_spec.abs()))

    def magnitudes(self, mix_mag: Tensor) -> Tensor:
        """Mixture magnitude ``(n_batch, n_channels, 257, n_frames)`` -> source magnitudes ``(n_batch, K,
        n_channels, 257, n_frames)`` (VAE-masked when :attr:`vaem`)."""
        n_batch, n_channels, n_bins, n_frames = mix_mag.shape
        x = mix_mag[:, :, : self.n_bins].reshape(n_batch * n_channels, self.n_bins, n_frames)
        sources = patch_apply(x, self._scaled, self.patch_frames, self.patch_batch)
        sources = sources.reshape(n_batch, n_channels, self.n_sources, self.n_bins, n_frames).transpose(1, 2)
        top = (mix_mag[:, None, :, self.n_bins :] / self.n_sources).expand(-1, self.n_sources, -1, -1, -1)
        return torch.cat([sources, top], dim=3)
