"""The one spectrogram-mask pipeline: STFT -> estimator -> ratio masks or multichannel Wiener EM -> inverse STFT.

As Open-Unmix's ``Separator``, the pipeline is written once here and a spectrogram architecture is only its
*estimator*, a network from the mixture's spectrogram to the sources'. An estimator is a subclass of
:class:`Estimator` registered with ``@register_architecture("name")``; ``build_model(name, config)`` then returns a
:class:`MaskSeparator` around it. A card's config keeps one flat set of keys: :data:`PIPELINE_KEYS` go to the
pipeline (and the audio/spectrogram format, :class:`SpectrogramFormat`, to the estimator too), the rest to the
estimator's constructor.

The estimator's ``domain``:

- ``"magnitude"`` (default): mixture magnitude ``(n_batch, n_channels, n_bins, n_frames)`` -> source magnitudes
  ``(n_batch, n_stems, n_channels, n_bins, n_frames)``; the pipeline ratio-masks the mixture with them
  (``wiener_iterations`` > 0 refines that by EM, :func:`engine.dsp.wiener.wiener`).
- ``"complex"``: complex mixture spectrogram -> complex source spectrograms, same shapes; inverted as they are,
  or, when ``wiener_iterations`` > 0, their magnitudes are Wiener-filtered with the mixture like a magnitude
  estimator's (their phases are then dropped: one rule, kept simple).

A MaskSeparator's weights are its estimator's ``state_dict`` (:func:`weights_module`): shipped weights files do not
name the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from engine import STEM_NAMES
from engine.dsp.stft import istft, stft
from engine.dsp.wiener import synthesize
from engine.models.base import set_audio_format

#: Card config keys that belong to the pipeline; every other key is an argument of the estimator.
PIPELINE_KEYS = ("sources", "samplerate", "n_channels", "n_fft", "hop_length", "wiener_iterations", "segment_seconds",
                 "phase", "griffin_lim_iterations")
#: Pipeline values when neither the card nor the estimator's :attr:`Estimator.pipeline_defaults` gives one.
PIPELINE_DEFAULTS: dict[str, Any] = {
    "sources": None,
    "samplerate": 44100,
    "n_channels": 2,
    "n_fft": 4096,
    "hop_length": 1024,
    "wiener_iterations": 0,
    "segment_seconds": 10.0,
    "phase": "mixture",
    "griffin_lim_iterations": 32,
}


@dataclass(frozen=True)
class SpectrogramFormat:
    """What an estimator is built for: the stems, the audio format and the STFT the pipeline computes."""

    sources: tuple[str, ...]
    samplerate: int
    n_channels: int
    n_fft: int
    hop_length: int

    @property
    def n_stems(self) -> int:
        return len(self.sources)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


class Estimator(nn.Module):
    """Base of a spectrogram-mask architecture: the network between the STFT and the masking.

    Subclasses take ``(fmt: SpectrogramFormat, **their own config keys)`` and implement ``forward`` in their
    :attr:`domain` (see the module docstring). :attr:`pipeline_defaults` overrides :data:`PIPELINE_DEFAULTS` for
    this architecture (e.g. its paper's ``n_fft``).
    """

    domain: ClassVar[str] = "magnitude"
    pipeline_defaults: ClassVar[dict[str, Any]] = {}


class MaskSeparator(nn.Module):
    """A :class:`~engine.models.base.SeparationModel` made of the pipeline and one estimator.

    Args:
        estimator: magnitude or complex estimator (``domain`` attribute; ``"magnitude"`` without one).
        fmt: the stems, audio format and STFT (``fmt.n_fft``, ``fmt.hop_length``).
        segment_seconds: preferred chunk length of the chunked engine.
        wiener_iterations: EM iterations of the multichannel Wiener post-step (0: ratio masks only).
        phase: ``"mixture"`` (the masked mixture's phase) or ``"griffin_lim"`` (magnitude estimators: the phase
            rebuilt from the same magnitudes by ``griffin_lim_iterations`` of :mod:`engine.dsp.griffin_lim`).
    """

    def __init__(
        self, estimator: nn.Module, fmt: SpectrogramFormat, segment_seconds: float = 10.0, wiener_iterations: int = 0,
        phase: str = "mixture", griffin_lim_iterations: int = 32,
    ) -> None:
        super().__init__()
        domain = getattr(estimator, "domain", "magnitude")
        if domain not in ("magnitude", "complex"):
            raise ValueError(f"estimator domain must be 'magnitude' or 'complex', not {domain!r}")
        set_audio_format(self, list(fmt.sources), fmt.samplerate, fmt.n_channels, segment_seconds)
        self.estimator = estimator
        self.fmt = fmt
        self.n_fft = fmt.n_fft
        self.hop_length = fmt.hop_length
        self.wiener_iterations = wiener_iterations
        if phase not in ("mixture", "griffin_lim"):
            raise ValueError(f"phase must be 'mixture' or 'griffin_lim', not {phase!r}")
        self.phase, self.griffin_lim_iterations = phase, int(griffin_lim_iterations)

    @classmethod
    def build(cls, estimator_class: type[nn.Module], config: dict[str, Any]) -> MaskSeparator:
        """The pipeline around ``estimator_class``, from one flat card config (see :data:`PIPELINE_KEYS`)."""
        pipeline = {**PIPELINE_DEFAULTS, **getattr(estimator_class, "pipeline_defaults", {})}
        pipeline.update({key: config[key] for key in PIPELINE_KEYS if key in config})
        fmt = SpectrogramFormat(
            tuple(pipeline["sources"] or STEM_NAMES),
            int(pipeline["samplerate"]),
            int(pipeline["n_channels"]),
            int(pipeline["n_fft"]),
            int(pipeline["hop_length"]),
        )
        estimator = estimator_class(fmt, **{k: v for k, v in config.items() if k not in PIPELINE_KEYS})
        return cls(estimator, fmt, float(pipeline["segment_seconds"]), int(pipeline["wiener_iterations"]),
                   str(pipeline["phase"]), int(pipeline["griffin_lim_iterations"]))

    @property
    def domain(self) -> str:
        """The estimator's domain: ``"magnitude"`` or ``"complex"``."""
        return getattr(self.estimator, "domain", "magnitude")

    def spectrogram(self, audio: Tensor) -> Tensor:
        """``(..., n_channels, n_samples)`` -> complex ``(..., n_channels, n_bins, n_frames)``."""
        return stft(audio, self.n_fft, self.hop_length)

    def magnitude(self, audio: Tensor) -> Tensor:
        """``|spectrogram(audio)|`` in float32 with autocast off (the training targets and the estimator's input).

        ``(..., n_channels, n_samples)`` -> ``(..., n_channels, n_bins, n_frames)``.
        """
        with torch.autocast(audio.device.type, enabled=False):
            return self.spectrogram(audio.float()).abs()

    def forward(self, mix: Tensor) -> Tensor:
        """``(n_batch, n_channels, n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``."""
        spec = self.spectrogram(mix)
        if self.domain == "complex":
            estimates = self.estimator(spec)
            if self.wiener_iterations <= 0:
                return istft(estimates, mix.shape[-1], self.n_fft, self.hop_length)
            magnitudes = estimates.abs()  # Wiener EM works from magnitudes: the estimates' phases are dropped
        else:
            magnitudes = self.estimator(spec.abs())
        if self.phase == "griffin_lim":
            from engine.dsp.griffin_lim import synthesize_griffin_lim

            return synthesize_griffin_lim(spec, magnitudes, mix.shape[-1], self.n_fft, self.hop_length,
                                          self.wiener_iterations, self.griffin_lim_iterations)
        return synthesize(spec, magnitudes, mix.shape[-1], self.n_fft, self.hop_length, self.wiener_iterations)


def weights_module(model: nn.Module) -> nn.Module:
    """The module whose ``state_dict`` is a model's weights file: a MaskSeparator's estimator, else the model."""
    return model.estimator if isinstance(model, MaskSeparator) else model
