"""Estimates too short for BSS Eval: refused at once with the file's name, and the least-squares solve bounded.

``shotoku evaluate`` on 0.02-s stems used to run for about a minute (two cores) and print scores: the Gram matrix
of four stereo stems (4096 unknowns) has rank 1393 at that length, Cholesky fails, and the SVD-based ``lstsq``
fallback is slow and fits noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import soundfile as sf

from engine.cli import main
from engine.evaluate.bss_eval import bss_eval_v4, min_samples
from engine.evaluate.scores import TooShortError, evaluate_track

RATE = 44100
STEMS = ("vocals", "drums", "bass", "other")


def _stems(n_samples: int, n_channels: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: (0.1 * rng.standard_normal((n_channels, n_samples))).astype(np.float32) for s in STEMS}


def _write(folder: Path, stems: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, samples in stems.items():
        sf.write(folder / f"{stem}.wav", samples.T, RATE, subtype="FLOAT")


@pytest.mark.timeout(120)
def test_cli_refuses_two_hundredths_of_a_second_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    refs = _stems(int(0.02 * RATE))
    _write(tmp_path / "ref", refs)
    _write(tmp_path / "est", {s: x + 0.01 for s, x in refs.items()})
    code = main(["evaluate", "--reference", str(tmp_path / "ref"), "--estimates", str(tmp_path / "est"),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith(f"shotoku: error: {tmp_path / 'est'}")
    assert "0.02 s long" in err[-1] and "shorter than one BSS Eval window (1.00 s)" in err[-1]
    assert not (tmp_path / "out").exists()


def test_a_short_window_still_needs_as_many_samples_as_the_filters_have_unknowns(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    refs = _stems(int(0.02 * RATE))
    _write(tmp_path / "ref", refs)
    _write(tmp_path / "est", refs)
    code = main(["evaluate", "--reference", str(tmp_path / "ref"), "--estimates", str(tmp_path / "est"),
                 "--window", "0.01", "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "need at least 4096 samples" in err[-1]
    assert min_samples(4, 2, 441) == 4096 and min_samples(4, 2, RATE) == RATE


def test_evaluate_track_raises_before_any_least_squares(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_solve(*args: object, **kwargs: object) -> None:
        raise AssertionError("a least-squares solve ran on signals too short to score")

    monkeypatch.setattr(scipy.linalg, "cho_factor", no_solve)
    monkeypatch.setattr(scipy.linalg, "lstsq", no_solve)
    refs = _stems(RATE // 2, n_channels=1)
    with pytest.raises(TooShortError, match=r"song: the shortest signal is 0\.50 s long"):
        evaluate_track(refs, refs, RATE, name="song")


def test_an_underdetermined_system_is_solved_by_lu_not_svd(monkeypatch: pytest.MonkeyPatch) -> None:
    # bss_eval_v4 itself still scores a track shorter than a window (museval does), but a singular Gram matrix
    # goes to LU, as in museval, never to the SVD-based lstsq that took minutes on a 4096 x 4096 system.
    def failing_cholesky(*args: object, **kwargs: object) -> None:
        raise np.linalg.LinAlgError("not positive definite")

    def no_svd(*args: object, **kwargs: object) -> None:
        raise AssertionError("lstsq (SVD) ran")

    monkeypatch.setattr(scipy.linalg, "cho_factor", failing_cholesky)
    monkeypatch.setattr(scipy.linalg, "lstsq", no_svd)
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((2, 1, 300))  # 1024 unknowns, 811 samples of filtered signal
    estimate = reference + 0.1 * rng.standard_normal(reference.shape)
    scores = bss_eval_v4(reference, estimate, window=RATE, hop=RATE)
    assert scores.sdr.shape == (2, 1) and np.isfinite(scores.sdr).all()
