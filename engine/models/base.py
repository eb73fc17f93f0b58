"""The contract every separation model satisfies (see docs/ARCHITECTURE.md, 'Models')."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
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

    Optional hook (see :func:`prepare_input`): ``needs_references: bool`` and
    ``prepare_input(mix, references) -> ndarray`` for a model whose input is more than the mixture (the oracles).
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


def needs_references(model: object) -> bool:
    """True when ``model`` needs the reference stems (its ``needs_references`` hook attribute; False without)."""
    return bool(getattr(model, "needs_references", False))


def prepare_input(
    model: object, mix: np.ndarray, references: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """The array the chunked engine feeds ``model``, built from the mixture (and the reference stems, if any).

    Calls the model's ``prepare_input(mix, references)`` hook when it has one; otherwise returns ``mix``. The
    Separator, the streaming worker and playback all go through this function, so no caller special-cases a kind
    of model.

    Args:
        mix: ``(n_channels, n_samples)`` float32 at the model's rate and channel count.
        references: reference stems by name, each like ``mix`` (only models with ``needs_references`` use them).

    Returns:
        float32 ``(n_in_channels, n_samples)``: ``mix`` itself for an ordinary model.
    """
    hook = getattr(model, "prepare_input", None)
    if hook is None:
        return mix
    return hook(mix, references)
