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
    from app.views.lane_image import magma_lut

    rows, bottom, top = spectrum.log_rows(spectrum.grid_for(44100, 44100))
    assert np.all(np.diff(rows) >= 0) and bottom < top
    lut = magma_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert lut[0].tolist() == [0, 0, 4] and lut[-1].tolist() == [252, 253, 191]  # magma's own ends


def test_time_labels() -> None:
    assert spectrum.format_time(65.0) == "1:05"
    assert spectrum.format_time(65.3) == "1:05.3"
    assert spectrum.format_time(-1.0) == "0:00"


def test_columns_from_a_slice_equal_columns_from_the_whole_song() -> None:
    rng = np.random.default_rng(0)
    mono = rng.standard_normal(44100 * 3).astype(np.float32) * 0.1
    grid = spectrum.grid_for(mono.size, 44100)
    whole = spectrum.compute_columns(mono, grid, 40, 90)
    start, end = spectrum.frame_span(grid, 40, 90)
    assert 0 < start and end < mono.size
    np.testing.assert_allclose(spectrum.compute_columns(mono[start:end], grid, 40, 90, offset=start), whole,
                               atol=1e-4)
    np.testing.assert_allclose(spectrum.compute_columns(mono[:end], grid, 0, 90, offset=0)[:, 40:], whole, atol=1e-4)


def test_only_frames_inside_separated_regions_are_computable() -> None:
    grid = spectrum.grid_for(44100 * 3, 44100)  # hop 512, n_fft 2048
    region = 44100
    ready = np.array([True, False, True])
    frames = spectrum.computable_frames(grid, ready, region)
    centres = np.arange(grid.n_frames) * grid.hop_length
    inside_first = centres + 1024 <= region
    inside_last = centres - 1024 >= 2 * region
    np.testing.assert_array_equal(frames, inside_first | inside_last)
    assert spectrum.runs(frames) == [(0, int(inside_first.sum())), (int(np.argmax(inside_last)), grid.n_frames)]
    assert not spectrum.computable_frames(grid, np.zeros(0, dtype=bool), region).any()
