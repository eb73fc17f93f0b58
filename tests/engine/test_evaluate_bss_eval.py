"""BSS Eval v4: known-SNR estimates, agreement with museval, framing and the correlation kernel."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from engine.evaluate.bss_eval import bss_eval_v4, frame_starts, lag_correlations
from engine.evaluate.metrics import usdr

RATE = 8000


def coloured_sources(rng: np.random.Generator, n_sources: int, n_channels: int, n_samples: int) -> np.ndarray:
    """Stationary, differently coloured noise sources with some inter-channel delay, ``(n_sources, n_channels,
    n_samples)``: structured enough that the 512-tap filters matter, not so band-limited that the Gram matrix
    is singular."""
    out = np.empty((n_sources, n_channels, n_samples))
    for j in range(n_sources):
        b, a = scipy.signal.butter(2, [0.03 + 0.15 * j, 0.25 + 0.15 * j], btype="band")
        mono = scipy.signal.lfilter(b, a, rng.standard_normal(n_samples + 8))
        for c in range(n_channels):
            out[j, c] = (1.0 + 0.3 * j) * (0.6 + 0.4 * c) * mono[8 - 3 * c : 8 - 3 * c + n_samples]
        out[j] += 0.05 * rng.standard_normal((n_channels, n_samples))
    return out


def add_noise_at_snr(rng: np.random.Generator, reference: np.ndarray, snr_db: float) -> np.ndarray:
    """``reference + noise`` with white noise scaled per source so the whole-track SNR is exactly ``snr_db``."""
    noise = rng.standard_normal(reference.shape)
    signal_energy = np.sum(reference**2, axis=(1, 2), keepdims=True)
    noise *= np.sqrt(signal_energy / np.sum(noise**2, axis=(1, 2), keepdims=True) / 10 ** (snr_db / 10))
    return reference + noise


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_noisy_estimate_reports_its_snr(snr_db: float) -> None:
    # In the image version, SDR compares the estimate with the unfiltered reference image, so for independent
    # noise the frame SDR is the frame SNR (the 512-tap filters only enter ISR/SIR/SAR). The noise is white and the
    # sources stationary, so the median over 1 s frames sits within a few hundredths of a dB of the global SNR.
    rng = np.random.default_rng(int(snr_db))
    reference = coloured_sources(rng, 4, 2, 10 * RATE)
    estimate = add_noise_at_snr(rng, reference, snr_db)
    scores = bss_eval_v4(reference, estimate, window=RATE, hop=RATE)
    medians = scores.medians()
    np.testing.assert_allclose(medians["SDR"], snr_db, atol=0.2)
    np.testing.assert_allclose(usdr(reference, estimate), snr_db, atol=0.2)
    # the noise is independent of every reference: the filters capture almost none of it
    np.testing.assert_allclose(medians["SAR"], snr_db, atol=0.5)
    assert np.all(medians["SIR"] > snr_db + 10)
    assert np.all(medians["ISR"] > snr_db + 10)
    assert scores.sdr.shape == (4, 10)


def test_perfect_and_interfering_estimates() -> None:
    rng = np.random.default_rng(3)
    reference = coloured_sources(rng, 2, 2, 3 * RATE)
    perfect = bss_eval_v4(reference, reference.copy(), window=RATE, hop=RATE)
    assert np.all(perfect.sdr > 100)
    swapped = reference[::-1] * 0.2 + reference
    leaky = bss_eval_v4(reference, swapped, window=RATE, hop=RATE).medians()
    # the leak is another source: it shows in SIR, not in SAR
    assert np.all(leaky["SIR"] < 20) and np.all(leaky["SAR"] > leaky["SIR"] + 20)


def _museval_v4(reference: np.ndarray, estimate: np.ndarray, window: int) -> list[np.ndarray]:
    museval = pytest.importorskip(
        "museval", reason="museval (test dependency) is the reference implementation"
    )
    # museval wants (n_sources, n_samples, n_channels); it returns SDR, ISR, SIR, SAR as (n_sources, n_frames)
    return list(
        museval.evaluate(reference.transpose(0, 2, 1), estimate.transpose(0, 2, 1), win=window, hop=window)
    )


@pytest.mark.slow
def test_agrees_with_museval_on_structured_mixtures() -> None:
    rng = np.random.default_rng(7)
    n_sources, n_samples = 3, int(4.5 * RATE)  # 4 whole frames: the trailing half frame is dropped by both
    reference = coloured_sources(rng, n_sources, 2, n_samples)
    reference[1, :, 2 * RATE : 3 * RATE] = 0.0  # a silent frame: NaN for every source in both implementations
    leak = np.full((n_sources, n_sources), 0.15) + np.eye(n_sources) * 0.7
    estimate = np.einsum("jk,kcn->jcn", leak, reference) + 0.03 * rng.standard_normal(reference.shape)
    # a filtering distortion (shows in ISR) on source 0
    estimate[0] = scipy.signal.lfilter([1.0, 0.4, -0.2], [1.0], estimate[0], axis=-1)
    estimate[2, 1] *= 0.5  # channel imbalance: shows in ISR
    ours = bss_eval_v4(reference, estimate, window=RATE, hop=RATE)
    theirs = _museval_v4(reference, estimate, RATE)
    for name, mine, ref in zip(("SDR", "ISR", "SIR", "SAR"), ours.as_dict().values(), theirs, strict=True):
        assert mine.shape == ref.shape == (n_sources, 4), name
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(ref), err_msg=name)
        assert np.isnan(mine[:, 2]).all(), name
        np.testing.assert_allclose(mine[~np.isnan(mine)], ref[~np.isnan(ref)], atol=0.01, err_msg=name)
        np.testing.assert_allclose(
            np.nanmedian(mine, axis=1), np.nanmedian(ref, axis=1), atol=0.01, err_msg=name
        )


@pytest.mark.slow
def test_agrees_with_museval_when_track_is_shorter_than_a_window() -> None:
    rng = np.random.default_rng(11)
    reference = coloured_sources(rng, 2, 1, RATE // 2)
    estimate = reference[::-1] * 0.3 + reference + 0.01 * rng.standard_normal(reference.shape)
    ours = bss_eval_v4(reference, estimate, window=RATE, hop=RATE)
    theirs = _museval_v4(reference, estimate, RATE)
    for mine, ref in zip(ours.as_dict().values(), theirs, strict=True):
        assert mine.shape == (2, 1)
        np.testing.assert_allclose(mine, ref, atol=0.01)


@pytest.mark.parametrize(
    ("n_samples", "window", "hop", "expected"),
    [(10_500, 1000, 1000, 10), (10_000, 1000, 1000, 10), (999, 1000, 1000, 1), (5000, 2000, 1000, 4)],
)
def test_frame_starts_follow_museval(n_samples: int, window: int, hop: int, expected: int) -> None:
    starts, length = frame_starts(n_samples, window, hop)
    assert starts.size == expected
    assert starts[-1] + length <= n_samples
    assert length == min(window, n_samples)


def test_lag_correlations_match_direct_sums() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 3000))
    b = rng.standard_normal((3, 3000))
    max_lag = 40
    got = lag_correlations(a, b, max_lag)
    for p in range(2):
        for q in range(3):
            full = np.correlate(b[q], a[p], mode="full")  # full[n_samples - 1 + k] = sum_n a[n] b[n + k]
            want = full[3000 - 1 - max_lag : 3000 + max_lag]
            np.testing.assert_allclose(got[p, q], want, rtol=1e-9, atol=1e-9)


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="n_sources, n_channels, n_samples"):
        bss_eval_v4(np.zeros((2, 2, 100)), np.zeros((2, 2, 99)))
    bad = np.ones((1, 1, 100))
    bad[0, 0, 5] = np.nan
    with pytest.raises(ValueError, match="finite"):
        bss_eval_v4(np.ones((1, 1, 100)), bad)


def test_singular_gram_falls_back_to_least_squares(monkeypatch: pytest.MonkeyPatch) -> None:
    # When the Cholesky factorisation fails (a duplicated or silent reference makes the Gram matrix singular), the
    # filters come from lstsq on the restored matrix: the scores must be those of the normal path.
    rng = np.random.default_rng(13)
    reference = coloured_sources(rng, 2, 1, 2 * RATE)  # mono keeps the SVD-based lstsq quick
    estimate = reference[::-1] * 0.2 + reference + 0.05 * rng.standard_normal(reference.shape)
    normal = bss_eval_v4(reference, estimate, window=RATE, hop=RATE)

    def failing_cholesky(*args: object, **kwargs: object) -> None:
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(scipy.linalg, "cho_factor", failing_cholesky)
    fallback = bss_eval_v4(reference, estimate, window=RATE, hop=RATE)
    for a, b in zip(normal.as_dict().values(), fallback.as_dict().values(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
