"""Griffin-Lim phase reconstruction (Griffin & Lim 1984; papers/003, Algorithm 1), on torch tensors.

Algorithm 1: fix an initial phase ``angle(c_0)``, start from ``c_0 = s * exp(i angle(c_0))`` and alternate the two
projections, ``c_n = P_C1(P_C2(c_{n-1}))``: ``P_C2`` onto consistent spectrograms (the STFT of the inverse STFT)
and ``P_C1`` onto spectrograms of magnitude ``s`` (keep the phase, restore the magnitude); the signal is the
inverse STFT of the last ``c_n``. ``momentum`` > 0 is the "fast Griffin-Lim" of Perraudin et al. (2013); 0 (our
default) is Algorithm 1 as written.

Written here rather than taken from a library because torchaudio is not a dependency and librosa's
``griffinlim`` runs in numpy one signal at a time and can only start from a zero or random phase; this one runs on
the model's device, on whole batches of stems, with the same STFT as the rest of the engine
(:mod:`engine.dsp.stft`), and can start from the mixture's phase.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.dsp.stft import istft, stft
from engine.dsp.wiener import wiener

#: Initial phases: ``"zero"`` (Algorithm 1's fixed phase), ``"mixture"`` (the mixture's), ``"random"`` (seeded).
INITS = ("zero", "mixture", "random")


def griffin_lim(
    magnitude: Tensor,
    n_samples: int,
    n_fft: int,
    hop_length: int,
    iterations: int = 32,
    init_phase: Tensor | None = None,
    momentum: float = 0.0,
) -> Tensor:
    """A waveform whose STFT magnitude approaches ``magnitude``.

    Args:
        magnitude: ``(..., n_bins, n_frames)`` non-negative.
        n_samples: length of the waveform.
        iterations: alternations of the two projections (0: the inverse STFT of ``c_0``).
        init_phase: ``(..., n_bins, n_frames)`` complex of unit modulus (or any complex: only its angle counts);
            None: zero phase.
        momentum: the fast Griffin-Lim's extrapolation weight (0: plain Griffin-Lim).

    Returns:
        ``(..., n_samples)`` real.
    """
    if init_phase is None:
        c = magnitude.to(torch.complex64 if magnitude.dtype != torch.float64 else torch.complex128)
    else:
        c = magnitude * torch.exp(1j * torch.angle(init_phase))
    previous = torch.zeros_like(c)
    for _ in range(iterations):
        consistent = stft(istft(c, n_samples, n_fft, hop_length), n_fft, hop_length)  # P_C2
        if momentum:
            consistent, previous = consistent + momentum * (consistent - previous), consistent
        c = magnitude * torch.exp(1j * torch.angle(consistent))  # P_C1: the phase kept, the magnitude restored
    return istft(c, n_samples, n_fft, hop_length)


def synthesize_griffin_lim(
    mix_spec: Tensor,
    source_mags: Tensor,
    n_samples: int,
    n_fft: int,
    hop_length: int,
    wiener_iterations: int = 0,
    iterations: int = 32,
    init: str = "zero",
    seed: int = 0,
) -> Tensor:
    """Waveforms of the sources from magnitude estimates, their phases by Griffin-Lim.

    The magnitudes are those the mixture-phase pipeline would invert (ratio masks of the mixture, optional Wiener
    EM; :func:`engine.dsp.wiener.wiener`), so the two resyntheses differ only in the phase.

    Args:
        mix_spec: ``(n_batch, n_channels, n_bins, n_frames)`` complex mixture STFT.
        source_mags: ``(n_batch, n_stems, n_channels, n_bins, n_frames)``.
        init: one of :data:`INITS`.

    Returns:
        ``(n_batch, n_stems, n_channels, n_samples)`` real.
    """
    if init not in INITS:
        raise ValueError(f"Griffin-Lim init must be one of {INITS}, not {init!r}")
    specs = wiener(mix_spec, source_mags, iterations=wiener_iterations)
    phase = None
    if init == "mixture":
        phase = mix_spec.unsqueeze(1).expand_as(specs)
    elif init == "random":
        generator = torch.Generator().manual_seed(seed)
        angles = torch.rand(specs.shape, generator=generator) * (2 * torch.pi)
        phase = torch.polar(torch.ones_like(angles), angles).to(specs.device)
    return griffin_lim(specs.abs(), n_samples, n_fft, hop_length, iterations, phase)
