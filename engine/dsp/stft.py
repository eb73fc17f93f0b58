"""STFT and inverse STFT on torch tensors, channels-first, the shapes Open-Unmix uses.

Pure functions: no state, no model. Window tensors are cached per (n_fft, device, dtype).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


@functools.lru_cache(maxsize=16)
def _hann(n_fft: int, device: str, dtype: torch.dtype) -> Tensor:
    # Made outside inference mode even when first asked for inside it: a cached inference tensor could never be
    # saved for backward by a later training step.
    with torch.inference_mode(False):
        return torch.hann_window(n_fft, periodic=True, device=torch.device(device), dtype=dtype)


def stft(audio: Tensor, n_fft: int = 4096, hop_length: int = 1024) -> Tensor:
    """Complex STFT of a waveform.

    Args:
        audio: ``(..., n_channels, n_samples)`` real tensor.
        n_fft: window and FFT size (Hann window).
        hop_length: hop between frames.

    Returns:
        ``(..., n_channels, n_bins, n_frames)`` complex tensor, ``n_bins = n_fft // 2 + 1``,
        ``n_frames = n_samples // hop_length + 1`` (centred frames, reflect padding).
    """
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    window = _hann(n_fft, str(audio.device), audio.dtype)
    spec = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="reflect" if shape[-1] > n_fft // 2 else "constant",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return spec.reshape(*shape[:-1], spec.shape[-2], spec.shape[-1])


def istft(spec: Tensor, n_samples: int, n_fft: int = 4096, hop_length: int = 1024) -> Tensor:
    """Inverse of :func:`stft`.

    Args:
        spec: ``(..., n_channels, n_bins, n_frames)`` complex tensor.
        n_samples: length of the waveform to return.

    Returns:
        ``(..., n_channels, n_samples)`` real tensor.
    """
    shape = spec.shape
    flat = spec.reshape(-1, shape[-2], shape[-1])
    real_dtype = torch.float32 if flat.dtype == torch.complex64 else torch.float64
    window = _hann(n_fft, str(spec.device), real_dtype)
    audio = torch.istft(
        flat, n_fft=n_fft, hop_length=hop_length, window=window, center=True, length=n_samples
    )
    return audio.reshape(*shape[:-2], n_samples)


def magnitude(spec: Tensor, power: float = 1.0) -> Tensor:
    """``|spec| ** power`` of a complex spectrogram, same shape, real dtype."""
    mag = spec.abs()
    return mag if power == 1.0 else mag.pow(power)
