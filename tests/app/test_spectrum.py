"""Display spectrograms: the grid, dB scale and log-frequency rows."""

from __future__ import annotations

import numpy as np
import pytest

from app import spectrum


def test_grid_fits_a_long_song_in_max_frames() -> None:
    grid = spectrum.grid_for(44100 * 600, 44100, max_frames=3000)
    assert grid.n_frames <= 3000
    short = spectrum.grid_for(44100, 44100)
    assert short.hop_length == 512


def test_full_scale_sine_peaks_near_0_db_at_its_bin() -> None:
    grid = spectrum.grid_for(44100, 44100)
    t = np.arange(44100) / 44100
    columns = spectrum.compute_columns(np.sin(2 * np.pi * 1000 * t).astype(np.float32), grid)
    assert columns.dtype == np.float32 and columns.flags.c_contiguous
    assert columns.shape == (grid.n_bins, grid.n_frames)
    middle = columns[:, grid.n_frames // 2]
    peak = int(np.argmax(middle))
    assert abs(peak * 44100 / grid.n_fft - 1000) < 44100 / grid.n_fft
    assert middle[peak] == pytest.approx(0.0, abs=1.5)
    assert np.isfinite(columns).all() and columns.min() >= spectrum.DB_FLOOR


def test_columns_in_parts_equal_the_whole() -> None:
    grid = spectrum.grid_for(20000, 44100)
    x = np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    whole = spectrum.compute_columns(x, grid)
    parts = np.concatenate([spectrum.compute_columns(x, grid, 0, 10), spectrum.compute_columns(x, grid, 10)], axis=1)
    np.testing.assert_array_equal(whole, parts)


def test_frames_complete_before() -> None:
    grid = spectrum.grid_for(44100, 44100)
    assert grid.frames_complete_before(0) == 0
    assert grid.frames_complete_before(44100) == grid.n_frames
    n = grid.frames_complete_before(22050)
    assert (n - 1) * grid.hop_length + grid.n_fft // 2 <= 22050 < n * grid.hop_length + grid.n_fft // 2


def test_log_rows_increase_and_lut_has_256_entries() -> None:
    rows, bottom, top = spectrum.log_rows(spectrum.grid_for(44100, 44100))
    assert np.all(np.diff(rows) >= 0) and bottom < top
    lut = spectrum.magma_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
