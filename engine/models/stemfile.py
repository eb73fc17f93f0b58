"""``stem-file``: the stems a song already has (a NI STEM file's tracks), played as they are.

Opening a ``.stem.mp4`` gives the mixture (its master track) and its four stems; this model hands the stems to the
playback engine unchanged, through the same path as every model (stem store, mixer, export), so a DJ's stem library
can be remixed and exported without separating anything. Its input is the mixture with the stems stacked after it
(:func:`engine.models.oracle.oracle_input`, as the oracle masks take it); its output is those stems. No weights.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from engine.models.base import set_audio_format
from engine.models.catalogue import register_architecture
from engine.models.oracle import oracle_input


@register_architecture("given_stems")
class GivenStemsModel(nn.Module):
    """Returns the stems stacked after the mixture in its input: the chunked engine gives them back exactly."""

    needs_references = True

    def __init__(self, sources: list[str] | None = None, samplerate: int = 44100, n_channels: int = 2,
                 segment_seconds: float = 30.0) -> None:  # fmt: skip
        super().__init__()
        set_audio_format(self, sources, samplerate, n_channels, segment_seconds)

    def forward(self, mix_and_stems: Tensor) -> Tensor:
        """``(n_batch, n_channels * (1 + n_stems), n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        n_batch, _, n_samples = mix_and_stems.shape
        stacked = mix_and_stems.reshape(n_batch, 1 + len(self.sources), self.n_channels, n_samples)
        return stacked[:, 1:].clone()

    def prepare_input(self, mix: np.ndarray, references: dict[str, np.ndarray] | None) -> np.ndarray:
        """The mixture, then each stem's channels in ``self.sources`` order (see :func:`oracle_input`)."""
        return oracle_input(mix, self.sources, references)
