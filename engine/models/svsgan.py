"""SVSGAN: singing-voice separation by a mask generator refined by a conditional GAN (papers/003, Chen, Yao & Tan,
"GAN for Audio Source Separation", after Fan et al., "SVSGAN", arXiv:1710.11428).

The generator maps the mixture's magnitude spectrum to a vocal mask; the vocals are the mask times the mixture
magnitude, the accompaniment the rest (the report: "what we get from the generator is a mask over the mixture of
the spectrum"). Two generators, both estimators of the one spectrogram pipeline (:mod:`engine.models.masking`):

- ``svsgan-fc`` (the report's Figure 1): an encoder-decoder of fully connected layers on single frames;
- ``svsgan-rnn`` (Figure 4): the same encoder and decoder with an LSTM between them, carrying context across
  frames.

STFT: a 2048-sample Hann window, hop 1024 (the report's section 1.2; its Figure 1 caption says 4096/2048, the text
2048/1024, which we follow), magnitude input. Monaural, as the report: each channel of a stereo song is separated
on its own. Resynthesis with the mixture's phase (the pipeline's default) or Griffin-Lim (``"phase":
"griffin_lim"`` in the config, :mod:`engine.dsp.griffin_lim`), both selectable.

The conditional discriminator :class:`SvsganDiscriminator` (Figure 5: three hidden layers of 512 units) sees a
(vocal spectrum, mixture spectrum) pair of frames and says whether the vocal spectrum is the real one; it lives
here beside the generators and is trained by ``engine/train/objectives/svsgan.py`` (stage 1: generalised KL,
eq. 1; stage 2: the conditional GAN objective, eq. 3).

The report's figures (the layer widths) are not in its text: the widths here (``hidden``, ``bottleneck``,
``lstm_hidden``) are ours and the configs say so (``paper_model`` holds widths of the size the SVSGAN paper used,
three layers of 1024 units). Input magnitudes are compressed by ``log1p`` before the first layer (our choice: raw
magnitudes span six decades; the report does not say how it scaled them); the mask multiplies the linear
magnitude.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from engine.models.catalogue import register_architecture
from engine.models.masking import Estimator, SpectrogramFormat

#: The report's STFT and stems.
PIPELINE = {"n_fft": 2048, "hop_length": 1024, "sources": ["vocals", "accompaniment"], "segment_seconds": 10.0}


def _mlp(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _SvsganGenerator(Estimator):
    """Common part of the two generators: frames in, a vocal mask per frame out, the two stems' magnitudes.

    ``forward``: mixture magnitude ``(n_batch, n_channels, n_bins, n_frames)`` -> ``(n_batch, 2, n_channels,
    n_bins, n_frames)`` (vocals, accompaniment in the format's source order). :meth:`vocal_magnitude` is what the
    objective trains and the discriminator judges.
    """

    pipeline_defaults: ClassVar[dict[str, Any]] = PIPELINE
    #: marks the estimators the svsgan objective trains (see engine.train.objectives.base.build_for)
    generator = True

    def __init__(self, fmt: SpectrogramFormat, hidden: int = 512, bottleneck: int = 256, max_bin: int | None = None,
                 ) -> None:
        super().__init__()
        if sorted(fmt.sources) != ["accompaniment", "vocals"]:
            raise ValueError(f"SVSGAN separates vocals and accompaniment, not {list(fmt.sources)}")
        self.fmt = fmt
        self.vocals_index = list(fmt.sources).index("vocals")
        self.n_bins = fmt.n_bins
        self.max_bin = int(max_bin or fmt.n_bins)  # bins the network sees (all by default)
        self.encoder = _mlp([self.max_bin, hidden, bottleneck], last_activation=True)
        self.decoder_out = hidden

    def context(self, code: Tensor) -> Tensor:
        """``(n_sequences, n_frames, bottleneck)`` -> the same: identity for single frames, an LSTM for the RNN."""
        return code

    def mask(self, mag: Tensor) -> Tensor:
        """Vocal mask in [0, 1], ``(n_batch, n_channels, n_bins, n_frames)`` like ``mag``."""
        n_batch, n_channels, n_bins, n_frames = mag.shape
        frames = torch.log1p(mag[:, :, : self.max_bin]).permute(0, 1, 3, 2).reshape(n_batch * n_channels, n_frames, -1)
        logits = self.decoder(self.context(self.encoder(frames)))  # (n_sequences, n_frames, n_bins)
        mask = torch.sigmoid(logits).reshape(n_batch, n_channels, n_frames, n_bins).permute(0, 1, 3, 2)
        return mask

    def vocal_magnitude(self, mag: Tensor) -> Tensor:
        """The generator's output G(z): the vocal magnitude ``mask * mag``, same shape as ``mag``."""
        return self.mask(mag) * mag

    def forward(self, mag: Tensor) -> Tensor:
        vocals = self.vocal_magnitude(mag)
        stems = [vocals, (mag - vocals).clamp_min(0.0)]
        if self.vocals_index == 1:
            stems.reverse()
        return torch.stack(stems, dim=1)


@register_architecture("svsgan-fc")
class SvsganEncoderDecoder(_SvsganGenerator):
    """Figure 1: ``bins -> hidden -> bottleneck`` (encoder) ``-> hidden -> bins`` (decoder), ReLU, a sigmoid mask,
    frame by frame."""

    def __init__(self, fmt: SpectrogramFormat, hidden: int = 512, bottleneck: int = 256, max_bin: int | None = None,
                 ) -> None:
        super().__init__(fmt, hidden, bottleneck, max_bin)
        self.decoder = _mlp([bottleneck, hidden, fmt.n_bins], last_activation=False)


@register_architecture("svsgan-rnn")
class SvsganRecurrent(_SvsganGenerator):
    """Figure 4: the encoder, an LSTM of ``lstm_hidden`` units (``lstm_layers``; ``bidirectional`` optional, off
    as the report's causal reading of "across frames"), the decoder."""

    def __init__(self, fmt: SpectrogramFormat, hidden: int = 512, bottleneck: int = 256, max_bin: int | None = None,
                 lstm_hidden: int = 256, lstm_layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__(fmt, hidden, bottleneck, max_bin)
        self.lstm = nn.LSTM(bottleneck, lstm_hidden, num_layers=lstm_layers, batch_first=True,
                            bidirectional=bidirectional)
        width = lstm_hidden * (2 if bidirectional else 1)
        self.decoder = _mlp([width, hidden, fmt.n_bins], last_activation=False)

    def context(self, code: Tensor) -> Tensor:
        return self.lstm(code)[0]


class SvsganDiscriminator(nn.Module):
    """The conditional discriminator D(s, z) (Figure 5): a (vocal spectrum, mixture spectrum) pair of frames ->
    one logit (real vocals: high). ``n_layers`` hidden layers of ``hidden`` units (paper: 3 x 512), LeakyReLU.

    ``forward``: ``vocals``, ``mixture`` ``(..., n_bins, n_frames)`` magnitudes -> ``(..., n_frames)`` logits.
    Inputs are ``log1p``-compressed like the generator's.
    """

    def __init__(self, n_bins: int, hidden: int = 512, n_layers: int = 3, max_bin: int | None = None) -> None:
        super().__init__()
        self.max_bin = int(max_bin or n_bins)
        layers: list[nn.Module] = []
        width = 2 * self.max_bin
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, vocals: Tensor, mixture: Tensor) -> Tensor:
        pair = torch.cat([vocals[..., : self.max_bin, :], mixture[..., : self.max_bin, :]], dim=-2)
        return self.net(torch.log1p(pair).transpose(-1, -2)).squeeze(-1)
