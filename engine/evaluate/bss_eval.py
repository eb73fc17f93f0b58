"""BSS Eval v4: SDR, ISR, SIR and SAR of source images, as museval computes them for SiSEC 2018.

Definitions (Vincent et al. 2006, "Performance measurement in blind audio source separation"; version 4 from
Stöter, Liutkus and Ito, "The 2018 Signal Separation Evaluation Campaign", LVA/ICA 2018):

- Each estimate ``ŝ_j`` is decomposed as ``s_j + e_spat + e_interf + e_artif``. The distortion filters are
  multichannel FIR filters with ``filters_len`` (512) taps, delays ``0 .. filters_len - 1``, found by least squares:
  ``P_spat`` projects ``ŝ_j`` onto delayed copies of the channels of reference ``j`` alone, ``P_all`` onto delayed
  copies of every channel of every reference.
- Version 4 estimates both filters once on the whole track (time-invariant), then scores every window (1 s by
  default, no overlap) with those filters. In a window the references are cut to the window, filtered (so the
  projections ring ``filters_len - 1`` samples past its end) and compared with the estimate cut to the window and
  zero-padded by the same amount:

  ``SDR = 10 log10(|s|^2 / |ŝ - s|^2)``, ``ISR = 10 log10(|s|^2 / |P_spat - s|^2)``,
  ``SIR = 10 log10(|P_spat|^2 / |P_all - P_spat|^2)``, ``SAR = 10 log10(|P_all|^2 / |ŝ - P_all|^2)``,
  with every energy summed over channels and samples of the window.

- A window in which any reference or any estimate is all zeros is scored NaN for every source (museval's rule;
  museval tests the sum over channels, so it would also skip an exactly anti-phase stereo window, which is scored
  here). A track's score is the median of its non-NaN windows (``numpy.nanmedian``).

The implementation is our own (numpy/scipy): correlations are accumulated block-wise in the frequency domain (only
lags below ``filters_len`` are needed), the Gram system is factorised once per track and solved for all estimates
at once, and the window energies come from the spectra by Parseval, so no time-domain projection is formed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.linalg

#: Names of the four BSS Eval metrics, in the order museval returns them.
BSS_METRICS: tuple[str, ...] = ("SDR", "ISR", "SIR", "SAR")

_FFT_BLOCK = 16384  # FFT size of the block-wise correlation
_MAX_BATCH_VALUES = 4_000_000  # complex values per batch of windowed spectra (bounds memory on long tracks)


@dataclass
class BSSEvalFrames:
    """Per-window BSS Eval v4 scores in dB, each ``(n_sources, n_frames)``; NaN marks a skipped (silent) window.

    ``frame_starts`` holds the first sample of every window, ``(n_frames,)``; ``window`` and ``hop`` are in samples.
    """

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    frame_starts: np.ndarray
    window: int
    hop: int

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{"SDR": ..., "ISR": ..., "SIR": ..., "SAR": ...}``, each ``(n_sources, n_frames)``."""
        return {"SDR": self.sdr, "ISR": self.isr, "SIR": self.sir, "SAR": self.sar}

    def medians(self) -> dict[str, np.ndarray]:
        """Median over the non-NaN windows per source, ``(n_sources,)`` per metric (NaN if every window is)."""
        out = {}
        for name, values in self.as_dict().items():
            medians = np.full(values.shape[0], np.nan)
            for j, row in enumerate(values):
                finite = row[~np.isnan(row)]
                if finite.size:
                    medians[j] = np.median(finite)
            out[name] = medians
        return out


def frame_starts(n_samples: int, window: int, hop: int) -> tuple[np.ndarray, int]:
    """First sample of each window and the window length, as museval frames a track.

    Only whole windows are scored (a trailing partial window is dropped); a signal shorter than one window is
    scored as a single window covering all of it. Returns ``(starts (n_frames,), window_length)``.
    """
    if window < n_samples:
        n_frames = int(np.floor((n_samples - window + hop) / hop))
        return np.arange(n_frames, dtype=np.int64) * int(hop), int(window)
    return np.zeros(1, dtype=np.int64), int(n_samples)


