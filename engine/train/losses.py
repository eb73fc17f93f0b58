"""Loss functions of the training objectives: pure tensor functions, no optimiser, no loop.

- supervised separation (:func:`loss_domain`, :func:`separation_loss`): magnitude MSE for a
  :class:`~engine.models.masking.MaskSeparator` whose estimator works on magnitudes, L1 on the real part plus L1 on
  the imaginary part plus L1 on the waveform for a complex estimator (the band-split RNN paper's loss), L1 on the
  waveform for a waveform model;
- the same on what is known (:func:`known_stems_loss`, :func:`accompaniment_row`): for a song over a real
  accompaniment only the vocals and the sum of the other stems are known, so the loss compares the vocals estimate
  with the vocals and the sum of the other estimates with the accompaniment;
- adversarial (:func:`lsgan_discriminator_loss`, :func:`lsgan_generator_loss`): least-squares GAN (Mao et al. 2017);
- variational (:func:`reparameterise`, :func:`gaussian_kl`): the two pieces of an ELBO with a Gaussian posterior.

The validation metric is not here: it is :func:`engine.evaluate.metrics.usdr`, the one uSDR of the project.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.dsp.stft import istft

#: Loss domains of the supervised objective (``TrainSettings.loss`` also accepts ``"auto"``).
LOSS_DOMAINS = ("magnitude", "complex", "waveform", "snr")
#: The soft SNR ceiling of :func:`thresholded_snr` (MixIT's 30 dB).
SNR_MAX_DB = 30.0


def thresholded_snr(estimates: Tensor, references: Tensor, mixture: Tensor, snr_max_db: float = SNR_MAX_DB) -> Tensor:
    """Negative SNR with a soft ceiling (Wisdom et al. 2020, MixIT, eq. 5) per example and reference, in dB.

    ``10 log10(|s - s_hat|^2 + tau |s|^2 + tau |x|^2) - 10 log10(|s|^2 + tau |x|^2)``, ``tau = 10^(-snr_max/10)``,
    sums over channels and samples. The first term is MixIT's loss; the ``tau |x|^2`` terms keep a silent
    reference finite (MixIT's rule for silent references) and the subtraction, which has no gradient, only shifts
    the value so that a silent estimate scores 0 dB whatever the reference's level. Why this beside the L1 losses:
    the best gain of a constant mask under L1 is a weighted median of ``s / x`` over bins, which is 0 for a stem
    silent in most bins (sparse stems: silence is an attractor), while under this squared error it is the least
    squares gain ``<s, x> / |x|^2``, positive whenever the stem is in the mixture.

    Args:
        estimates, references: ``(n_batch, n_terms, n_channels, n_samples)``.
        mixture: ``(n_batch, n_channels, n_samples)``.

    Returns:
        ``(n_batch, n_terms)`` float32.
    """
    tau = 10.0 ** (-snr_max_db / 10.0)
    references = references.float()
    power = references.square().flatten(2).sum(dim=2)
    floor = tau * mixture.float().square().flatten(1).sum(dim=1, keepdim=True)
    error = (references - estimates.float()).square().flatten(2).sum(dim=2)
    return 10.0 * torch.log10(error + tau * power + floor) - 10.0 * torch.log10(power + floor)


def loss_domain(model: nn.Module, setting: str = "auto") -> str:
    """The supervised loss domain of ``model``: ``"magnitude"``, ``"complex"``, ``"waveform"`` or ``"snr"``.

    ``"auto"`` is the estimator's ``domain`` for a model with an ``estimator`` (a MaskSeparator; ``"magnitude"``
    when the estimator names none), else ``"waveform"``. An explicit spectral setting must match the estimator.
    """
    estimator = getattr(model, "estimator", None)
    own = getattr(estimator, "domain", "magnitude") if estimator is not None else None
    if setting == "auto":
        return own or "waveform"
    if setting not in LOSS_DOMAINS:
        raise ValueError(f"unknown loss {setting!r}: use auto, {', '.join(LOSS_DOMAINS)}")
    if setting == "snr":
        if own == "magnitude":
            raise ValueError(f"the estimator of {type(model).__name__} estimates magnitudes: the SNR loss needs waveforms")
        return setting
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
            ``"complex"``: mean absolute error of the real parts plus that of the imaginary parts of the estimated
            spectrograms, plus the mean absolute error between their inverse STFT and the reference waveforms
            (Luo & Yu's band-split RNN loss); ``"waveform"``: L1 between waveforms (Wave-U-Net, WaveNet);
            ``"snr"``: :func:`thresholded_snr` of the waveforms (of the inverse STFT for a complex estimator).
        network: the module to run, possibly wrapped by DDP or ``torch.compile`` (default: ``model.estimator``
            for the spectral domains, ``model`` for the waveform).

    Returns:
        scalar loss (float32).
    """
    return term_losses(model, mixture, stems, domain, network=network).mean()


