"""Training losses and the cheap validation metric (uSDR: whole-excerpt SDR, no BSS Eval projections)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.dsp.stft import stft


def usdr(reference: Tensor, estimate: Tensor, eps: float = 1e-8) -> Tensor:
    """Utterance-level SDR in dB: ``10 log10(sum s^2 / sum (s - s_hat)^2)`` over channels and samples.

    Args:
        reference, estimate: ``(..., n_channels, n_samples)``.

    Returns:
        ``(...)`` SDR per leading index (e.g. per batch item and stem).
    """
    signal = reference.square().sum(dim=(-2, -1))
    error = (reference - estimate).square().sum(dim=(-2, -1))
    return 10.0 * torch.log10((signal + eps) / (error + eps))


def loss_domain(model: nn.Module, setting: str) -> str:
    """``"magnitude"`` or ``"waveform"``: the setting, or the model's own ``loss_domain`` when it is ``"auto"``."""
    domain = getattr(model, "loss_domain", "waveform") if setting == "auto" else setting
    if domain not in ("magnitude", "waveform"):
        raise ValueError(f"unknown loss {setting!r}: use auto, magnitude or waveform")
    if domain == "magnitude" and not hasattr(model, "estimate"):
        raise ValueError(f"{type(model).__name__} has no magnitude estimate; use the waveform loss")
    return domain


def separation_loss(forward: nn.Module, model: nn.Module, mixture: Tensor, stems: Tensor, domain: str) -> Tensor:
    """Loss of ``model`` on one batch.

    Args:
        forward: the module that runs the network: ``model`` itself for the waveform loss, an
            :class:`EstimateWrapper` of it for the magnitude loss (either possibly wrapped by DDP or compiled).
        model: the bare model (for its STFT parameters).
        mixture: ``(n_batch, n_channels, n_samples)``.
        stems: ``(n_batch, n_stems, n_channels, n_samples)`` references in the order of ``model.sources``.
        domain: ``"magnitude"``: MSE between estimated and reference STFT magnitudes (Open-Unmix, MMDenseNet,
            DeepConvSep); ``"waveform"``: L1 between waveforms (Wave-U-Net, WaveNet).

    Returns:
        scalar loss.
    """
    if domain == "magnitude":
        with torch.autocast(mixture.device.type, enabled=False):
            mix_mag = stft(mixture.float(), model.n_fft, model.hop_length).abs()
            target = stft(stems.float(), model.n_fft, model.hop_length).abs()
        return nn.functional.mse_loss(forward(mix_mag).float(), target)
    return nn.functional.l1_loss(forward(mixture).float(), stems)


class EstimateWrapper(nn.Module):
    """Makes ``model.estimate`` the forward of a module, so DDP can wrap the magnitude path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mix_mag: Tensor) -> Tensor:
        return self.model.estimate(mix_mag)
