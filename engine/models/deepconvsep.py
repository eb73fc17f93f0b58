"""DeepConvSep (Chandna, Miron, Janer & Gómez, LVA/ICA 2017): a convolutional encoder-decoder that outputs masks.

After the slides: the encoder is a convolution with ``vertical_filters`` (50) filters spanning ``vertical_kernel``
frequency bins of one frame (timbre), a convolution with ``horizontal_filters`` (30) filters spanning
``horizontal_kernel`` frames of one feature row (temporal cues), and a dense bottleneck of 128 units. The decoder
mirrors it: a dense layer back to the encoder's feature-map size and two transposed convolutions up to the input
size, one map per (source, channel); the final time-frequency masking layer normalises the source maps into ratio
masks (``|y_j| / sum_k |y_k|``) and applies them to the mixture magnitude.

The network sees blocks of ``context_frames`` frames (paper: 30) independently; any length is padded to whole
blocks. Deviations: stereo input (the paper is mono), the mixture magnitude is ``log1p``-compressed at the input,
and ``vertical_stride`` (1 in the paper) strides the first convolution over frequency so the dense layer stays
small enough to ship (``configs/deepconvsep.json``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat


@register_architecture("deepconvsep")
class DeepConvSep(Estimator):
    """Multi-source DeepConvSep estimator on the magnitude STFT (paper STFT: ``n_fft`` 1024, hop 256).

    Args:
        fmt: stems, audio format and STFT.
        context_frames: frames per block the network sees at once (paper: 30).
        vertical_filters, vertical_kernel, vertical_stride: first (frequency) convolution.
        horizontal_filters, horizontal_kernel: second (time) convolution.
        bottleneck: units of the dense bottleneck (paper: 128).
    """

    pipeline_defaults = {"n_fft": 1024, "hop_length": 256, "segment_seconds": 6.0}

    def __init__(
        self,
        fmt: SpectrogramFormat,
        context_frames: int = 30,
        vertical_filters: int = 50,
        vertical_kernel: int = 30,
        vertical_stride: int = 1,
        horizontal_filters: int = 30,
        horizontal_kernel: int = 10,
        bottleneck: int = 128,
    ) -> None:
        super().__init__()
        n_channels, self.n_stems = fmt.n_channels, fmt.n_stems
        self.context_frames = context_frames
        self.n_bins = fmt.n_bins
        self.enc_bins = (self.n_bins - vertical_kernel) // vertical_stride + 1
        self.enc_frames = context_frames - horizontal_kernel + 1
        if self.enc_bins < 1 or self.enc_frames < 1:
            raise ValueError("kernels are larger than the spectrogram block")
        self.feature_shape = (horizontal_filters, self.enc_bins, self.enc_frames)
        n_features = horizontal_filters * self.enc_bins * self.enc_frames
        self.vertical = nn.Conv2d(n_channels, vertical_filters, (vertical_kernel, 1), stride=(vertical_stride, 1))
        self.horizontal = nn.Conv2d(vertical_filters, horizontal_filters, (1, horizontal_kernel))
        self.encode = nn.Linear(n_features, bottleneck)
        self.decode = nn.Linear(bottleneck, n_features)
        self.unhorizontal = nn.ConvTranspose2d(horizontal_filters, vertical_filters, (1, horizontal_kernel))
        self.unvertical = nn.ConvTranspose2d(
            vertical_filters, self.n_stems * n_channels, (vertical_kernel, 1), stride=(vertical_stride, 1)
        )

    def forward(self, mix_mag: Tensor) -> Tensor:
        """Source magnitudes ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` from the mixture magnitude
        ``(n_batch, n_channels, n_bins, n_frames)``."""
        n_batch, n_channels, n_bins, n_frames = mix_mag.shape
        block = self.context_frames
        n_blocks = -(-n_frames // block)
        x = F.pad(torch.log1p(mix_mag), (0, n_blocks * block - n_frames))
        # (b, c, f, blocks * block) -> (b * blocks, c, f, block)
        x = x.reshape(n_batch, n_channels, n_bins, n_blocks, block).permute(0, 3, 1, 2, 4)
        x = x.reshape(n_batch * n_blocks, n_channels, n_bins, block)
        h = self.horizontal(torch.relu(self.vertical(x)))
        z = self.encode(h.flatten(1))
        h = self.decode(z).reshape(-1, *self.feature_shape)
        y = self.unvertical(torch.relu(self.unhorizontal(h)))
        y = F.pad(y, (0, 0, 0, n_bins - y.shape[-2]))  # the strided inverse can stop short of the last bins
        y = F.softplus(y).reshape(n_batch, n_blocks, self.n_stems, n_channels, n_bins, block)
        y = y.permute(0, 2, 3, 4, 1, 5).reshape(n_batch, self.n_stems, n_channels, n_bins, -1)
        y = y[..., :n_frames] + 1e-6  # time-frequency masking layer: ratio of the source maps
        masks = y / y.sum(dim=1, keepdim=True)
        return masks * mix_mag.unsqueeze(1)
