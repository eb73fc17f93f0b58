"""``shotoku separate --quality best``: the plan is announced, recorded in the stem set, and really differs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.cli import main


def _song(path: Path, seconds: float = 2.5) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * 44100)) / 44100
    tone = np.sin(2 * np.pi * 330 * t)[:, None] * np.array([[0.3, 0.2]])
    sf.write(path, (tone + 0.05 * rng.standard_normal(tone.shape)).astype(np.float32), 44100, subtype="FLOAT")


def test_best_quality_is_announced_recorded_and_differs_from_fast(tmp_path, capsys):
    song = tmp_path / "song.wav"
    _song(song)
    common = ["separate", str(song), "--model", "tiny", "--bit-depth", "float", "--segment", "1"]
    assert main([*common, "-o", str(tmp_path / "fast")]) == 0
    capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "best"), "--quality", "best"]) == 0
    err = capsys.readouterr().err
    assert "Best quality: tiny" in err and "random shifts" in err, err
    manifest = json.loads((tmp_path / "best" / "song" / "stems.json").read_text())
    assert manifest["quality"] == "best"
    fast, _ = sf.read(tmp_path / "fast" / "song" / "vocals.wav", dtype="float32")
    best, _ = sf.read(tmp_path / "best" / "song" / "vocals.wav", dtype="float32")
    assert fast.shape == best.shape
    assert np.abs(fast - best).max() > 1e-6  # the shifted passes were averaged in


def test_best_quality_refuses_a_model_folder(tmp_path, capsys):
    song = tmp_path / "song.wav"
    _song(song, 0.5)
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(song), "-o", str(tmp_path / "o"), "--quality", "best", "--model-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--quality best" in capsys.readouterr().err
