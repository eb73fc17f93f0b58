"""bench/quality.py and bench/realcheck.py end to end on a few seconds of generated audio (their smoke mode)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.engine.benches import load_bench

ROOT = Path(__file__).resolve().parents[2]
RATE = 44100
STEMS = ("vocals", "drums", "bass", "other")


bench = load_bench


def tone(seed: int, n_samples: int) -> np.ndarray:
    """A stereo test signal ``(n_samples, 2)``: a partial at its own frequency plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / RATE
    wave = 0.2 * np.sin(2 * np.pi * (110.0 * (seed + 1)) * t) + 0.02 * rng.standard_normal(n_samples)
    return np.stack([wave, 0.8 * wave], axis=1).astype(np.float32)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A MUSDB-layout corpus with one 2-second test track."""
    track = tmp_path / "corpus" / "test" / "song_0"
    track.mkdir(parents=True)
    stems = {name: tone(i, 2 * RATE) for i, name in enumerate(STEMS)}
    for name, audio in stems.items():
        sf.write(track / f"{name}.wav", audio, RATE, subtype="FLOAT")
    sf.write(track / "mixture.wav", sum(stems.values()), RATE, subtype="FLOAT")
    return tmp_path / "corpus"


def check_set(root: Path, package: str = "somegame-music") -> Path:
    """A check set: one song (vocals over an accompaniment) and one bare piece, 2 s each."""
    song = root / "check" / f"{package}__piece_0"
    song.mkdir(parents=True)
    vocals, accompaniment = tone(3, 2 * RATE), tone(0, 2 * RATE) + tone(1, 2 * RATE)
    sf.write(song / "vocals.wav", vocals, RATE, subtype="FLOAT")
    sf.write(song / "accompaniment.wav", accompaniment, RATE, subtype="FLOAT")
    sf.write(song / "mixture.wav", vocals + accompaniment, RATE, subtype="FLOAT")
    (song / "track.json").write_text(json.dumps({"accompaniment_source": {"package": package}}))
    piece = root / "instrumental" / f"{package}__piece"
    piece.mkdir(parents=True)
    sf.write(piece / "mixture.flac", accompaniment, RATE)
    return root


def rows(text: str) -> dict[str, list[str]]:
    """The markdown rows of ``text``: first cell -> the other cells (the first table a label appears in)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out.setdefault(cells[0], cells[1:])
    return out


def test_quality_bench_prints_the_readme_table_with_oracle_models_and_best(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--data", str(corpus), "--models", "identity", "tiny", "--best", "identity", "--tracks", "1",
            "--seconds", "1.5", "--threads", "1", "--no-plots", "--smoke", "--out", str(out)]  # fmt: skip
    assert bench("quality").main(args) == 0
    text = capsys.readouterr().out
    assert "Command: `python bench/quality.py --data" in text
    assert "| method | vocals | drums | bass | other | mean |" in text
    table = rows(text)
    assert {"mixture (lower bound)", "IRM oracle (upper bound)", "identity", "tiny"} <= set(table)
    best = next(label for label in table if label.startswith("best quality: identity, 4 shifts"))
    assert (
        table[best] == table["identity"] == table["mixture (lower bound)"]
    )  # identity's stems are the mixture
    assert float(table["IRM oracle (upper bound)"][-1]) > float(table["mixture (lower bound)"][-1]) + 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_set"]["tracks"] == 1 and summary["test_set"]["seconds"] == 1.5
    assert summary["smoke"] and summary["card_scores"] == {}  # smoke scores never go on a card
    assert set(summary["sdr_median"]["tiny"]) == set(STEMS)


def test_quality_bench_says_when_there_is_no_data(tmp_path, capsys):
    assert (
        bench("quality").main(["--data", str(tmp_path / "none"), "--models", "identity", "--no-oracle"]) == 1
    )
    assert "error" in capsys.readouterr().err


def test_realcheck_reports_sdr_and_leakage(tmp_path, capsys):
    data = check_set(tmp_path / "check")
    out = tmp_path / "out"
    args = ["--data", str(data), "--models", "identity", "tiny", "--best", "identity", "--threads", "1",
            "--smoke", "--out", str(out)]  # fmt: skip
    assert bench("realcheck").main(args) == 0
    text = capsys.readouterr().out
    assert "| method | vocals SDR | accompaniment SDR |" in text and "Vocal leakage per bare piece" in text
    table = rows(text)
    assert table["identity"][-2:] == ["0.00", "0.00"]  # identity's vocals are the whole input: 0 dB leakage
    assert table["tiny"][-1] != "0.00"
    oracle = float(table["IRM oracle, 2 stems (upper bound)"][0])
    assert oracle > float(table["mixture (lower bound)"][0]) + 5
    assert "somegame-music__piece" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["identity"]["leakage_db"]["somegame-music__piece"] == pytest.approx(
        0.0, abs=1e-4
    )


def test_realcheck_refuses_a_reserved_package(tmp_path, capsys):
    data = check_set(tmp_path / "check", package="asc-music")
    assert bench("realcheck").main(["--data", str(data), "--models", "identity", "--no-oracle"]) == 1
    assert "reserved" in capsys.readouterr().err
