"""The semi-supervised masking network of Michelashvili, Benaim & Wolf (ICASSP 2019), its discriminators and its
audio front end.

**The network** (their section 4.1, after MUNIT [18]): ``g(a) = a * m(a)`` maps a mixture to its instrumental
part, ``m`` an auto-encoder with outputs in [0, 1]; the vocals are ``a - g(a)``. Encoder C7S1-64, C4S2-128,
C4S2-256, four R256 residual blocks, each convolution followed by instance norm and ReLU. The text lists "two
downsampling layers, C7S1-64 and C4S2-128" and then R256 blocks and two 2x upsamplings; R256 needs 256 input
channels and two upsamplings need two stride-2 layers, so the encoder is MUNIT's content encoder (C7S1-64, C4S2-128,
C4S2-256), the reading under which the printed decoder works. Decoder four R256, u128, u256 (2x nearest-neighbour
upsampling and a 5x5 convolution, channels as printed), C7S1 to one output channel (the paper's C7S1-3 is MUNIT's
RGB image; a mask of a monaural spectrogram has one), each convolution followed by adaptive instance norm (AdaIN
[19]) and ReLU, the last one by a sigmoid. The paper names no style input for AdaIN; as in MUNIT the affine
parameters come from an MLP over a low-dimensional code of the input itself (here the global average of the
encoder's output through a linear layer: MUNIT's separate style encoder would double the encoder's cost on CPU).
Reflect padding as MUNIT. Discriminators (:class:`MultiScaleDiscriminator`, after pix2pixHD [20] and MUNIT):
``n_scales`` copies of C4S2-64, C4S2-128, C4S2-256, C4S2-512 with leaky ReLU 0.2 and a 1x1 convolution to patch
scores, each scale on the input average-pooled once more.

**The front end** (their section 4.2): audio at 20480 Hz, STFT with ``n_fft`` 512 and hop 64, magnitude raised to
0.3, top bin trimmed: 256 bins. The paper's 40 ms window is 819 samples at 20480 Hz, longer than its FFT (512);
no STFT has a window longer than its FFT, so we use the 512-sample Hann window (25 ms) of our STFT. Patches are
256 frames (0.797 s; the paper's 0.825 s clips give its 256 frames with its framing, our centred STFT gives 256
frames from 255 hops). The output: the vocals' compressed magnitude ``a^0.3 (1 - m)`` is decompressed
(``|A| (1 - m)^(1/0.3)``) and given the mixture's phase; the trimmed top bin gets no vocals (their "padding with
zeros"); the inverse STFT gives the vocals at 20480 Hz.

**What we do differently, and why:**

- Stereo: the network is monaural; each channel is separated on its own (channels folded into the batch).
- Overlap: the paper processes non-overlapping segments and names overlap as future work. Here the estimator cuts
  any spectrogram into 256-frame patches (the size it was trained on, so the instance-norm statistics match) with
  half overlap, blended with triangular weights, and the Separator's chunked engine blends its chunks the same
  way. Segment seams (a level step at every 0.8 s) therefore disappear; the cost is about twice the network
  passes of the paper's scheme.
- The song's own rate and the band above 10 kHz: the model's ``samplerate`` is 44100 Hz like every model (the
  Separator resamples songs at other rates to it and back). Inside :meth:`SemisupSeparator.forward` the mixture
  is resampled to 20480 Hz (soxr, HQ), the vocals are estimated there, resampled back, and the accompaniment is
  ``mixture - vocals`` at full band. So everything above 10.24 kHz is assigned to the accompaniment. We chose this
  over splitting the high band with the low band's mask because (1) the two stems still sum to the mixture
  exactly, (2) above 10 kHz a mix holds mostly cymbals, hats and reverb, where a mask extrapolated from the low
  band would leak them into the vocals (the method's strength is its high SIR), and (3) it needs no guess the
  network never learned. The cost is the vocals' own energy above 10 kHz (sibilance, air): ``bench/unpaired.py``
  measures it as the SDR of the true vocals band-limited the same way ("band-limit ceiling" row).

Public API: :class:`SemisupSeparator` (architecture ``"semisup"``, a :class:`~engine.models.masking.MaskSeparator`
whose estimator is :class:`SemisupMaskNet`), :class:`MultiScaleDiscriminator`, :func:`compress`,
:func:`resample`, and the front-end constants. The training objective is ``engine/train/objectives/semisup.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.dsp.stft import istft, stft
from engine.dsp.wiener import mixture_phase, wiener
from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, MaskSeparator, SpectrogramFormat

#: The paper's front end: network rate (Hz), FFT size, hop, power-law exponent, patch size (frames = kept bins).
NETWORK_RATE = 20480
N_FFT = 512
HOP_LENGTH = 64
POWER = 0.3
PATCH_FRAMES = 256
#: Waveform samples of one training clip at :data:`NETWORK_RATE`: 255 hops, i.e. 256 centred STFT frames.
CLIP_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH
#: Floor of magnitudes before the power law (its gradient is infinite at 0).
MAG_FLOOR = 1e-7


def compress(mag: Tensor, power: float = POWER) -> Tensor:
    """``max(mag, floor) ** power``, the paper's power-law compression; same shape."""
    return mag.clamp_min(MAG_FLOOR).pow(power)