def term_losses(
    model: nn.Module,
    mixture: Tensor,
    references: Tensor,
    domain: str,
    combine: Tensor | None = None,
    network: nn.Module | None = None,
) -> Tensor:
    """The loss of each example and each reference ``(n_batch, n_terms)``, in ``domain`` (see
    :func:`separation_loss`).

    Args:
        references: ``(n_batch, n_terms, n_channels, n_samples)``.
        combine: ``(n_terms, n_stems)``: reference ``i`` is compared with ``sum_j combine[i, j] * estimate_j``
            (a sum of stems, e.g. drums + bass + other against the accompaniment); default: the identity (the
            references are the model's stems, in its order).
    """
    if domain not in LOSS_DOMAINS:
        raise ValueError(f"unknown loss domain {domain!r}: use one of {', '.join(LOSS_DOMAINS)}")

    def mixed(estimates: Tensor) -> Tensor:  # (b, n_stems, ...) -> (b, n_terms, ...)
        if combine is None:
            return estimates
        weights = combine.to(device=estimates.device, dtype=estimates.dtype)
        return torch.einsum("ij,bj...->bi...", weights, estimates)

    if domain == "waveform" or (domain == "snr" and getattr(model, "estimator", None) is None):
        run = network if network is not None else model
        if domain == "snr":
            return thresholded_snr(mixed(run(mixture).float()), references, mixture)
        error = (mixed(run(mixture).float()) - references.float()).abs()
        return error.flatten(2).mean(dim=2)
    run = network if network is not None else model.estimator
    if domain == "magnitude":
        with torch.autocast(mixture.device.type, enabled=False):
            mix_mag = model.magnitude(mixture.float())
            target = model.magnitude(references.float())
        error = (mixed(run(mix_mag).float()) - target).square()
        return error.flatten(2).mean(dim=2)
    with torch.autocast(mixture.device.type, enabled=False):
        mix_spec = model.spectrogram(mixture.float())
        target = model.spectrogram(references.float()) if domain == "complex" else None  # "snr": waveforms only
    estimates = run(mix_spec).to(torch.complex64)
    audio = mixed(istft(estimates, references.shape[-1], model.n_fft, model.hop_length))  # linear: sum after
    if domain == "snr":
        return thresholded_snr(audio, references, mixture)
    parts = (torch.view_as_real(mixed(estimates)) - torch.view_as_real(target)).abs()  # (b, i, c, f, t, re/im)
    spectral = parts.flatten(2, -2).mean(dim=2).sum(dim=-1)  # MAE of the real parts + MAE of the imaginary parts
    return spectral + (audio - references.float()).abs().flatten(2).mean(dim=2)


#: The stems whose sum is the accompaniment of a song over a real recording (mixture - vocals).
ACCOMPANIMENT_PARTS = ("drums", "bass", "other")


def accompaniment_row(sources: list[str] | tuple[str, ...]) -> list[float] | None:
    """Weights over ``sources`` whose sum of estimates is the accompaniment (everything but the vocals), or None.

    Only a model whose stems cover the whole mixture has one: its sources hold ``vocals`` and at least drums,
    bass and other (a 6-stem model's guitar and piano are then part of the accompaniment too). A model that
    separates ``accompaniment`` itself needs no sum (None).
    """
    if "accompaniment" in sources or "vocals" not in sources or not set(ACCOMPANIMENT_PARTS) <= set(sources):
        return None
    return [0.0 if name == "vocals" else 1.0 for name in sources]


def known_stems_loss(
    model: nn.Module,
    mixture: Tensor,
    references: Tensor,
    known: Tensor,
    domain: str,
    accompaniment: list[float] | None = None,
    network: nn.Module | None = None,
) -> Tensor:
    """Supervised loss on what each example knows (songs over real accompaniment beside ordinary songs).

    Each example's loss is the mean of its known terms: every known stem of ``model.sources`` against its
    reference and, where only the sum is known (some accompaniment part unknown), the ``accompaniment``-weighted
    sum of the estimates against the accompaniment reference; the batch's loss is the mean over examples. An
    example that knows every stem therefore has exactly its :func:`separation_loss`. (In the magnitude domain the
    sum of magnitude estimates stands for the accompaniment's magnitude, as the ratio-mask pipeline treats it;
    magnitudes of overlapping sources do not add exactly. The waveform and complex domains are linear: exact.)

    Args:
        references: ``(n_batch, n_stems, n_channels, n_samples)`` in the order of ``model.sources``, followed, when
            ``accompaniment`` is given, by the accompaniment ``(n_batch, 1, ...)`` (mixture - vocals); unknown
            ones may hold anything (the data gives zeros).
        known: ``(n_batch, n_references)`` bool: which references are known.
        accompaniment: :func:`accompaniment_row` of the model's sources (None: no accompaniment term).

    Returns:
        scalar loss (float32).
    """
    n_stems = len(model.sources)
    known = known.to(references.device, torch.bool)
    weights = known[:, :n_stems].float()
    combine = None
    if accompaniment is not None:
        if references.shape[1] != n_stems + 1:
            raise ValueError(f"{n_stems} stems and the accompaniment expected, got {references.shape[1]} references")
        parts = torch.tensor(accompaniment, dtype=torch.bool, device=known.device)
        only_sum = known[:, n_stems] & ~known[:, :n_stems][:, parts].all(dim=1)  # the sum is all that is known
        weights = torch.cat([weights, only_sum.float()[:, None]], dim=1)
        combine = torch.cat([torch.eye(n_stems), torch.tensor([accompaniment])], dim=0)
    elif references.shape[1] != n_stems:
        raise ValueError(f"{n_stems} references expected, got {references.shape[1]}")
    losses = term_losses(model, mixture, references, domain, combine=combine, network=network)
    per_example = (losses * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    return per_example.mean()


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
