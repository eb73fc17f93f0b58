"""Reference models that need no training: ``identity`` (every stem is the input) and ``tiny`` (random init).

Both exist for tests and for checking the engine end to end; neither separates anything.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.models.base import set_audio_format
from engine.models.catalogue import register_architecture


@register_architecture("identity")
class IdentityModel(nn.Module):
    """Returns the mixture unchanged as every stem: the chunked engine must give back its input exactly."""

    def __init__(
        self,
        sources: list[str] | None = None,
        samplerate: int = 44100,
        n_channels: int = 2,
        segment_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        set_audio_format(self, sources, samplerate, n_channels, segment_seconds)

    def forward(self, mix: Tensor) -> Tensor:
        """``(n_batch, n_channels, n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        return mix.unsqueeze(1).expand(-1, len(self.sources), -1, -1).clone()


@register_architecture("tiny")
class TinyConvModel(nn.Module):
    """A two-layer waveform convnet with random weights: fast, deterministic, shaped like a real model.

    Output stems are a learned (here random) per-stem filtering of the mixture; used by tests that need a model
    whose output differs from its input and depends on neighbouring samples (receptive field ``2 * kernel - 1``).
    """

    def __init__(
        self,
        sources: list[str] | None = None,
        samplerate: int = 44100,
        n_channels: int = 2,
        hidden: int = 8,
        kernel_size: int = 9,
        segment_seconds: float = 4.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        set_audio_format(self, sources, samplerate, n_channels, segment_seconds)
        generator = torch.Generator().manual_seed(seed)
        pad = kernel_size // 2
        self.encode = nn.Conv1d(n_channels, hidden, kernel_size, padding=pad)
        self.decode = nn.Conv1d(hidden, n_channels * len(self.sources), kernel_size, padding=pad)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)

    def forward(self, mix: Tensor) -> Tensor:
        """``(n_batch, n_channels, n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        n_batch, _, n_samples = mix.shape
        hidden = torch.tanh(self.encode(mix))
        out = self.decode(hidden)
        return out.reshape(n_batch, len(self.sources), self.n_channels, n_samples)
