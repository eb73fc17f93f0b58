"""bench/unpaired.py: the Table 1 and Table 3 shapes from run folders, on generated songs (--smoke)."""

from __future__ import annotations

import json
import math

import torch

from tests.engine.benches import load_bench


def _bench():  # noqa: ANN202
    return load_bench("unpaired")


def test_smoke_prints_both_tables_with_trained_missing_and_reference_rows(tmp_path, capsys):
    bench = _bench()
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--smoke", "--out", str(tmp_path / "scores.json")])
    finally:
        torch.set_num_threads(threads)
    table1, table3 = results["table1"], results["table3"]
    assert list(table1) == [label for label, source in bench.TABLE1 if source != "@default"]
    assert list(table3) == [label for label, _ in bench.TABLE3]
    for label in ("NMF", "Ours (semi-supervised)", "IRM oracle", "Band-limit ceiling"):
        for set_name in ("synthetic test", "real check"):
            scores = table1[label][set_name]
            assert scores["n_tracks"] == 1 and all(
                math.isfinite(scores[k]) for k in ("vocals_SDR", "vocals_SIR")
            )
    assert table1["GAN"]["synthetic test"] is None and "not trained" in table1["GAN"]["note"]
    assert (
        table1["Band-limit ceiling"]["synthetic test"]["vocals_SDR"]
        > table1["IRM oracle"]["synthetic test"]["vocals_SDR"] - 1
    )
    assert table3["All losses"] == table1["Ours (semi-supervised)"]
    printed = capsys.readouterr().out
    assert "| approach | synthetic test vocals SDR |" in printed and "| w/o GAN_A & GAN_C |" in printed
    assert json.loads((tmp_path / "scores.json").read_text())["table3"]["w/o R1"]["synthetic test"] is None


def test_rows_selects_table1_rows_by_run_name_and_refuses_unknown_ones(capsys):
    import pytest

    bench = _bench()
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--smoke", "--tables", "1", "--rows", "nmf", "@irm"])
        with pytest.raises(SystemExit):
            bench.main(["--smoke", "--tables", "1", "--rows", "nmf", "semisup-nowhere"])
    finally:
        torch.set_num_threads(threads)
    assert list(results["table1"]) == ["NMF", "IRM oracle"]
    assert "semisup-nowhere" in capsys.readouterr().err
