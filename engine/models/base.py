"""The contract every separation model satisfies (see docs/ARCHITECTURE.md, 'Models')."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

from engine import STEM_NAMES


@runtime_checkable
class SeparationModel(Protocol):
    """A waveform-in, stems-out separator.

    Attributes:
        samplerate: the rate (Hz) the model was trained at; the Separator resamples to it.
        n_channels: audio channels the model expects (2 for every shipped model).
        sources: stem names, in the order of the output's stem axis.
        segment_samples: preferred chunk length for the chunked engine.
    """

    samplerate: int
    n_channels: int
    sources: list[str]
    segment_samples: int

    def __call__(self, mix: Tensor) -> Tensor:
        """``(n_batch, n_channels, n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        ...


def set_audio_format(
    model: object, sources: list[str] | None, samplerate: int, n_channels: int, segment_seconds: float
) -> None:
    """Set the :class:`SeparationModel` attributes every architecture carries (``sources`` default: the four
    standard stems; ``segment_samples`` from ``segment_seconds``)."""
    model.sources = list(sources or STEM_NAMES)  # type: ignore[attr-defined]
    model.samplerate = samplerate  # type: ignore[attr-defined]
    model.n_channels = n_channels  # type: ignore[attr-defined]
    model.segment_samples = int(segment_seconds * samplerate)  # type: ignore[attr-defined]
