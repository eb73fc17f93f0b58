"""Wave-U-Net (Stoller, Ewert & Dixon, ISMIR 2018): a waveform encoder/decoder with skip connections.

Encoder: ``n_layers`` down-sampling blocks, block ``i`` (1-based) is a 1-D convolution of kernel 15 with
``growth * i`` filters and LeakyReLU, whose output is kept for the skip connection, then decimation by 2
(every other sample dropped). Bottleneck: a convolution with ``growth * (n_layers + 1)`` filters. Decoder: for
each level, linear-interpolation up-sampling by 2, concatenation with the encoder's features of that level, a
convolution of kernel 5 and LeakyReLU. The last features are concatenated with the input mixture and a 1x1
convolution gives the sources; with ``difference_output`` the last source is the mixture minus the others (the
paper's "difference output layer", which makes the estimates sum to the mixture).

Deviations: "same" padding with the input zero-padded to a multiple of ``2 ** n_layers`` (the paper uses valid
convolutions and extra input context), stereo at the corpus rate, and by default (paper) 12 layers of 24 filters;
``configs/waveunet.json`` scales it down for 2 CPU cores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.base import set_audio_format
from engine.models.catalogue import register_architecture


@register_architecture("waveunet")
class WaveUNet(nn.Module):
    """Multi-source Wave-U-Net.

    Args:
        sources: stem names.
        samplerate, n_channels: audio format.
        n_layers: down-sampling (and up-sampling) blocks (paper: 12).
        growth: extra filters per level (paper: 24).
        down_kernel, up_kernel: kernel sizes of the encoder and decoder convolutions (paper: 15 and 5).
        difference_output: last source = mixture - sum of the others.
        segment_seconds: preferred chunk length.
    """

    def __init__(
        self,
        sources: list[str] | None = None,
        samplerate: int = 44100,
        n_channels: int = 2,
        n_layers: int = 12,
        growth: int = 24,
        down_kernel: int = 15,
        up_kernel: int = 5,
        difference_output: bool = True,
        segment_seconds: float = 6.0,
    ) -> None:
        super().__init__()
        set_audio_format(self, sources, samplerate, n_channels, segment_seconds)
        self.n_layers = n_layers
        self.difference_output = difference_output
        self.down = nn.ModuleList()
        in_channels = n_channels
        for i in range(1, n_layers + 1):
            self.down.append(nn.Conv1d(in_channels, growth * i, down_kernel, padding=down_kernel // 2))
            in_channels = growth * i
        self.bottleneck = nn.Conv1d(in_channels, growth * (n_layers + 1), down_kernel, padding=down_kernel // 2)
        self.up = nn.ModuleList()
        in_channels = growth * (n_layers + 1)
        for i in range(n_layers, 0, -1):
            self.up.append(nn.Conv1d(in_channels + growth * i, growth * i, up_kernel, padding=up_kernel // 2))
            in_channels = growth * i
        n_outputs = len(self.sources) - 1 if difference_output else len(self.sources)
        self.out = nn.Conv1d(in_channels + n_channels, n_outputs * n_channels, 1)

    def forward(self, mix: Tensor) -> Tensor:
        """``(n_batch, n_channels, n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        n_batch, n_channels, n_samples = mix.shape
        x = F.pad(mix, (0, (-n_samples) % (2**self.n_layers)))
        padded = x
        skips = []
        for conv in self.down:
            x = F.leaky_relu(conv(x), 0.2)
            skips.append(x)
            x = x[..., ::2]
        x = F.leaky_relu(self.bottleneck(x), 0.2)
        for conv, skip in zip(self.up, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2, mode="linear", align_corners=False)
            x = F.leaky_relu(conv(torch.cat([x, skip], dim=1)), 0.2)
        out = self.out(torch.cat([x, padded], dim=1))[..., :n_samples]
        out = out.reshape(n_batch, -1, n_channels, n_samples)
        if self.difference_output:
            out = torch.cat([out, (mix - out.sum(dim=1)).unsqueeze(1)], dim=1)
        return out
