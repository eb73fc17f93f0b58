"""WaveNet-based separator (Lluís, Pons & Serra, Interspeech 2019): non-causal dilated stacks regressing sources.

The WaveNet of van den Oord et al. with the causality removed (centred dilated convolutions) and a regression
head instead of the softmax: an input convolution to ``residual_channels``; ``n_stacks`` stacks of
``layers_per_stack`` residual layers with dilations ``1, 2, 4, ..., 2 ** (layers_per_stack - 1)``; each layer is
a dilated convolution (kernel 3) with a gated activation ``tanh(f) * sigmoid(g)``, a 1x1 residual and a 1x1 skip
convolution; the summed skips go through ReLU-conv-ReLU-conv to one waveform per (source, channel).

Paper: 10 layers per stack (dilations up to 512), 3-4 stacks. ``configs/wavenet.json`` scales depth and width down
for 2 CPU cores; the waveform is processed at the corpus rate, in stereo.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.models.base import set_audio_format
from engine.models.catalogue import register_architecture


class _ResidualLayer(nn.Module):
    """Dilated non-causal gated convolution with residual and skip outputs: ``(n, r, s) -> ((n, r, s), (n, k, s))``."""

    def __init__(self, residual_channels: int, skip_channels: int, dilation: int) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(residual_channels, 2 * residual_channels, 3, dilation=dilation, padding=dilation)
        self.residual = nn.Conv1d(residual_channels, residual_channels, 1)
        self.skip = nn.Conv1d(residual_channels, skip_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        filt, gate = self.dilated(x).chunk(2, dim=1)
        h = torch.tanh(filt) * torch.sigmoid(gate)
        return x + self.residual(h), self.skip(h)


@register_architecture("wavenet")
class WaveNetSeparator(nn.Module):
    """Non-causal WaveNet regressing every source waveform.

    Args:
        sources: stem names.
        samplerate, n_channels: audio format.
        n_stacks, layers_per_stack: depth (paper: 3-4 stacks of 10 layers).
        residual_channels, skip_channels: widths.
        segment_seconds: preferred chunk length.
    """

    def __init__(
        self,
        sources: list[str] | None = None,
        samplerate: int = 44100,
        n_channels: int = 2,
        n_stacks: int = 3,
        layers_per_stack: int = 10,
        residual_channels: int = 32,
        skip_channels: int = 64,
        segment_seconds: float = 4.0,
    ) -> None:
        super().__init__()
        set_audio_format(self, sources, samplerate, n_channels, segment_seconds)
        self.input = nn.Conv1d(n_channels, residual_channels, 3, padding=1)
        self.layers = nn.ModuleList(
            _ResidualLayer(residual_channels, skip_channels, 2**i)
            for _ in range(n_stacks)
            for i in range(layers_per_stack)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(skip_channels, skip_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(skip_channels, len(self.sources) * n_channels, 3, padding=1),
        )

    @property
    def receptive_field(self) -> int:
        """Samples of context each output sample depends on (both sides together, plus one)."""
        return 1 + 2 + sum(2 * layer.dilated.dilation[0] for layer in self.layers) + 4

    def forward(self, mix: Tensor) -> Tensor:
        """``(n_batch, n_channels, n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        n_batch, n_channels, n_samples = mix.shape
        x = self.input(mix)
        skips = torch.zeros(())
        for layer in self.layers:
            x, skip = layer(x)
            skips = skips + skip
        return self.head(skips).reshape(n_batch, len(self.sources), n_channels, n_samples)
