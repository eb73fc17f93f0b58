"""Band-split RNN (Luo & Yu, "Music Source Separation with Band-split RNN", IEEE/ACM TASLP 2023, arXiv 2209.15174).

A complex-domain estimator (:class:`~engine.models.masking.MaskSeparator` does the STFT and the inverse):

1. **Band split**: the complex mixture spectrogram is cut into ``n_bands`` subbands along frequency (the paper's
   bandwidths: 100 Hz below 1 kHz, 250 Hz up to 4 kHz, 500 Hz up to 8 kHz, 1 kHz up to 16 kHz, 2 kHz up to
   20 kHz, the rest one band; :func:`band_edges` rounds them to whole bins of our ``n_fft``). Each band's real and
   imaginary parts of every channel are one vector per frame, layer-normalised and projected by the band's own
   fully-connected layer to ``n_features`` (N): a ``(n_bands, n_frames, N)`` tensor.
2. **Band and sequence modelling**: ``n_layers`` pairs of residual RNN layers, interleaved: a sequence-level one
   (a BLSTM along time, shared by every band) then a band-level one (a BLSTM across the bands, shared by every
   frame); each is norm -> BLSTM -> FC back to N, plus its input.
3. **Mask estimation**: per band, norm -> MLP (one ``tanh`` hidden layer) -> GLU, giving the real and imaginary
   parts of a complex mask for every bin and channel of the band; the source is mask x mixture (complex product).

Departures from the paper, all for a CPU (``configs/bsrnn.json``'s notes say the same, with the measurements):

- **one shared trunk** (band split + RNN stack) for all stems with a mask head per stem, where the paper trains
  one whole model per target: four times less trunk work per song;
- smaller sizes (N, BLSTM width, number of layer pairs, mask-MLP width: the paper has N = 128, 12 layer pairs,
  a BLSTM of 256 units per direction, a hidden layer of 4N), a GRU option (``rnn="gru"``; the paper uses LSTMs;
  on our CPU torch's GRU was not faster), and, in the config, a 4096-sample window with a 2048 hop where the paper
  has 2048/512 (the architecture works for any STFT);
- layer normalisation over the N features of each (band, frame) before each RNN where the paper uses group
  normalisation: the statistics then never depend on the chunk length the chunked engine chose;
- bands of equal width are computed together (grouped matrix products), which is only a speed-up of the same maths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat

#: The paper's band plan: (bandwidth, up to this frequency), both in Hz; what is left above the last is one band.
PAPER_BANDS: tuple[tuple[float, float], ...] = (
    (100.0, 1000.0),
    (250.0, 4000.0),
    (500.0, 8000.0),
    (1000.0, 16000.0),
    (2000.0, 20000.0),
)


def band_edges(
    samplerate: int, n_fft: int, plan: Sequence[Sequence[float]] = PAPER_BANDS
) -> list[tuple[int, int]]:
    """Subbands ``[(first_bin, end_bin), ...]`` that tile all ``n_fft // 2 + 1`` bins, from a band plan.

    Each ``(bandwidth_hz, up_to_hz)`` entry splits its range (from the previous entry's end to the bin of
    ``up_to_hz``) into ``round(range / width)`` bands of ``width = round(bandwidth_hz * n_fft / samplerate)`` bins
    (at least one), the last of them taking the rounding remainder, so every range ends where the paper's does;
    what remains above the last entry is one band.
    """
    n_bins = n_fft // 2 + 1
    edges: list[tuple[int, int]] = []
    start = 0
    for bandwidth, up_to in plan:
        width = max(1, int(round(bandwidth * n_fft / samplerate)))
        stop = min(n_bins, int(round(up_to * n_fft / samplerate)))
        if stop <= start:
            continue
        count = max(1, int(round((stop - start) / width)))
        for index in range(count):
            edges.append((start + index * width, stop if index == count - 1 else start + (index + 1) * width))
        start = stop
    if start < n_bins:
        edges.append((start, n_bins))
    return edges


def _width_groups(edges: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Runs of consecutive bands of one width: ``[(first_bin, n_bands, width), ...]``."""
    groups: list[tuple[int, int, int]] = []
    for start, stop in edges:
        width = stop - start
        if groups and groups[-1][2] == width:
            first, count, _ = groups[-1]
            groups[-1] = (first, count + 1, width)
        else:
            groups.append((start, 1, width))
    return groups


