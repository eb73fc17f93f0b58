"""A BLSTM spectrogram-mask separator in the Open-Unmix design (Stöter et al., JOSS 2019): the in-house baseline.

One network per target, as Open-Unmix: magnitude STFT cropped to ``max_bin`` -> per-bin input normalisation ->
``fc1`` + batch norm + tanh -> 3-layer bidirectional LSTM -> skip concatenation -> ``fc2`` + BN + ReLU -> ``fc3``
+ BN -> per-bin output scaling -> ReLU -> times the mixture magnitude (a mask over all bins). The separation
step is a ratio mask over the targets' magnitudes, optionally refined by multichannel Wiener EM
(:mod:`engine.dsp.wiener`).

Scaled down from Open-Unmix's defaults (``hidden_size`` 512, ``n_fft`` 4096, ``hop`` 1024, ``max_bin`` for 16 kHz):
the defaults here are the paper's; ``configs/openunmix.json`` holds the CPU-sized training values.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.dsp.stft import stft
from engine.dsp.wiener import synthesize
from engine.models.base import set_audio_format
from engine.separation.registry import register_architecture


class _TargetBLSTM(nn.Module):
    """One Open-Unmix target network: ``(n_batch, n_channels, n_bins, n_frames)`` magnitude -> same-shape magnitude."""

    def __init__(self, n_channels: int, n_bins: int, max_bin: int, hidden_size: int, n_layers: int) -> None:
        super().__init__()
        self.n_bins = n_bins
        self.max_bin = max_bin
        self.hidden_size = hidden_size
        self.input_mean = nn.Parameter(torch.zeros(max_bin))
        self.input_scale = nn.Parameter(torch.ones(max_bin))
        self.fc1 = nn.Linear(n_channels * max_bin, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(
            hidden_size,
            hidden_size // 2,
            num_layers=n_layers,
            bidirectional=True,
            batch_first=True,
            dropout=0.4 if n_layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, n_channels * n_bins, bias=False)
        self.bn3 = nn.BatchNorm1d(n_channels * n_bins)
        self.output_scale = nn.Parameter(torch.ones(n_bins))
        self.output_mean = nn.Parameter(torch.ones(n_bins))

    def forward(self, mag: Tensor) -> Tensor:
        n_batch, n_channels, n_bins, n_frames = mag.shape
        x = mag[:, :, : self.max_bin].permute(0, 3, 1, 2)  # (b, t, c, max_bin)
        x = (x + self.input_mean) * self.input_scale
        x = self.fc1(x.reshape(n_batch * n_frames, -1))
        x = torch.tanh(self.bn1(x)).reshape(n_batch, n_frames, self.hidden_size)
        recurrent, _ = self.lstm(x)
        x = torch.cat([x, recurrent], dim=-1).reshape(n_batch * n_frames, -1)
        x = torch.relu(self.bn2(self.fc2(x)))
        x = self.bn3(self.fc3(x)).reshape(n_batch, n_frames, n_channels, n_bins)
        x = torch.relu(x * self.output_scale + self.output_mean)
        return x.permute(0, 2, 3, 1) * mag


@register_architecture("openunmix")
class OpenUnmix(nn.Module):
    """Open-Unmix-design multi-target separator (one BLSTM mask network per source).

    Args:
        sources: stem names; one network each.
        samplerate, n_channels: audio format the model expects.
        n_fft, hop_length: STFT parameters.
        max_frequency: highest frequency (Hz) the networks look at (Open-Unmix: 16 kHz); masks cover all bins.
        hidden_size, n_layers: BLSTM width (both directions together) and depth.
        segment_seconds: preferred chunk length of the chunked engine.
        wiener_iterations: EM iterations of the multichannel Wiener post-step (0: ratio masks only).
    """

    loss_domain = "magnitude"

    def __init__(
        self,
        sources: list[str] | None = None,
        samplerate: int = 44100,
        n_channels: int = 2,
        n_fft: int = 4096,
        hop_length: int = 1024,
        max_frequency: float = 16000.0,
        hidden_size: int = 512,
        n_layers: int = 3,
        segment_seconds: float = 10.0,
        wiener_iterations: int = 0,
    ) -> None:
        super().__init__()
        set_audio_format(self, sources, samplerate, n_channels, segment_seconds)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.wiener_iterations = wiener_iterations
        n_bins = n_fft // 2 + 1
        max_bin = min(n_bins, int(round(max_frequency * n_fft / samplerate)) + 1)
        self.targets = nn.ModuleList(
            _TargetBLSTM(n_channels, n_bins, max_bin, hidden_size, n_layers) for _ in self.sources
        )

    def estimate(self, mix_mag: Tensor) -> Tensor:
        """Source magnitudes ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` from the mixture magnitude
        ``(n_batch, n_channels, n_bins, n_frames)``."""
        return torch.stack([net(mix_mag) for net in self.targets], dim=1)

    def forward(self, mix: Tensor) -> Tensor:
        """``(n_batch, n_channels, n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        spec = stft(mix, self.n_fft, self.hop_length)
        mags = self.estimate(spec.abs())
        return synthesize(spec, mags, mix.shape[-1], self.n_fft, self.hop_length, self.wiener_iterations)
