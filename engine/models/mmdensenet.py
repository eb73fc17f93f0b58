"""MMDenseNet: multi-scale multi-band DenseNet (Takahashi & Mitsufuji, WASPAA 2017), after the slides' Table 1.

Each band (low half of the bins, high half, and the full band) has its own multi-scale DenseNet (MDenseNet):

    conv (3x4 t x f) -> dense1 -> pool -> dense2 -> pool -> dense3 -> pool -> dense4
    -> t.conv -> concat dense3 -> dense5 -> t.conv -> concat dense2 -> dense6 -> t.conv -> concat dense1 -> dense7

Every dense block is ``L`` layers of BN-ReLU-Conv(3x3) with growth rate ``k``, each layer seeing the concatenation
of the block input and all earlier layers (``x_l = H_l([x_{l-1}, ..., x_0])``); the block outputs the ``k * L``
new feature maps. Pooling is 2x2 average pooling, up-sampling a 2x2 stride-2 transposed convolution. The low and
high band outputs are concatenated along frequency, then with the full-band output along channels, followed by
dense8 and a final 1x1 convolution.

Deviations (stated on purpose): one multi-target network whose last convolution gives a sigmoid mask per
(source, channel) instead of one regression network per target; the input is ``log1p`` of the magnitude; the final
convolution is 1x1 rather than 1x2; the high band's output is projected by a 1x1 convolution to the low band's
channel count so the two can be stacked along frequency (Table 1 gives them 64 and 30 channels). The paper's widths are the constructor defaults; ``configs/mmdensenet.json``
scales them down for 2 CPU cores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat

#: Table 1 of the paper: (growth k, layers L) of dense blocks 1..7 for each band.
PAPER_LOW: list[list[int]] = [[14, 4], [16, 4], [16, 4], [16, 4], [16, 4], [16, 4], [16, 4]]
PAPER_HIGH: list[list[int]] = [[10, 3]] * 7
PAPER_FULL: list[list[int]] = [[6, 2], [6, 2], [6, 2], [6, 4], [6, 2], [6, 2], [6, 2]]


class DenseBlock(nn.Module):
    """``L`` BN-ReLU-Conv3x3 layers with dense connections: ``(n, c_in, f, t)`` -> ``(n, k * L, f, t)``."""

    def __init__(self, in_channels: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(in_channels + i * growth),
                nn.ReLU(inplace=True),
                nn.Conv2d(in_channels + i * growth, growth, 3, padding=1, bias=False),
            )
            for i in range(n_layers)
        )
        self.out_channels = growth * n_layers

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features[1:], dim=1)


class MDenseNet(nn.Module):
    """Multi-scale DenseNet for one band: ``(n, c_in, f, t)`` -> ``(n, out_channels, f, t)``, any ``f, t``.

    ``freq_stride`` > 1 strides the first convolution over frequency and restores the resolution at the end with
    a transposed convolution: the band then costs ``freq_stride`` times less (our speed knob, 1 in the paper).
    """

    def __init__(self, in_channels: int, first_channels: int, blocks: list[list[int]], freq_stride: int = 1) -> None:
        super().__init__()
        if len(blocks) != 7:
            raise ValueError("an MDenseNet band needs 7 (growth, layers) pairs")
        self.freq_stride = freq_stride
        self.first = nn.Sequential(  # "same" padding of the 3x4 (t x f) kernel, done explicitly
            nn.ZeroPad2d((1, 1, 1, 2)),
            nn.Conv2d(in_channels, first_channels, (4, 3), stride=(freq_stride, 1), bias=False),
        )
        (k1, l1), (k2, l2), (k3, l3), (k4, l4), (k5, l5), (k6, l6), (k7, l7) = blocks
        self.dense1 = DenseBlock(first_channels, k1, l1)
        self.dense2 = DenseBlock(self.dense1.out_channels, k2, l2)
        self.dense3 = DenseBlock(self.dense2.out_channels, k3, l3)
        self.dense4 = DenseBlock(self.dense3.out_channels, k4, l4)
        c4 = self.dense4.out_channels
        self.up3 = nn.ConvTranspose2d(c4, c4, 2, stride=2)
        self.dense5 = DenseBlock(c4 + self.dense3.out_channels, k5, l5)
        c5 = self.dense5.out_channels
        self.up2 = nn.ConvTranspose2d(c5, c5, 2, stride=2)
        self.dense6 = DenseBlock(c5 + self.dense2.out_channels, k6, l6)
        c6 = self.dense6.out_channels
        self.up1 = nn.ConvTranspose2d(c6, c6, 2, stride=2)
        self.dense7 = DenseBlock(c6 + self.dense1.out_channels, k7, l7)
        self.out_channels = self.dense7.out_channels
        self.restore = (
            nn.ConvTranspose2d(self.out_channels, self.out_channels, (freq_stride, 1), stride=(freq_stride, 1))
            if freq_stride > 1
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        n_bins, n_frames = x.shape[-2:]
        # three 2x poolings (after the frequency stride) need multiples of 8
        x = F.pad(x, (0, (-n_frames) % 8, 0, (-n_bins) % (8 * self.freq_stride)))
        d1 = self.dense1(self.first(x))
        d2 = self.dense2(F.avg_pool2d(d1, 2))
        d3 = self.dense3(F.avg_pool2d(d2, 2))
        d4 = self.dense4(F.avg_pool2d(d3, 2))
        d5 = self.dense5(torch.cat([self.up3(d4), d3], dim=1))
        d6 = self.dense6(torch.cat([self.up2(d5), d2], dim=1))
        d7 = self.dense7(torch.cat([self.up1(d6), d1], dim=1))
        return self.restore(d7)[..., :n_bins, :n_frames]


@register_architecture("mmdensenet")
class MMDenseNet(Estimator):
    """Multi-target MMDenseNet estimator on the magnitude STFT.

    Args:
        fmt: stems (one mask per source and channel), audio format and STFT.
        band_split: fraction of the bins in the low band (paper: first half).
        first_channels: channels of each band's first convolution (paper: 32).
        low, high, full: 7 ``[growth, layers]`` pairs per band (paper: Table 1).
        final: ``[growth, layers]`` of dense8 (paper: ``[4, 2]``).
        freq_strides: frequency stride of the low, high and full bands' first convolution (paper: ``[1, 1, 1]``).
    """

    pipeline_defaults = {"n_fft": 2048, "hop_length": 1024, "segment_seconds": 6.0}

    def __init__(
        self,
        fmt: SpectrogramFormat,
        band_split: float = 0.5,
        first_channels: int = 32,
        low: list[list[int]] | None = None,
        high: list[list[int]] | None = None,
        full: list[list[int]] | None = None,
        final: list[int] | None = None,
        freq_strides: list[int] | None = None,
    ) -> None:
        super().__init__()
        n_channels, n_bins, self.n_stems = fmt.n_channels, fmt.n_bins, fmt.n_stems
        self.split_bin = max(1, min(n_bins - 1, int(round(band_split * n_bins))))
        s_low, s_high, s_full = freq_strides or [1, 1, 1]
        self.low = MDenseNet(n_channels, first_channels, low or PAPER_LOW, s_low)
        self.high = MDenseNet(n_channels, first_channels, high or PAPER_HIGH, s_high)
        self.full = MDenseNet(n_channels, first_channels, full or PAPER_FULL, s_full)
        # the bands are stacked along frequency, so the high band is projected (1x1) to the low band's width
        self.high_proj = nn.Conv2d(self.high.out_channels, self.low.out_channels, 1, bias=False)
        final_growth, final_layers = final or [4, 2]
        self.dense8 = DenseBlock(self.low.out_channels + self.full.out_channels, final_growth, final_layers)
        self.out = nn.Sequential(
            nn.BatchNorm2d(self.dense8.out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.dense8.out_channels, self.n_stems * n_channels, 1),
        )

    def forward(self, mix_mag: Tensor) -> Tensor:
        """Source magnitudes ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` from the mixture magnitude
        ``(n_batch, n_channels, n_bins, n_frames)``."""
        n_batch, n_channels, n_bins, n_frames = mix_mag.shape
        x = torch.log1p(mix_mag)
        bands = torch.cat([self.low(x[:, :, : self.split_bin]), self.high_proj(self.high(x[:, :, self.split_bin :]))], dim=2)
        features = self.dense8(torch.cat([bands, self.full(x)], dim=1))
        masks = torch.sigmoid(self.out(features))
        masks = masks.reshape(n_batch, self.n_stems, n_channels, n_bins, n_frames)
        return masks * mix_mag.unsqueeze(1)