class GroupedLinear(nn.Module):
    """One fully-connected layer per band, for a run of ``n_bands`` bands of one width, as one batched product.

    ``(n_bands, n_rows, in_features)`` -> ``(n_bands, n_rows, out_features)`` (band ``k`` uses its own weights).
    ``wide=True`` (for outputs much wider than inputs) multiplies by the weights with the bias appended as one more
    input row instead of first broadcasting the bias into the output: one pass less over a large output.
    """

    def __init__(self, n_bands: int, in_features: int, out_features: int, wide: bool = False) -> None:
        super().__init__()
        bound = in_features ** -0.5  # nn.Linear's default initialisation, band by band
        self.weight = nn.Parameter(torch.empty(n_bands, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_bands, 1, out_features).uniform_(-bound, bound))
        self.wide = wide

    def forward(self, x: Tensor) -> Tensor:
        if self.wide:
            ones = x.new_ones(*x.shape[:-1], 1)
            return torch.bmm(torch.cat([x, ones], dim=-1), torch.cat([self.weight, self.bias], dim=1))
        return torch.baddbmm(self.bias, x, self.weight)


def _normalise(x: Tensor) -> Tensor:
    """Layer normalisation over the last axis without gain and offset: a per-band gain and offset before a per-band
    linear layer is the same function class as the linear layer alone, so they are folded into it."""
    return nn.functional.layer_norm(x, x.shape[-1:])


class ResidualRNN(nn.Module):
    """``x + FC(RNN(norm(x)))`` over sequences, shapes unchanged.

    Args:
        n_features: N, the features of each (band, frame).
        hidden_size: units of the RNN in each direction.
        rnn: ``"lstm"`` (the paper) or ``"gru"``.
        batch_first: ``(n_sequences, n_steps, N)`` when True, ``(n_steps, n_sequences, N)`` when False.
    """

    def __init__(self, n_features: int, hidden_size: int, rnn: str = "lstm", batch_first: bool = True) -> None:
        super().__init__()
        if rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn must be 'lstm' or 'gru', not {rnn!r}")
        self.norm = nn.LayerNorm(n_features)
        cell = nn.LSTM if rnn == "lstm" else nn.GRU
        self.rnn = cell(n_features, hidden_size, batch_first=batch_first, bidirectional=True)
        self.fc = nn.Linear(2 * hidden_size, n_features)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.rnn(self.norm(x))
        return x + self.fc(y)


def _bands(spec: Tensor, first: int, count: int, width: int) -> Tensor:
    """Complex ``(n_batch, n_channels, n_bins, n_frames)`` -> real ``(count, n_batch * n_frames, n_channels * width
    * 2)``: each band's real and imaginary parts of every channel, one row per frame (a copy).

    Reads fastest from the layout :func:`torch.stft` returns (bins innermost), as each (channel, frame) of a band is
    then ``width * 2`` contiguous floats.
    """
    n_batch, n_channels, _, n_frames = spec.shape
    parts = torch.view_as_real(spec.transpose(-1, -2)[..., first : first + count * width])  # (b, c, t, count*w, 2)
    parts = parts.reshape(n_batch, n_channels, n_frames, count, width, 2).permute(3, 0, 2, 1, 4, 5)
    return parts.reshape(count, n_batch * n_frames, n_channels * width * 2)


class BandSplit(nn.Module):
    """Band features: per band, real/imag of every channel -> layer norm -> the band's FC to N.

    ``[(count, n_rows, width * n_channels * 2) per run of equal bands]`` -> ``(n_bands, n_rows, n_features)``.
    """

    def __init__(self, groups: Sequence[tuple[int, int, int]], n_channels: int, n_features: int) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(GroupedLinear(n, 2 * n_channels * w, n_features) for _, n, w in groups)

    def forward(self, bands: Sequence[Tensor]) -> Tensor:
        return torch.cat([fc(_normalise(band)) for band, fc in zip(bands, self.fcs)], dim=0)


class MaskHead(nn.Module):
    """One stem's complex masks: per band, norm -> FC -> tanh -> FC -> GLU.

    ``(n_bands, n_rows, n_features)`` (normalised) -> ``[(count, n_rows, width * n_channels) complex per run]``.
    """

    def __init__(self, groups: Sequence[tuple[int, int, int]], n_channels: int, n_features: int, hidden: int) -> None:
        super().__init__()
        self.counts = [n for _, n, _ in groups]
        self.hidden = nn.ModuleList(GroupedLinear(n, n_features, hidden) for _, n, _ in groups)
        self.out = nn.ModuleList(GroupedLinear(n, hidden, 2 * 2 * n_channels * w, wide=True) for _, n, w in groups)

    def forward(self, z: Tensor) -> list[Tensor]:
        masks = []
        for part, hidden, out in zip(z.split(self.counts, dim=0), self.hidden, self.out):
            mask = nn.functional.glu(out(torch.tanh(hidden(part))), dim=-1).float()
            masks.append(torch.view_as_complex(mask.reshape(*mask.shape[:2], -1, 2)))
        return masks


