"""Multichannel Wiener filtering: ratio masks, EM refinement, windowing, the 2x2 inverse."""

from __future__ import annotations

import pytest
import torch

from engine.dsp.stft import stft
from engine.dsp.wiener import _invert, expectation_maximization, mixture_phase, softmask, synthesize, wiener


def _relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return float((estimate - reference).abs().square().sum() / reference.abs().square().sum())


def _panned_sources(n_frames: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sources with different fixed stereo pans: ``(1, 2, 2, n_bins, n_frames)`` complex and their mixture."""
    g = torch.Generator().manual_seed(seed)
    n_bins = 33
    mono = torch.complex(torch.randn(2, n_bins, n_frames, generator=g), torch.randn(2, n_bins, n_frames, generator=g))
    # sparse-ish activity so the sources overlap only partly in time-frequency
    mono = mono * (torch.rand(2, n_bins, n_frames, generator=g) > 0.4)
    pans = torch.tensor([[0.9, 0.1], [0.2, 0.8]])  # (source, channel)
    sources = (pans[:, :, None, None] * mono[:, None]).unsqueeze(0)
    return sources, sources.sum(dim=1)


def test_softmask_estimates_sum_to_the_mixture():
    sources, mix = _panned_sources()
    est = softmask(mix, torch.rand(sources.shape))
    assert est.shape == sources.shape
    assert torch.allclose(est.sum(dim=1), mix, atol=1e-5)


def test_mixture_phase_keeps_the_given_magnitudes():
    sources, mix = _panned_sources()
    mags = sources.abs()
    est = mixture_phase(mix, mags)
    assert torch.allclose(est.abs(), mags, atol=1e-5)


def test_closed_form_2x2_inverse_matches_linalg():
    g = torch.Generator().manual_seed(1)
    a = torch.complex(torch.randn(5, 2, 2, generator=g), torch.randn(5, 2, 2, generator=g))
    assert torch.allclose(_invert(a, 0.0), torch.linalg.inv(a), atol=1e-4)


def test_em_uses_the_stereo_image_to_reduce_the_error():
    """Initial magnitudes that are equal for both sources (uninformative); EM with the sources' spatial
    covariances learnt from the data must bring the estimates closer to the truth than the ratio mask."""
    sources, mix = _panned_sources(n_frames=200)
    noisy = sources.abs() * (0.5 + torch.rand(sources.shape, generator=torch.Generator().manual_seed(3)))
    init_error = (softmask(mix, noisy) - sources).abs().square().sum()
    refined = wiener(mix, noisy, iterations=3)
    refined_error = (refined - sources).abs().square().sum()
    assert refined_error < 0.8 * init_error
    assert _relative_error(refined.sum(dim=1), mix) < 1e-3  # the Wiener gains sum to the identity


def test_windowed_em_equals_one_window_when_the_window_covers_everything():
    sources, mix = _panned_sources(n_frames=50)
    mags = sources.abs() + 0.1
    whole = wiener(mix, mags, iterations=2, window_frames=50)
    scale = mix.abs().amax()
    direct = expectation_maximization(softmask(mix, mags) / scale, mix / scale, iterations=2) * scale
    assert torch.allclose(whole, direct, atol=1e-4)


@pytest.mark.parametrize("window_frames", [7, 16, 300])
def test_windowed_em_keeps_shape_and_sum_for_any_window(window_frames):
    sources, mix = _panned_sources(n_frames=40)
    out = wiener(mix, sources.abs(), iterations=1, window_frames=window_frames)
    assert out.shape == sources.shape
    assert torch.isfinite(out.real).all()
    assert _relative_error(out.sum(dim=1), mix) < 1e-3


def test_synthesize_with_oracle_magnitudes_recovers_the_sources():
    g = torch.Generator().manual_seed(4)
    n_samples = 8000
    stems = torch.randn(1, 2, 2, n_samples, generator=g)
    stems[:, 0, :, : n_samples // 2] = 0  # source 0 silent in the first half, source 1 in the second
    stems[:, 1, :, n_samples // 2 :] = 0
    mix = stems.sum(dim=1)
    spec = stft(mix, 512, 128)
    out = synthesize(spec, stft(stems, 512, 128).abs(), n_samples, 512, 128, wiener_iterations=1)
    assert out.shape == stems.shape
    error = (out - stems).square().sum() / stems.square().sum()
    assert error < 0.05


def test_silence_and_sparse_windows_give_finite_estimates():
    """Silent bins over a whole window made float32 EM return NaN with a tiny eps; it must stay finite."""
    sources, mix = _panned_sources(n_frames=40)
    sources[..., 10:20] = 0
    mix = sources.sum(dim=1)
    out = wiener(mix, sources.abs(), iterations=2, window_frames=7)
    assert torch.isfinite(out.real).all() and torch.isfinite(out.imag).all()
    silent = torch.zeros(1, 2, 33, 20, dtype=torch.complex64)
    assert wiener(silent, torch.zeros(1, 3, 2, 33, 20), iterations=2).abs().max() == 0