def resample(audio: Tensor, rate_in: int, rate_out: int) -> Tensor:
    """Resample ``(..., n_samples)`` along the last axis with soxr (HQ) -> ``(..., round(n * out / in))``.

    soxr, the project's resampler, runs on numpy, so the tensor goes through the CPU; no gradient flows (the
    front end needs none: the network trains on spectrograms at :data:`NETWORK_RATE`).
    """
    if rate_in == rate_out:
        return audio
    shape = audio.shape
    flat = audio.detach().reshape(-1, shape[-1]).float().cpu().numpy()
    n_out = int(round(shape[-1] * rate_out / rate_in))
    out = soxr.resample(np.ascontiguousarray(flat.T), rate_in, rate_out, quality="HQ").T
    fitted = np.zeros((flat.shape[0], n_out), dtype=np.float32)
    length = min(n_out, out.shape[-1])
    fitted[:, :length] = out[:, :length]
    return torch.from_numpy(fitted).to(device=audio.device, dtype=audio.dtype).reshape(*shape[:-1], n_out)


# --- building blocks ----------------------------------------------------------------------------------------------


def _conv(n_in: int, n_out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """A ``kernel x kernel`` convolution with reflect padding (C7S1, C4S2, 3x3, 5x5 of the paper)."""
    padding = (kernel - 1) // 2 if stride == 1 else (kernel - stride) // 2
    return nn.Conv2d(n_in, n_out, kernel, stride, padding=padding, padding_mode="reflect")


class AdaptiveInstanceNorm(nn.Module):
    """AdaIN [19]: instance-normalise, then scale and shift with per-example parameters (the scale is
    ``1 + s``, so a fresh network starts as plain instance norm; MUNIT's MLP outputs the scale itself).

    ``forward(x (n, n_features, h, w), params (n, 2 * n_features))`` -> same shape as ``x``.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.n_features = n_features

    def forward(self, x: Tensor, params: Tensor) -> Tensor:
        scale, shift = params.chunk(2, dim=1)
        normed = F.instance_norm(x, eps=1e-5)
        return normed * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class ResidualBlock(nn.Module):
    """R_k: two 3x3 convolutions with ``k`` filters, instance norm (encoder) or AdaIN (decoder), ReLU between."""

    def __init__(self, n_features: int, adaptive: bool) -> None:
        super().__init__()
        self.conv1 = _conv(n_features, n_features, 3)
        self.conv2 = _conv(n_features, n_features, 3)
        self.adaptive = adaptive
        norm = AdaptiveInstanceNorm if adaptive else (lambda n: nn.InstanceNorm2d(n))
        self.norm1, self.norm2 = norm(n_features), norm(n_features)
        self.n_params = 4 * n_features if adaptive else 0

    def forward(self, x: Tensor, params: Tensor | None = None) -> Tensor:
        """``(n, k, h, w)`` (and AdaIN parameters ``(n, 4 k)``) -> ``(n, k, h, w)``."""
        if self.adaptive:
            assert params is not None
            p1, p2 = params.chunk(2, dim=1)
            y = F.relu(self.norm1(self.conv1(x), p1))
            return x + self.norm2(self.conv2(y), p2)
        return x + self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))


class MaskNetwork(nn.Module):
    """``m``: compressed magnitude patch ``(n, 1, n_bins, n_frames)`` -> mask in [0, 1], same shape.

    ``n_bins`` and ``n_frames`` must be multiples of 4 (two stride-2 layers).

    Args:
        encoder_channels: filters of C7S1, C4S2, C4S2 (paper: 64, 128, 256).
        n_residual: residual blocks in the encoder and in the decoder (paper: 4); their width is the last
            encoder width.
        upsample_channels: filters of the two upsampling blocks (paper: 128, 256).
        style_dim: the code the AdaIN parameters are computed from (MUNIT: 8).
        mlp_dim: width of the MLP from the code to the AdaIN parameters (MUNIT: 256).
    """

    def __init__(
        self,
        encoder_channels: Sequence[int] = (64, 128, 256),
        n_residual: int = 4,
        upsample_channels: Sequence[int] = (128, 256),
        style_dim: int = 8,
        mlp_dim: int = 256,
    ) -> None:
        super().__init__()
        e0, e1, e2 = encoder_channels
        u0, u1 = upsample_channels
        self.encoder = nn.Sequential(
            _conv(1, e0, 7),
            nn.InstanceNorm2d(e0),
            nn.ReLU(),
            _conv(e0, e1, 4, 2),
            nn.InstanceNorm2d(e1),
            nn.ReLU(),
            _conv(e1, e2, 4, 2),
            nn.InstanceNorm2d(e2),
            nn.ReLU(),
        )
        self.encoder_blocks = nn.ModuleList(ResidualBlock(e2, adaptive=False) for _ in range(n_residual))
        self.decoder_blocks = nn.ModuleList(ResidualBlock(e2, adaptive=True) for _ in range(n_residual))
        self.up0, self.norm0 = _conv(e2, u0, 5), AdaptiveInstanceNorm(u0)
        self.up1, self.norm1 = _conv(u0, u1, 5), AdaptiveInstanceNorm(u1)
        self.out = _conv(u1, 1, 7)
        self.param_sizes = [block.n_params for block in self.decoder_blocks] + [2 * u0, 2 * u1]
        self.style = nn.Linear(e2, style_dim)
        self.mlp = nn.Sequential(
            nn.Linear(style_dim, mlp_dim),
            nn.ReLU(),
            nn.Linear(mlp_dim, mlp_dim),
            nn.ReLU(),
            nn.Linear(mlp_dim, sum(self.param_sizes)),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(x)
        for block in self.encoder_blocks:
            h = block(h)
        params = self.mlp(self.style(h.mean(dim=(2, 3)))).split(self.param_sizes, dim=1)
        for block, p in zip(self.decoder_blocks, params, strict=False):
            h = block(h, p)
        h = F.relu(self.norm0(self.up0(F.interpolate(h, scale_factor=2.0, mode="nearest")), params[-2]))
        h = F.relu(self.norm1(self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest")), params[-1]))
        return torch.sigmoid(self.out(h))


class PatchDiscriminator(nn.Module):
    """One scale: C4S2-64, C4S2-128, C4S2-256, C4S2-512, leaky ReLU 0.2, then a 1x1 convolution to scores.

    ``(n, 1, h, w)`` -> patch scores ``(n, 1, h / 16, w / 16)``.
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n_in = 1
        for n_out in channels:
            layers += [_conv(n_in, n_out, 4, 2), nn.LeakyReLU(0.2)]
            n_in = n_out
        layers.append(nn.Conv2d(n_in, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MultiScaleDiscriminator(nn.Module):
    """``n_scales`` :class:`PatchDiscriminator`, scale ``k`` sees the input average-pooled ``k`` times (3x3,
    stride 2), as pix2pixHD [20] / MUNIT.

    ``forward(x (n, 1, n_bins, n_frames))`` -> a list of patch-score maps, one per scale.
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512), n_scales: int = 3) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(channels) for _ in range(n_scales))

    def forward(self, x: Tensor) -> list[Tensor]:
        scores = []
        for index, scale in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            scores.append(scale(x))
        return scores


# --- the estimator and the separator ------------------------------------------------------------------------------


class SemisupMaskNet(Estimator):
    """The estimator: mixture magnitude ``(n_batch, n_channels, n_bins, n_frames)`` (linear, ``n_bins`` 257) ->
    source magnitudes ``(n_batch, 2, n_channels, n_bins, n_frames)`` (vocals, accompaniment, linear).

    Each channel is compressed (:func:`compress`), trimmed to the 256 lower bins, cut into ``patch_frames`` patches
    with half overlap, masked by :meth:`generator`, blended back; vocals ``|A| (1 - m)^(1/p)``, accompaniment
    ``|A| m^(1/p)``, the trimmed top bin all accompaniment.

    Args:
        fmt: the pipeline's format (at the network's rate; ``n_fft`` 512).
        power: the power-law exponent (paper: 0.3).
        patch_frames: frames per patch (paper: 256).
        patch_batch: patches per network call at inference (bounds memory on long inputs).
        network: :class:`MaskNetwork` arguments.
    """

    def __init__(
        self,
        fmt: SpectrogramFormat,
        power: float = POWER,
        patch_frames: int = PATCH_FRAMES,
        patch_batch: int = 8,
        **network: Any,
    ) -> None:
        super().__init__()
        if patch_frames % 4 or (fmt.n_bins - 1) % 4:
            raise ValueError("patch_frames and n_fft / 2 must be multiples of 4")
        self.power = float(power)
        self.patch_frames = int(patch_frames)
        self.patch_batch = int(patch_batch)
        self.mask_net = MaskNetwork(**network)

    def mask(self, x: Tensor) -> Tensor:
        """``m(x)``: compressed, trimmed patches ``(n, 1, 256, n_frames)`` -> mask in [0, 1], same shape."""
        return self.mask_net(x)

    def generator(self, x: Tensor) -> Tensor:
        """``g(x) = x * m(x)``: the instrumental part of compressed patches ``(n, 1, 256, n_frames)``."""
        return x * self.mask_net(x)

    def patch_mask(self, x: Tensor) -> Tensor:
        """The mask of a compressed spectrogram of any length ``(n, 1, 256, n_frames)``, from half-overlapping
        patches blended with triangular weights -> ``(n, 1, 256, n_frames)``."""
        size, hop = self.patch_frames, self.patch_frames // 2
        n_frames = x.shape[-1]
        n_patches = max(1, -(-(n_frames - size) // hop) + 1) if n_frames > size else 1
        total = size + (n_patches - 1) * hop
        mode = "reflect" if total - n_frames < n_frames else "replicate"
        padded = F.pad(x[:, 0], (0, total - n_frames), mode=mode)[:, None]
        patches = padded.unfold(-1, size, hop)  # (n, 1, bins, n_patches, size)
        n = x.shape[0]
        flat = patches.permute(0, 3, 1, 2, 4).reshape(n * n_patches, 1, x.shape[-2], size)
        masks = torch.cat([self.mask(part) for part in flat.split(self.patch_batch)])
        masks = masks.reshape(n, n_patches, x.shape[-2], size)
        ramp = torch.minimum(
            torch.arange(size, device=x.device) + 0.5, size - torch.arange(size, device=x.device) - 0.5
        ).to(x.dtype)
        weights = ramp if n_patches > 1 else torch.ones(size, device=x.device, dtype=x.dtype)
        out = torch.zeros(n, x.shape[-2], total, device=x.device, dtype=x.dtype)
        norm = torch.zeros(total, device=x.device, dtype=x.dtype)
        for k in range(n_patches):
            out[:, :, k * hop : k * hop + size] += masks[:, k] * weights
            norm[k * hop : k * hop + size] += weights
        return (out / norm)[:, None, :, :n_frames]

    def forward(self, mix_mag: Tensor) -> Tensor:
        n_batch, n_channels, n_bins, n_frames = mix_mag.shape
        kept = n_bins - 1
        x = compress(mix_mag[:, :, :kept].reshape(n_batch * n_channels, 1, kept, n_frames), self.power)
        mask = self.patch_mask(x).reshape(n_batch, n_channels, kept, n_frames)
        inverse = 1.0 / self.power
        vocals = mix_mag[:, :, :kept] * (1 - mask).pow(inverse)
        accompaniment = mix_mag[:, :, :kept] * mask.pow(inverse)
        top = mix_mag[:, :, kept:]
        vocals = torch.cat([vocals, torch.zeros_like(top)], dim=2)
        accompaniment = torch.cat([accompaniment, top], dim=2)
        return torch.stack([vocals, accompaniment], dim=1)


@register_architecture("semisup")
class SemisupSeparator(MaskSeparator):
    """The semi-supervised masking network as a SeparationModel: ``(n_batch, n_channels, n_samples)`` at
    ``samplerate`` -> ``(n_batch, 2, n_channels, n_samples)`` (``sources`` order: vocals, accompaniment).

    The mixture is resampled to ``network_rate`` for the STFT and the estimator; the vocals come back at
    ``samplerate`` and the accompaniment is ``mixture - vocals`` (everything above ``network_rate / 2`` goes to
    the accompaniment; see the module docstring). :meth:`spectrogram` / :meth:`magnitude` work at
    ``network_rate`` too, so the supervised objective's magnitude loss trains the same estimator.

    Args:
        sources: ``("vocals", "accompaniment")`` in any order.
        samplerate: the model's outer rate (44100: the rate of the corpus and of most songs).
        n_channels: audio channels (each is separated on its own).
        segment_seconds: the chunk length the Separator uses (the estimator patches inside it).
        wiener_iterations: 0 (the paper: mixture phase) or EM iterations of a 2-source Wiener post-step at
            ``network_rate``.
        network_rate, n_fft, hop_length: the front end (paper: 20480, 512, 64).
        **estimator: :class:`SemisupMaskNet` / :class:`MaskNetwork` arguments.
    """

    def __init__(
        self,
        sources: Sequence[str] = ("vocals", "accompaniment"),
        samplerate: int = 44100,
        n_channels: int = 2,
        segment_seconds: float = 8.0,
        wiener_iterations: int = 0,
        network_rate: int = NETWORK_RATE,
        n_fft: int = N_FFT,
        hop_length: int = HOP_LENGTH,
        **estimator: Any,
    ) -> None:
        if sorted(sources) != ["accompaniment", "vocals"]:
            raise ValueError(f"semisup separates vocals and accompaniment, not {list(sources)}")
        fmt = SpectrogramFormat(
            tuple(sources), int(network_rate), int(n_channels), int(n_fft), int(hop_length)
        )
        super().__init__(SemisupMaskNet(fmt, **estimator), fmt, segment_seconds, wiener_iterations)
        self.samplerate = int(samplerate)
        self.segment_samples = int(segment_seconds * self.samplerate)
        self.network_rate = int(network_rate)
        self.vocals_index = list(sources).index("vocals")

    def spectrogram(self, audio: Tensor) -> Tensor:
        """``(..., n_channels, n_samples)`` at ``samplerate`` -> complex ``(..., n_channels, 257, n_frames)`` of
        the audio resampled to ``network_rate``."""
        return stft(resample(audio, self.samplerate, self.network_rate), self.n_fft, self.hop_length)

    def forward(self, mix: Tensor) -> Tensor:
        n_samples = mix.shape[-1]
        low = resample(mix, self.samplerate, self.network_rate)
        if low.shape[-1] < self.n_fft:  # a very short chunk: zeros after it, cut away below
            low = F.pad(low, (0, self.n_fft - low.shape[-1]))
        spec = stft(low, self.n_fft, self.hop_length)
        magnitudes = self.estimator(spec.abs())
        if self.wiener_iterations > 0:
            specs = wiener(spec, magnitudes, iterations=self.wiener_iterations)
        else:
            specs = mixture_phase(spec, magnitudes)
        vocals_low = istft(specs[:, self.vocals_index], low.shape[-1], self.n_fft, self.hop_length)
        vocals = resample(vocals_low, self.network_rate, self.samplerate)
        if vocals.shape[-1] != n_samples:
            vocals = F.pad(vocals, (0, max(0, n_samples - vocals.shape[-1])))[..., :n_samples]
        vocals = vocals.to(mix.dtype)
        stems = [vocals, mix - vocals]
        return torch.stack(stems if self.vocals_index == 0 else stems[::-1], dim=1)