@register_architecture("bsrnn")
class BandSplitRNN(Estimator):
    """Band-split RNN estimator with a shared trunk and one complex-mask head per stem.

    Args:
        fmt: stems, audio format and STFT (the pipeline's card keys).
        n_features: N, the feature size of every band.
        hidden_size: units of each BLSTM/BGRU per direction.
        n_layers: pairs of (sequence-level, band-level) residual RNN layers.
        mask_hidden: width of the hidden layer of each band's mask MLP (the paper: 4N).
        rnn: ``"lstm"`` (the paper) or ``"gru"``.
        bands: the band plan, ``[[bandwidth_hz, up_to_hz], ...]`` (default: the paper's, :data:`PAPER_BANDS`).
    """

    domain = "complex"
    pipeline_defaults = {"n_fft": 2048, "hop_length": 512, "segment_seconds": 6.0}

    def __init__(
        self,
        fmt: SpectrogramFormat,
        n_features: int = 128,
        hidden_size: int = 256,
        n_layers: int = 12,
        mask_hidden: int = 512,
        rnn: str = "lstm",
        bands: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.edges = band_edges(fmt.samplerate, fmt.n_fft, bands if bands is not None else PAPER_BANDS)
        self.groups = _width_groups(self.edges)
        self.n_bands = len(self.edges)
        self.split = BandSplit(self.groups, fmt.n_channels, n_features)
        self.layers = nn.ModuleList()
        for _ in range(n_layers):
            self.layers.append(ResidualRNN(n_features, hidden_size, rnn, batch_first=True))  # along time, per band
            self.layers.append(ResidualRNN(n_features, hidden_size, rnn, batch_first=False))  # across bands, per frame
        self.heads = nn.ModuleList(MaskHead(self.groups, fmt.n_channels, n_features, mask_hidden) for _ in fmt.sources)

    def forward(self, mix_spec: Tensor) -> Tensor:
        """Complex source spectrograms ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` from the complex mixture
        spectrogram ``(n_batch, n_channels, n_bins, n_frames)``."""
        n_batch, n_channels, n_bins, n_frames = mix_spec.shape
        bands = [_bands(mix_spec, first, count, width) for first, count, width in self.groups]
        z = self.split(bands)  # (n_bands, n_batch * n_frames, n_features): band-major, frames as rows
        n_features = z.shape[-1]
        for index in range(0, len(self.layers), 2):
            along_time = z.reshape(self.n_bands * n_batch, n_frames, n_features)  # a view: no copy
            z = self.layers[index](along_time).reshape(self.n_bands, n_batch * n_frames, n_features)
            z = self.layers[index + 1](z)  # time-major across the bands: (n_bands, rows, n_features) as it is
        z = _normalise(z)
        # Frames outside, bins inside (the memory layout torch.stft returns and torch.istft reads without a copy).
        mix_bands = [torch.view_as_complex(band.reshape(*band.shape[:2], -1, 2)) for band in bands]
        if torch.is_grad_enabled():  # training: concatenated (in-place writes would copy the gradient per band)
            stems = []
            for head in self.heads:
                parts = [(mask * mix_band).reshape(count, n_batch, n_frames, n_channels, width).permute(1, 3, 2, 0, 4)
                         .reshape(n_batch, n_channels, n_frames, count * width)
                         for (_, count, width), mask, mix_band in zip(self.groups, head(z), mix_bands)]
                stems.append(torch.cat(parts, dim=-1))
            return torch.stack(stems, dim=1).transpose(-1, -2)
        out = mix_spec.new_empty(n_batch, len(self.heads), n_channels, n_frames, n_bins)
        for stem, head in enumerate(self.heads):  # inference: each band written once into place
            for (first, count, width), mask, mix_band in zip(self.groups, head(z), mix_bands):
                target = out[:, stem, :, :, first : first + count * width]  # (b, c, t, count * w)
                target = target.reshape(n_batch, n_channels, n_frames, count, width).permute(3, 0, 2, 1, 4)
                shape = (count, n_batch, n_frames, n_channels, width)
                torch.mul(mask.reshape(shape), mix_band.reshape(shape), out=target)
        return out.transpose(-1, -2)
