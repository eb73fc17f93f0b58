"""A BLSTM spectrogram-mask separator in the Open-Unmix design (Stöter et al., JOSS 2019): the in-house baseline.

One network per target, as Open-Unmix: magnitude STFT cropped to ``max_bin`` -> per-bin input normalisation ->
``fc1`` + batch norm + tanh -> 3-layer bidirectional LSTM -> skip concatenation -> ``fc2`` + BN + ReLU -> ``fc3``
+ BN -> per-bin output scaling -> ReLU -> times the mixture magnitude (a mask over all bins). This file is the
estimator only; :class:`~engine.models.masking.MaskSeparator` does the STFT, the ratio masks over the targets'
magnitudes (optionally refined by multichannel Wiener EM) and the inverse STFT.

Scaled down from Open-Unmix's defaults (``hidden_size`` 512, ``n_fft`` 4096, ``hop`` 1024, ``max_bin`` for 16 kHz):
the defaults here are the paper's; ``configs/openunmix.json`` holds the CPU-sized training values.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat


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
class OpenUnmix(Estimator):
    """Open-Unmix-design multi-target estimator (one BLSTM mask network per source).

    Args:
        fmt: stems, audio format and STFT (card keys ``sources``, ``n_fft``, ...: the pipeline's).
        max_frequency: highest frequency (Hz) the networks look at (Open-Unmix: 16 kHz); masks cover all bins.
        hidden_size, n_layers: BLSTM width (both directions together) and depth.
    """

    pipeline_defaults = {"n_fft": 4096, "hop_length": 1024, "segment_seconds": 10.0}

    def __init__(
        self, fmt: SpectrogramFormat, max_frequency: float = 16000.0, hidden_size: int = 512, n_layers: int = 3
    ) -> None:
        super().__init__()
        max_bin = min(fmt.n_bins, int(round(max_frequency * fmt.n_fft / fmt.samplerate)) + 1)
        self.targets = nn.ModuleList(
            _TargetBLSTM(fmt.n_channels, fmt.n_bins, max_bin, hidden_size, n_layers) for _ in fmt.sources
        )

    def forward(self, mix_mag: Tensor) -> Tensor:
        """Source magnitudes ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` from the mixture magnitude
        ``(n_batch, n_channels, n_bins, n_frames)``."""
        return torch.stack([net(mix_mag) for net in self.targets], dim=1)
