"""Loss functions of the training objectives: pure tensor functions, no optimiser, no loop.

- supervised separation (:func:`loss_domain`, :func:`separation_loss`): magnitude MSE for a
  :class:`~engine.models.masking.MaskSeparator` whose estimator works on magnitudes, L1 on real/imag plus L1 on the
  waveform for a complex estimator, L1 on the waveform for a waveform model;
- adversarial (:func:`lsgan_discriminator_loss`, :func:`lsgan_generator_loss`): least-squares GAN (Mao et al. 2017);
- variational (:func:`reparameterise`, :func:`gaussian_kl`): the two pieces of an ELBO with a Gaussian posterior.

The validation metric is not here: it is :func:`engine.evaluate.metrics.usdr`, the one uSDR of the project.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.dsp.stft import istft

#: Loss domains of the supervised objective (``TrainSettings.loss`` also accepts ``"auto"``).
LOSS_DOMAINS = ("magnitude", "complex", "waveform")


def loss_domain(model: nn.Module, setting: str = "auto") -> str:
    """The supervised loss domain of ``model``: ``"magnitude"``, ``"complex"`` or ``"waveform"``.

    ``"auto"`` is the estimator's ``domain`` for a model with an ``estimator`` (a MaskSeparator; ``"magnitude"``
    when the estimator names none), else ``"waveform"``. An explicit spectral setting must match the estimator.
    """
    estimator = getattr(model, "estimator", None)
    own = getattr(estimator, "domain", "magnitude") if estimator is not None else None
    if setting == "auto":
        return own or "waveform"
    if setting not in LOSS_DOMAINS:
        raise ValueError(f"unknown loss {setting!r}: use auto, {', '.join(LOSS_DOMAINS)}")
    if setting != "waveform":
        if own is None:
            raise ValueError(f"{type(model).__name__} has no spectrogram estimator; use the waveform loss")
        if own != setting:
            raise ValueError(f"the estimator of {type(model).__name__} works on {own} spectrograms, not {setting}")
    return setting


def separation_loss(
    model: nn.Module, mixture: Tensor, stems: Tensor, domain: str, network: nn.Module | None = None
) -> Tensor:
    """Supervised loss of ``model`` on one batch.

    Args:
        model: the bare separation model (its STFT: ``model.magnitude`` / ``model.spectrogram``).
        mixture: ``(n_batch, n_channels, n_samples)``.
        stems: ``(n_batch, n_stems, n_channels, n_samples)`` references in the order of ``model.sources``.
        domain: from :func:`loss_domain`. ``"magnitude"``: MSE between ``estimator(|X|)`` and the reference
            magnitudes ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` (Open-Unmix, MMDenseNet, DeepConvSep);
            ``"complex"``: L1 on the real and imaginary parts of the estimated spectrograms plus L1 between their
            inverse STFT and the reference waveforms; ``"waveform"``: L1 between waveforms (Wave-U-Net, WaveNet).
        network: the module to run, possibly wrapped by DDP or ``torch.compile`` (default: ``model.estimator``
            for the spectral domains, ``model`` for the waveform).

    Returns:
        scalar loss (float32).
    """
    if domain == "waveform":
        run = network if network is not None else model
        return nn.functional.l1_loss(run(mixture).float(), stems.float())
    run = network if network is not None else model.estimator
    if domain == "magnitude":
        with torch.autocast(mixture.device.type, enabled=False):
            mix_mag = model.magnitude(mixture.float())
            target = model.magnitude(stems.float())
        return nn.functional.mse_loss(run(mix_mag).float(), target)
    if domain == "complex":
        with torch.autocast(mixture.device.type, enabled=False):
            mix_spec = model.spectrogram(mixture.float())
            target = model.spectrogram(stems.float())
        estimate = run(mix_spec).to(torch.complex64)
        spectral = nn.functional.l1_loss(torch.view_as_real(estimate), torch.view_as_real(target))
        audio = istft(estimate, stems.shape[-1], model.n_fft, model.hop_length)
        return spectral + nn.functional.l1_loss(audio, stems.float())
    raise ValueError(f"unknown loss domain {domain!r}: use one of {', '.join(LOSS_DOMAINS)}")


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Least-squares discriminator loss ``mean((d(real) - 1)^2) + mean(d(fake)^2)``.

    The form of eq. 9-10 of the semi-supervised masking paper (Mao et al. halve both terms: a constant factor).
    Pass ``fake_scores`` computed on detached generator outputs so the generator gets no gradient from it.
    """
    return (real_scores.float() - 1.0).square().mean() + fake_scores.float().square().mean()


def lsgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """Least-squares generator loss ``mean((d(g(x)) - 1)^2)``: the generator pulls the scores towards "real"."""
    return (fake_scores.float() - 1.0).square().mean()


def reparameterise(mean: Tensor, log_variance: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A sample ``mean + exp(log_variance / 2) * eps``, ``eps ~ N(0, I)``, differentiable in both arguments.

    ``eps`` comes from torch's global generator unless ``generator`` is given; the trainer's checkpoints save and
    restore the global one, so a resumed run draws the same ``eps``.
    """
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * log_variance) * noise


def gaussian_kl(mean: Tensor, log_variance: Tensor) -> Tensor:
    """``KL(N(mean, exp(log_variance)) || N(0, I))`` summed over every axis but the first, averaged over it.

    Args:
        mean, log_variance: ``(n_batch, ...)`` posterior parameters.

    Returns:
        scalar: the KL term of the ELBO per example.
    """
    kl = 0.5 * (mean.float().square() + log_variance.float().exp() - 1.0 - log_variance.float())
    return kl.flatten(1).sum(dim=1).mean()
