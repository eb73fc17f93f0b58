"""``shotoku adapt``: usage, bad input in one line, the run with its summary, --list and --remove."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.cli import main
from tests.engine.adapt_fixtures import OVERRIDES, high_band_detector, make_resources, write_library


@pytest.fixture
def resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    torch.set_num_threads(1)
    return make_resources(tmp_path, monkeypatch)


def test_usage_and_bad_input(tmp_path: Path, resources: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["adapt"]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["adapt", "--songs", str(tmp_path / "empty"), "--name", "mine"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("shotoku: error:") and "holds no audio file" in err[-1]
    assert main(["adapt", "--remove", "nothing"]) == 1
    assert "no model of yours" in capsys.readouterr().err
    assert main(["adapt", "--list"]) == 0
    assert "no model of your own" in capsys.readouterr().out


def test_adapt_runs_prints_what_it_found_and_the_scores(tmp_path: Path, resources: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]):
    from engine.adapt import job

    write_library(tmp_path / "songs")
    monkeypatch.setattr("engine.adapt.pools.separator_detector", lambda *args: high_band_detector)
    for key, value in OVERRIDES["train"].items():
        monkeypatch.setitem(job.TRAIN, key, value)
    assert main(["adapt", "--songs", str(tmp_path / "songs"), "--name", "mine", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "found in 4 song(s)" in out and "1 song(s) kept out" in out
    assert "| vocal leakage, songs kept out (dB, lower is better) |" in out
    assert "your model 'mine' is ready" in out
    assert main(["adapt", "--list"]) == 0
    assert "mine: Your model" in capsys.readouterr().out
    assert main(["adapt", "--remove", "mine"]) == 0