def _padded_slice(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``x[:, start:stop]`` as float64, zero where the range leaves ``[0, n_samples)``: ``(n, stop - start)``."""
    out = np.zeros((x.shape[0], stop - start))
    lo, hi = max(start, 0), min(stop, x.shape[1])
    if hi > lo:
        out[:, lo - start : hi - start] = x[:, lo:hi]
    return out


def lag_correlations(a: np.ndarray, b: np.ndarray | Sequence[np.ndarray], max_lag: int) -> np.ndarray:
    """Cross-correlations ``c[p, q, max_lag + k] = sum_n a[p, n] b[q, n + k]`` for ``|k| <= max_lag``.

    ``a`` is ``(n_a, n_samples)``; ``b`` is ``(n_b, n_samples)`` or a sequence of such arrays, taken as stacked
    (so callers need not copy them together). Signals are zero outside; any float dtype, computed in float64.
    Returns ``(n_a, n_b, 2 * max_lag + 1)``. ``a`` is cut into blocks, ``b`` into segments ``max_lag`` longer on
    each side; the per-block cross-spectra are summed in the frequency domain and inverted once, so only a few
    blocks are in memory at a time.
    """
    b_parts = [b] if isinstance(b, np.ndarray) else list(b)
    n_a, n_samples = a.shape
    n_b = sum(part.shape[0] for part in b_parts)
    margin = int(max_lag)
    n_fft = scipy.fft.next_fast_len(min(n_samples, _FFT_BLOCK) + 2 * margin, real=True)
    block = n_fft - 2 * margin
    n_blocks = -(-n_samples // block)
    n_bins = n_fft // 2 + 1
    cross = np.zeros((n_bins, n_a, n_b), dtype=np.complex128)
    per_chunk = max(1, _MAX_BATCH_VALUES // (n_bins * (n_a + n_b)))
    for first in range(0, n_blocks, per_chunk):
        last = min(first + per_chunk, n_blocks)
        start, stop = first * block, last * block
        a_blocks = _padded_slice(a, start, stop).reshape(n_a, last - first, block)
        b_chunk = np.concatenate([_padded_slice(part, start - margin, stop + margin) for part in b_parts])
        b_segs = np.lib.stride_tricks.sliding_window_view(b_chunk, n_fft, axis=-1)[:, ::block]
        spec_a = scipy.fft.rfft(a_blocks, n=n_fft, axis=-1)  # (n_a, n_chunk, n_bins)
        spec_b = scipy.fft.rfft(b_segs, axis=-1)  # (n_b, n_chunk, n_bins)
        cross += np.matmul(spec_a.conj().transpose(2, 0, 1), spec_b.transpose(2, 1, 0))
    corr = scipy.fft.irfft(cross.transpose(1, 2, 0), n=n_fft, axis=-1)
    return corr[..., : 2 * margin + 1]


def _gram(corr: np.ndarray, filters_len: int) -> np.ndarray:
    """Gram matrix of delayed references from their lag correlations ``(n_ref, n_ref, 2 * filters_len - 1)``.

    Entry ``[(p, d1), (q, d2)] = <r_p delayed d1, r_q delayed d2> = corr[p, q, filters_len - 1 + d1 - d2]``;
    returns ``(n_ref * filters_len, n_ref * filters_len)``.
    """
    n_ref = corr.shape[0]
    lags = filters_len - 1 + np.subtract.outer(np.arange(filters_len), np.arange(filters_len))
    gram = np.empty((n_ref * filters_len, n_ref * filters_len), order="F")
    for p in range(n_ref):
        rows = slice(p * filters_len, (p + 1) * filters_len)
        for q in range(n_ref):
            gram[rows, q * filters_len : (q + 1) * filters_len] = corr[p, q][lags]
    return gram


def _solve_psd(gram: np.ndarray, rhs: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Least-squares filters ``gram^-1 rhs`` for a positive semi-definite ``gram``.

    Like museval, ``eps`` is added to the diagonal; a Cholesky factorisation solves it. A ``gram`` that is singular
    even so (a silent or duplicated reference, or signals shorter than the filters have taps) is solved as museval
    solves every system, by LU (``numpy.linalg.solve``'s method): about as fast as Cholesky. Only an exactly
    singular matrix goes on to ``lstsq``, whose SVD of the 4096 x 4096 stereo four-stem system took minutes.
    With ``overwrite`` the factorisation happens in place (``gram`` must then be Fortran-ordered to avoid a copy)
    and ``gram`` is garbage.
    """
    work = gram if overwrite else np.array(gram, dtype=np.float64, order="F")
    diagonal = np.einsum("ii->i", work)  # writable view when work is an ndarray
    backup = diagonal.copy()
    diagonal += np.finfo(float).eps
    try:
        factor = scipy.linalg.cho_factor(work, lower=False, overwrite_a=True, check_finite=False)
        return scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    except np.linalg.LinAlgError:
        if overwrite:  # the failed factorisation destroyed the upper triangle; the lower one is intact
            work = np.tril(work, -1) + np.tril(work, -1).T + np.diag(backup)
        else:
            work = np.array(gram, dtype=np.float64, order="F")
    np.einsum("ii->i", work)[...] += np.finfo(float).eps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # ill-conditioned: museval's result too
            return scipy.linalg.solve(work, rhs, assume_a="gen", check_finite=False)
    except np.linalg.LinAlgError:
        return scipy.linalg.lstsq(work, rhs, check_finite=False)[0]


def min_samples(n_sources: int, n_channels: int, window: int, filters_len: int = 512) -> int:
    """The shortest signal BSS Eval v4 scores meaningfully: one whole window, and at least as many samples as
    the distortion filters have unknowns (``n_sources * n_channels * filters_len``; with fewer, the projection
    onto every reference fits anything and the scores mean nothing)."""
    return max(int(window), n_sources * n_channels * filters_len)


def distortion_filters(
    reference: np.ndarray, estimate: np.ndarray, filters_len: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Time-invariant BSS Eval distortion filters estimated on the whole signals.

    ``reference`` and ``estimate`` are ``(n_sources, n_channels, n_samples)``. Returns
    ``(all_filters, spat_filters)``: ``all_filters[s, c_in, j, c_out, d]`` maps channel ``c_in`` of reference ``s``
    at delay ``d`` to channel ``c_out`` of estimate ``j``, shape ``(n_sources, n_channels, n_sources, n_channels,
    filters_len)``; ``spat_filters[j, c_in, c_out, d]`` uses reference ``j`` alone, ``(n_sources, n_channels,
    n_channels, filters_len)``.
    """
    n_sources, n_channels, n_samples = reference.shape
    n_ref = n_sources * n_channels
    refs = reference.reshape(n_ref, n_samples)
    ests = estimate.reshape(n_ref, n_samples)
    corr = lag_correlations(refs, [refs, ests], filters_len - 1)
    gram = _gram(corr[:, :n_ref], filters_len)
    # rhs[(p, d), e] = <r_p delayed d, est_e> = corr[p, e, filters_len - 1 + d]
    rhs = corr[:, n_ref:, filters_len - 1 :].transpose(0, 2, 1).reshape(n_ref * filters_len, n_ref)
    size = n_channels * filters_len
    spat = np.empty((n_sources, n_channels, n_channels, filters_len))
    for j in range(n_sources):
        rows = slice(j * size, (j + 1) * size)
        cols = slice(j * n_channels, (j + 1) * n_channels)
        solved = _solve_psd(gram[rows, rows], rhs[rows, cols])  # ((c_in, d), c_out)
        spat[j] = solved.reshape(n_channels, filters_len, n_channels).transpose(0, 2, 1)
    solved = _solve_psd(gram, rhs, overwrite=True)  # ((s, c_in, d), (j, c_out)): the one big factorisation
    all_filters = solved.reshape(n_sources, n_channels, filters_len, n_sources, n_channels).transpose(
        0, 1, 3, 4, 2
    )
    return all_filters, spat


def _energy(spectra: np.ndarray, n_fft: int) -> np.ndarray:
    """Energy of real signals from their ``rfft`` spectra (Parseval): ``(s, c, b, f)`` in, ``(s, b)`` out,
    summed over channels and frequencies."""
    weights = np.full(spectra.shape[-1], 2.0 / n_fft)
    weights[0] = 1.0 / n_fft
    if n_fft % 2 == 0:
        weights[-1] = 1.0 / n_fft
    power = spectra.real**2 + spectra.imag**2
    return np.einsum("scbf,f->sb", power, weights)


def _time_energy(signals: np.ndarray) -> np.ndarray:
    """Energy of ``(s, c, b, n)`` signals summed over channels and samples: ``(s, b)``."""
    return np.einsum("scbn,scbn->sb", signals, signals)


def _ratio_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``10 log10(num / den)`` with ``den == 0`` giving +inf (museval's convention) and ``num == 0`` giving -inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(num / den)
    out[den == 0] = np.inf
    return out


def _as_float_array(x: np.ndarray) -> np.ndarray:
    """``x`` as a float32 or float64 array without copying when it already is one (float32 halves the memory of
    long tracks; every computation is done in float64 on blocks)."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def bss_eval_v4(
    reference: np.ndarray,
    estimate: np.ndarray,
    window: int = 44100,
    hop: int = 44100,
    filters_len: int = 512,
) -> BSSEvalFrames:
    """BSS Eval v4 (image version, whole-track filters, framewise scores) of estimates against references.

    ``reference`` and ``estimate`` are ``(n_sources, n_channels, n_samples)`` with source ``j`` of one matching
    source ``j`` of the other (no permutation search). ``window`` and ``hop`` are in samples (museval uses one
    second for both). Returns :class:`BSSEvalFrames` with ``(n_sources, n_frames)`` arrays in dB.
    """
    reference = _as_float_array(reference)
    estimate = _as_float_array(estimate)
    if reference.ndim != 3 or reference.shape != estimate.shape:
        raise ValueError(
            "reference and estimate must both be (n_sources, n_channels, n_samples), got "
            f"{reference.shape} and {estimate.shape}"
        )
    n_sources, n_channels, n_samples = reference.shape
    if n_samples == 0 or n_sources == 0:
        raise ValueError("cannot evaluate empty signals")
    if not (np.isfinite(np.sum(reference)) and np.isfinite(np.sum(estimate))):  # a NaN or inf spoils the sum
        raise ValueError("reference and estimate must be finite (no NaN or infinity)")
    starts, length = frame_starts(n_samples, int(window), int(hop))
    n_frames = starts.size
    all_filters, spat_filters = distortion_filters(reference, estimate, filters_len)

    n_fft = scipy.fft.next_fast_len(length + filters_len - 1, real=True)
    all_spec = scipy.fft.rfft(all_filters, n=n_fft, axis=-1)  # (s, c_in, j, c_out, f)
    all_spec = all_spec.reshape(n_sources * n_channels, n_sources * n_channels, -1).transpose(2, 0, 1)
    spat_spec = scipy.fft.rfft(spat_filters, n=n_fft, axis=-1)  # (j, c_in, c_out, f)

    scores = np.full((4, n_sources, n_frames), np.nan)
    offsets = np.arange(length)
    per_batch = max(1, _MAX_BATCH_VALUES // (n_sources * n_channels * (n_fft // 2 + 1)))
    n_in = n_sources * n_channels
    for first in range(0, n_frames, per_batch):
        index = starts[first : first + per_batch, None] + offsets  # (n_batch, length)
        ref_w = reference[:, :, index].astype(np.float64, copy=False)  # (s, c, n_batch, length), contiguous
        est_w = estimate[:, :, index].astype(np.float64, copy=False)
        n_batch = index.shape[0]
        ref_f = scipy.fft.rfft(ref_w, n=n_fft, axis=-1)  # (s, c, n_batch, f)
        est_f = scipy.fft.rfft(est_w, n=n_fft, axis=-1)
        # P_all[j, c_out, b] = sum_{s, c_in} ref[s, c_in, b] * all_filters[s, c_in, j, c_out]
        flat = ref_f.reshape(n_in, n_batch, -1).transpose(2, 1, 0)  # (f, b, s*c_in)
        p_all = np.matmul(flat, all_spec).transpose(2, 1, 0).reshape(ref_f.shape)  # (j, c_out, b, f)
        p_spat = np.einsum("jibf,jiof->jobf", ref_f, spat_spec)
        e_true = _time_energy(ref_w)
        silent = (e_true == 0) | (_time_energy(est_w) == 0)  # (s, n_batch): all samples zero
        sdr = _ratio_db(e_true, _time_energy(est_w - ref_w))
        isr = _ratio_db(e_true, _energy(p_spat - ref_f, n_fft))
        sir = _ratio_db(_energy(p_spat, n_fft), _energy(p_all - p_spat, n_fft))
        sar = _ratio_db(_energy(p_all, n_fft), _energy(est_f - p_all, n_fft))
        batch = np.stack([sdr, isr, sir, sar])  # (4, s, n_batch)
        batch[:, :, np.any(silent, axis=0)] = np.nan
        scores[:, :, first : first + n_batch] = batch
    return BSSEvalFrames(
        sdr=scores[0],
        isr=scores[1],
        sir=scores[2],
        sar=scores[3],
        frame_starts=starts,
        window=length,
        hop=int(hop),
    )
