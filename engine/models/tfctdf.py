"""TFC-TDF U-Net v3 (Kim, Lee & Jung, "Sound Demixing Challenge 2023 Music Demixing Track Technical Report:
TFC-TDF-UNet v3", arXiv 2306.09382): a convolutional U-Net over the complex spectrogram.

A complex-domain estimator (:class:`~engine.models.masking.MaskSeparator` does the STFT and the inverse). The
real and imaginary parts of every channel are the input's ``2 * n_channels`` feature maps over (frames, bins),
cropped to the bins below ``max_frequency`` (the report's ``dim_f``); the network maps them to the same parts of
every stem (a mapping, not a mask) and the bins above the crop are zero, as in the report. The input is divided
by its RMS and the output multiplied by it (our addition, as Demucs and SCNet normalise their input), so the
network's maps are of unit scale whatever the song's level.

- ``first_conv``: a convolution to ``channels`` maps (1x1 in the report);
- encoder, ``n_scales`` times: a TFC-TDF block, then a down-sampling (norm -> activation -> strided 2x2
  convolution: frames and bins both halved), ``growth`` more maps at each scale;
- bottleneck: a TFC-TDF block;
- decoder: up-sampling (norm -> activation -> transposed 2x2 convolution), concatenation with the encoder's maps of
  the same scale, a TFC-TDF block;
- ``final_conv``: 1x1 convolutions (-> activation ->) over the decoder's maps concatenated with the input, to
  ``n_stems * 2 * n_channels`` maps.

A TFC-TDF block (``n_blocks`` units): TFC (norm -> activation -> 3x3 convolution), plus a TDF residual (norm ->
activation -> a fully-connected layer along the bins to ``n_bins / bottleneck`` -> norm -> activation -> back to
``n_bins``; shared by every map and frame), TFC again, plus a 1x1-convolution shortcut of the unit's input.

Scaled down for a CPU (``configs/tfctdf.json``; the report's sizes are its ``paper_model``): fewer maps and scales,
one unit per block, batch norm, and ``patch`` > 1 (our addition, see :class:`TfcTdfUNet`): the first
convolution merges ``patch`` adjacent bins, so the U-Net runs at a quarter or an eighth of the full-resolution cost
that dominates it on a CPU. The report's loss is not used: the supervised objective's complex loss (L1 on the real
and imaginary parts plus waveform L1) trains every complex estimator here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat


def _norm(kind: str, n_maps: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(n_maps, affine=True, eps=1e-5)
    if kind == "batch":
        return nn.BatchNorm2d(n_maps)
    raise ValueError(f"norm must be 'instance' or 'batch', not {kind!r}")


def _act(kind: str) -> nn.Module:
    activations = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}
    if kind not in activations:
        raise ValueError(f"act must be one of {', '.join(activations)}, not {kind!r}")
    return activations[kind]()


class TfcTdfUnit(nn.Module):
    """``shortcut(x) + TFC(y + TDF(y))`` with ``y = TFC(x)``: ``(n_batch, in_maps, n_frames, n_bins)`` ->
    ``(n_batch, maps, n_frames, n_bins)``."""

    def __init__(self, in_maps: int, maps: int, n_bins: int, bottleneck: int, norm: str, act: str) -> None:
        super().__init__()
        hidden_bins = max(1, n_bins // bottleneck)
        self.tfc1 = nn.Sequential(_norm(norm, in_maps), _act(act), nn.Conv2d(in_maps, maps, 3, padding=1, bias=False))
        self.tdf = nn.Sequential(
            _norm(norm, maps), _act(act), nn.Linear(n_bins, hidden_bins, bias=False),
            _norm(norm, maps), _act(act), nn.Linear(hidden_bins, n_bins, bias=False),
        )
        self.tfc2 = nn.Sequential(_norm(norm, maps), _act(act), nn.Conv2d(maps, maps, 3, padding=1, bias=False))
        self.shortcut = nn.Conv2d(in_maps, maps, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.shortcut(x)
        x = self.tfc1(x)
        x = x + self.tdf(x)
        return self.tfc2(x) + skip


def _block(in_maps: int, maps: int, n_bins: int, n_blocks: int, bottleneck: int, norm: str, act: str) -> nn.Module:
    """``n_blocks`` TFC-TDF units in a row (the first one changes ``in_maps`` to ``maps``)."""
    return nn.Sequential(*(TfcTdfUnit(in_maps if i == 0 else maps, maps, n_bins, bottleneck, norm, act)
                           for i in range(n_blocks)))


@register_architecture("tfctdf")
class TfcTdfUNet(Estimator):
    """TFC-TDF U-Net v3 estimator: all stems from one network (as the report's multi-target model).

    Args:
        fmt: stems, audio format and STFT (the pipeline's card keys).
        channels: feature maps at the first scale (the report: 128).
        growth: maps added at each scale (the report: 128).
        n_scales: down-samplings (the report: 5).
        n_blocks: TFC-TDF units per block (the report: 2).
        bottleneck: the TDF's bin reduction factor (the report: 4).
        max_frequency: bins above it are cropped from the input and zero in the output (Hz).
        norm: ``"instance"`` (the report) or ``"batch"``.
        act: ``"gelu"`` (the report), ``"relu"`` or ``"silu"``.
        patch: adjacent bins the first convolution merges into one position (kernel and stride along the bins);
            with ``patch`` > 1 a transposed convolution goes back to full resolution straight into the outputs,
            beside a 1x1 convolution of the input, in place of the report's final 1x1 convolutions (which would
            run at full resolution). 1 is the report's full-resolution U-Net.
    """

    domain = "complex"
    pipeline_defaults = {"n_fft": 8192, "hop_length": 1024, "segment_seconds": 8.0}

    def __init__(
        self,
        fmt: SpectrogramFormat,
        channels: int = 128,
        growth: int = 128,
        n_scales: int = 5,
        n_blocks: int = 2,
        bottleneck: int = 4,
        max_frequency: float = 22050.0,
        norm: str = "instance",
        act: str = "gelu",
        patch: int = 1,
    ) -> None:
        super().__init__()
        factor = patch * 2 ** n_scales
        wanted = min(fmt.n_bins - 1, int(round(max_frequency * fmt.n_fft / fmt.samplerate)))
        if wanted < factor:
            raise ValueError(f"n_fft {fmt.n_fft} has too few bins below {max_frequency} Hz for patch {patch} and "
                             f"{n_scales} scales")
        self.n_kept = wanted // factor * factor  # whole patches, halved n_scales times
        self.n_scales = n_scales
        self.n_stems = fmt.n_stems
        n_in = 2 * fmt.n_channels
        self.first_conv = nn.Conv2d(n_in, channels, (1, patch), stride=(1, patch), bias=False)
        self.encoder = nn.ModuleList()
        self.down = nn.ModuleList()
        maps, n_bins = channels, self.n_kept // patch
        sizes = []
        for _ in range(n_scales):
            self.encoder.append(_block(maps, maps, n_bins, n_blocks, bottleneck, norm, act))
            self.down.append(nn.Sequential(_norm(norm, maps), _act(act),
                                           nn.Conv2d(maps, maps + growth, 2, stride=2, bias=False)))
            sizes.append((maps, n_bins))
            maps, n_bins = maps + growth, n_bins // 2
        self.bottleneck = _block(maps, maps, n_bins, n_blocks, bottleneck, norm, act)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for skip_maps, skip_bins in reversed(sizes):
            self.up.append(nn.Sequential(_norm(norm, maps), _act(act),
                                         nn.ConvTranspose2d(maps, skip_maps, 2, stride=2, bias=False)))
            self.decoder.append(_block(2 * skip_maps, skip_maps, skip_bins, n_blocks, bottleneck, norm, act))
            maps = skip_maps
        n_out = self.n_stems * n_in
        if patch > 1:
            self.final_conv = None
            self.unpatch = nn.ConvTranspose2d(maps, n_out, (1, patch), stride=(1, patch), bias=False)
            self.input_path = nn.Conv2d(n_in, n_out, 1, bias=False)
            nn.init.zeros_(self.input_path.weight)  # starts silent: a random linear copy of the mixture costs more
        else:
            self.final_conv = nn.Sequential(nn.Conv2d(maps + n_in, maps, 1, bias=False), _act(act),
                                            nn.Conv2d(maps, n_out, 1, bias=False))

    def forward(self, mix_spec: Tensor) -> Tensor:
        """Complex source spectrograms ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` from the complex mixture
        spectrogram ``(n_batch, n_channels, n_bins, n_frames)``."""
        n_batch, n_channels, n_bins, n_frames = mix_spec.shape
        factor = 2 ** self.n_scales
        padded = -(-n_frames // factor) * factor
        # (b, c, t, f, re/im) -> maps (b, c * 2, t, f): bins innermost, for the TDF layers along them
        parts = torch.view_as_real(mix_spec.transpose(-1, -2)[..., : self.n_kept])
        x_in = parts.permute(0, 1, 4, 2, 3).reshape(n_batch, 2 * n_channels, n_frames, self.n_kept)
        # one scale per example in, the same out: the mapping's output level follows the input's (as Demucs and
        # SCNet normalise their spectrogram input); the network itself sees a unit-RMS input. The first layer and the
        # paths to the output are linear, so the scale is applied where the maps are smallest.
        scale = x_in.square().mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-5
        x_in = nn.functional.pad(x_in, (0, 0, 0, padded - n_frames))
        x = self.first_conv(x_in) / scale
        skips = []
        for block, down in zip(self.encoder, self.down):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        if self.final_conv is not None:
            x = self.final_conv(torch.cat([x, x_in / scale], dim=1)) * scale
        else:
            x = self.unpatch(x * scale) + self.input_path(x_in)
        x = x[:, :, :n_frames].reshape(n_batch, self.n_stems, n_channels, 2, n_frames, self.n_kept)
        out = x.new_empty(n_batch, self.n_stems, n_channels, n_frames, n_bins, 2, dtype=torch.float32)
        out[..., : self.n_kept, :] = x.permute(0, 1, 2, 4, 5, 3)
        out[..., self.n_kept :, :] = 0.0
        return torch.view_as_complex(out).transpose(-1, -2)
