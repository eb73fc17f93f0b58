"""Semi-supervised NMF (engine/models/nmf.py): the factorisation, the fixed instrumental bases, the separation and
the fit command writing a run folder that loads like a trained one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models.catalogue import build_model
from engine.models.nmf import SemisupNmf, fit, main, sparse_nmf
from engine.models.semisup import resample
from engine.train.export import load_run
from tests.engine.test_unpaired_clips import _tone, _write


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - small matrices: more threads than free cores only spin on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sparse_nmf_fits_a_low_rank_matrix_and_keeps_fixed_bases():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(20, 3, generator=g) @ torch.rand(3, 50, generator=g)
    w, h = sparse_nmf(v, 3, sparsity=0.0, iterations=300)
    assert (w >= 0).all() and (h >= 0).all()
    assert (v - w @ h).norm() < 0.05 * v.norm()
    fixed = torch.rand(20, 2, generator=g)
    fixed = fixed / fixed.norm(dim=0)
    w2, _ = sparse_nmf(v, 2, fixed=fixed, iterations=20)
    assert torch.allclose(w2[:, :2], fixed) and w2.shape == (20, 4)


def _two_tones(
    freq_low: float = 500, freq_high: float = 3000, seconds: float = 1.0
) -> tuple[np.ndarray, ...]:
    t = np.arange(int(seconds * 44100)) / 44100
    accompaniment = (0.3 * np.sin(2 * np.pi * freq_low * t)).astype(np.float32)
    vocals = (0.3 * np.sin(2 * np.pi * freq_high * t)).astype(np.float32)
    return accompaniment, vocals


def test_the_free_bases_take_what_the_instrumental_bases_cannot_explain():
    model = SemisupNmf(n_bases=1, n_free=1, iterations=100).eval()
    accompaniment, vocals = _two_tones()
    # S_C: the accompaniment itself, at the network's rate
    clip = resample(torch.from_numpy(accompaniment)[None], 44100, model.network_rate)
    fit(model, [clip])
    mix = torch.from_numpy(np.stack([accompaniment + vocals] * 2))[None]
    with torch.no_grad():
        out = model(mix)
    assert out.shape == (1, 2, 2, mix.shape[-1])
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-5)
    middle = slice(4000, -4000)
    est_vocals = out[0, 0, 0, middle].numpy()
    error = est_vocals - vocals[middle]
    assert np.sum(error**2) < 0.1 * np.sum(vocals[middle] ** 2)


def test_the_fit_command_writes_a_run_that_loads(tmp_path):
    _write(tmp_path / "unpaired" / "mixtures" / "m0" / "mixture.wav", _tone(300, seconds=4.0))
    _write(tmp_path / "unpaired" / "instrumental" / "i0" / "instrumental.wav", _tone(800, seconds=4.0))
    run = tmp_path / "runs" / "nmf"
    assert (
        main(
            [
                "fit",
                "--mixtures",
                str(tmp_path / "unpaired" / "mixtures"),
                "--instrumentals",
                str(tmp_path / "unpaired"),
                "--run",
                str(run),
                "--clips",
                "2",
            ]
        )
        == 0
    )
    config, model = load_run(run)
    assert config.architecture == "nmf-semisup" and isinstance(model, SemisupNmf)
    bases = model.instrumental_bases
    assert bases.shape == (257, 3) and not torch.allclose(
        bases, build_model("nmf-semisup").instrumental_bases
    )
    assert (
        main(
            ["fit", "--mixtures", str(tmp_path / "none"), "--instrumentals", str(tmp_path), "--run", str(run)]
        )
        == 1
    )
