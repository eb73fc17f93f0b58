"""bench/vae.py: the Figure 3, MUMS and songs tables from run folders, on generated data (--smoke)."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from tests.engine.benches import load_bench


def _bench():  # noqa: ANN202
    return load_bench("vae")


def test_smoke_prints_the_three_tables_with_trained_missing_and_oracle_rows(tmp_path, capsys):
    bench = _bench()
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--smoke", "--out", str(tmp_path / "scores.json")])
    finally:
        torch.set_num_threads(threads)
    figure3, mums, songs = results["figure3"], results["mums"], results["songs"]
    assert list(figure3) == [label for label, _ in bench.FIGURE3]
    for label in ("Mixture", "UDT", "UDT, last epoch", "Supervised twin", "IRM oracle"):
        for set_name in ("train", "test"):
            assert all(math.isfinite(figure3[label][set_name][m]["median"]) for m in bench.METRICS)
    assert figure3["UDT, last epoch"]["note"] == "run udt, last epoch"
    assert figure3["UDT, last epoch"]["test"]["SI-SDR"]["median"] != figure3["UDT"]["test"]["SI-SDR"]["median"]
    assert figure3["Supervised twin, last epoch"]["note"].startswith("no last epoch")
    floor, oracle = (figure3[row]["test"]["SI-SDR"]["median"] for row in ("Mixture", "IRM oracle"))
    assert floor < oracle - 5  # the unprocessed mixture is what a separator must beat
    assert list(mums) == [label for label, _ in bench.MUMS]
    assert mums["MixIT"]["SI-SDR"] is None and "not trained" in mums["MixIT"]["note"]
    assert mums["Mixture"]["SI-SDR"] < mums["IRM"]["SI-SDR"] - 10  # no separation is the floor
    assert mums["IRM"]["SI-SDR"] > 15 and all(math.isfinite(mums[k]["SIR"]) for k in ("AE", "VAE", "VAEM", "NMF"))
    assert set(songs) == {2, 3, 4} and songs[3]["VAEM K=3"]["SI-SDR"] is None
    assert math.isfinite(songs[2]["VAEM K=2"]["SI-SDR"])
    assert songs[4]["Mixture / K"]["SI-SDR"] < songs[4]["IRM"]["SI-SDR"]
    printed = capsys.readouterr().out
    assert "| metric | Mixture | AE | VAE | VAEM | NMF | MixIT | IBM | IRM |" in printed
    assert "| approach | set | n | SI-SDR box |" in printed
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["mums"]["MixIT"]["note"].startswith("not trained")


def test_estimates_are_matched_to_references_by_the_best_permutation_or_grouping():
    bench = _bench()
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 500))
    assert np.allclose(bench.match(refs, refs[::-1].copy()), refs)
    split = np.stack([0.5 * refs[1], refs[0], 0.5 * refs[1]])  # 3 outputs, the second reference in two halves
    assert np.allclose(bench.match(refs, split), refs)


def test_figure3_for_the_bass_target_names_the_bass_runs(capsys):
    bench = _bench()
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--smoke", "--tables", "figure3", "--target", "bass"])
    finally:
        torch.set_num_threads(threads)
    assert results["figure3"]["UDT"]["note"] == "not trained (udt-bass/best.safetensors missing)"
    assert math.isfinite(results["figure3"]["IRM oracle"]["test"]["SI-SDR"]["median"])
    assert "bass of 2 s clips" in capsys.readouterr().out
