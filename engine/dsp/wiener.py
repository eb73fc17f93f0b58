"""Multichannel Wiener filtering of source spectrogram estimates (pure tensor functions, no model).

The idea is Open-Unmix's / norbert's: every source ``j`` is a local Gaussian model with a power spectral density
``v_j(f, t)`` (one value per time-frequency bin, shared by the channels) and a spatial covariance matrix ``R_j(f)``
(``n_channels x n_channels``, constant over the frames of one window). Given the mixture STFT ``x``, the posterior
mean of each source is ``y_j = v_j R_j C_x^{-1} x`` with ``C_x = sum_j v_j R_j``; expectation-maximisation alternates
that filtering (E) with re-estimating ``v_j, R_j`` from the filtered sources (M).

The EM runs on windows of ``window_frames`` frames, so memory stays bounded on songs of any length.

Shapes follow the project convention: a mixture spectrogram is ``(n_batch, n_channels, n_bins, n_frames)``
complex, source estimates are ``(n_batch, n_stems, n_channels, n_bins, n_frames)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.dsp.stft import istft


def softmask(mix_spec: Tensor, source_mags: Tensor, power: float = 1.0, eps: float = 1e-8) -> Tensor:
    """Ratio-mask the mixture with the sources' magnitudes: ``y_j = |s_j|^p / sum_k |s_k|^p * x``.

    Args:
        mix_spec: ``(n_batch, n_channels, n_bins, n_frames)`` complex.
        source_mags: ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` non-negative.
        power: exponent applied to the magnitudes before normalising.

    Returns:
        ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` complex; the estimates sum to the mixture.
    """
    weights = source_mags.clamp_min(0)
    if power != 1.0:
        weights = weights.pow(power)
    masks = weights / (weights.sum(dim=1, keepdim=True) + eps)
    if not mix_spec.is_complex() or masks.dtype != mix_spec.real.dtype:
        return masks * mix_spec.unsqueeze(1)
    # A real mask times the (real, imaginary) pairs: half the work of promoting the mask to complex (the same
    # products, so the same result to the bit), and no complex copy of the masks.
    pairs = masks.unsqueeze(-1) * torch.view_as_real(mix_spec).unsqueeze(1)
    return torch.view_as_complex(pairs)


def mixture_phase(mix_spec: Tensor, source_mags: Tensor) -> Tensor:
    """Give each source magnitude the mixture's phase: ``y_j = |s_j| * x / |x|``.

    Shapes as :func:`softmask`.
    """
    phase = torch.polar(torch.ones_like(mix_spec.real), torch.angle(mix_spec))
    return source_mags * phase.unsqueeze(1)


def _invert(matrix: Tensor, eps: float) -> Tensor:
    """Inverse of ``(..., n_channels, n_channels)`` complex matrices with ``eps`` added to the diagonal."""
    n_channels = matrix.shape[-1]
    eye = torch.eye(n_channels, dtype=matrix.dtype, device=matrix.device)
    matrix = matrix + eps * eye
    if n_channels == 1:
        return 1.0 / matrix
    if n_channels == 2:  # closed form: faster than linalg.inv and stable for the 2x2 case
        a, b = matrix[..., 0, 0], matrix[..., 0, 1]
        c, d = matrix[..., 1, 0], matrix[..., 1, 1]
        inv_det = 1.0 / (a * d - b * c)
        row0 = torch.stack([d, -b], dim=-1)
        row1 = torch.stack([-c, a], dim=-1)
        return torch.stack([row0, row1], dim=-2) * inv_det[..., None, None]
    return torch.linalg.inv(matrix)


def expectation_maximization(
    estimates: Tensor, mix_spec: Tensor, iterations: int = 1, eps: float | None = None
) -> Tensor:
    """Refine complex source estimates by EM under the local Gaussian model (one window, no chunking).

    Args:
        estimates: ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` complex initial estimates.
        mix_spec: ``(n_batch, n_channels, n_bins, n_frames)`` complex mixture.
        iterations: EM iterations (each one M-step then one E-step).
        eps: regulariser of the covariance inverses and of the normalisations (default: the machine epsilon of
            the real dtype, as norbert; much smaller values give NaN in float32 on silent windows).

    Returns:
        ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` complex filtered estimates.
    """
    if eps is None:
        eps = torch.finfo(mix_spec.real.dtype).eps
    # work as (n_batch, n_stems, n_bins, n_frames, n_channels) so the channel axis is a vector
    y = estimates.permute(0, 1, 3, 4, 2)
    x = mix_spec.permute(0, 2, 3, 1)
    for _ in range(iterations):
        # M-step: power spectral densities and spatial covariances
        psd = (y.real.square() + y.imag.square()).mean(dim=-1)  # (b, j, f, t)
        outer = y.unsqueeze(-1) * y.conj().unsqueeze(-2)  # (b, j, f, t, c, c)
        spatial = outer.sum(dim=3) / (eps + psd.sum(dim=3))[..., None, None]  # (b, j, f, c, c)
        # E-step: Wiener gains from the mixture covariance
        weighted = psd[..., None, None] * spatial.unsqueeze(3)  # (b, j, f, t, c, c)
        inv_cov = _invert(weighted.sum(dim=1), eps)  # (b, f, t, c, c)
        gains = weighted @ inv_cov.unsqueeze(1)  # (b, j, f, t, c, c)
        y = (gains @ x.unsqueeze(1).unsqueeze(-1)).squeeze(-1)
        del outer, weighted, gains
    return y.permute(0, 1, 4, 2, 3)


def wiener(
    mix_spec: Tensor,
    source_mags: Tensor,
    iterations: int = 1,
    use_softmask: bool = True,
    window_frames: int = 300,
    eps: float | None = None,
) -> Tensor:
    """Multichannel Wiener filter: initial estimates, then EM on windows of ``window_frames`` frames.

    Args:
        mix_spec: ``(n_batch, n_channels, n_bins, n_frames)`` complex mixture STFT.
        source_mags: ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` magnitude estimates of the sources.
        iterations: EM iterations; 0 returns the initial estimates.
        use_softmask: initialise with ratio masks (else with the mixture phase on the magnitudes).
        window_frames: frames per EM window (memory is linear in it, not in the song's length).
        eps: see :func:`expectation_maximization`.

    Returns:
        ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` complex source estimates.
    """
    init = softmask(mix_spec, source_mags) if use_softmask else mixture_phase(mix_spec, source_mags)
    if iterations <= 0:
        return init
    # normalise the scale so that eps means the same thing for loud and quiet songs
    scale = mix_spec.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)  # (b, 1, 1, 1)
    out = torch.empty_like(init)
    n_frames = mix_spec.shape[-1]
    for start in range(0, n_frames, window_frames):
        stop = min(start + window_frames, n_frames)
        out[..., start:stop] = expectation_maximization(
            init[..., start:stop] / scale.unsqueeze(1), mix_spec[..., start:stop] / scale, iterations, eps
        ) * scale.unsqueeze(1)
    return out


def synthesize(
    mix_spec: Tensor,
    source_mags: Tensor,
    n_samples: int,
    n_fft: int,
    hop_length: int,
    wiener_iterations: int = 0,
    window_frames: int = 300,
) -> Tensor:
    """Waveforms of the sources from magnitude estimates: ratio masks, optional EM, inverse STFT.

    Args:
        mix_spec: ``(n_batch, n_channels, n_bins, n_frames)`` complex mixture STFT.
        source_mags: ``(n_batch, n_stems, n_channels, n_bins, n_frames)`` magnitude estimates.
        n_samples: length of the waveforms to return.

    Returns:
        ``(n_batch, n_stems, n_channels, n_samples)`` real.
    """
    specs = wiener(mix_spec, source_mags, iterations=wiener_iterations, window_frames=window_frames)
    return istft(specs, n_samples, n_fft=n_fft, hop_length=hop_length)
