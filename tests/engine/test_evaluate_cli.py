"""``shotoku evaluate`` end to end on folders the tests write, and the folder/report helpers under it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from engine.cli import main
from engine.errors import DatasetError
from engine.evaluate.folders import evaluate_folders, find_tracks, stem_of
from engine.evaluate.report import markdown_table, write_reports
from engine.evaluate.scores import evaluate_track

RATE = 8000
STEMS = ("vocals", "drums", "bass", "other")


def _sources(seed: int, n_samples: int, n_channels: int = 1) -> dict[str, np.ndarray]:
    """Four band-limited noise stems ``(n_channels, n_samples)``. Mono by default: the Gram matrix of BSS Eval
    then has half the size (an eighth of the factorisation work), and stereo is covered in test_evaluate_bss_eval."""
    rng = np.random.default_rng(seed)
    out = {}
    for j, stem in enumerate(STEMS):
        b, a = scipy.signal.butter(2, [0.05 + 0.2 * j, 0.2 + 0.2 * j], btype="band")
        noise = rng.standard_normal((n_channels, n_samples))
        out[stem] = (0.1 * scipy.signal.lfilter(b, a, noise, axis=-1)).astype(np.float32)
    return out


def _noisy(stems: dict[str, np.ndarray], snr_db: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for stem, ref in stems.items():
        noise = rng.standard_normal(ref.shape)
        noise *= np.sqrt(np.sum(ref.astype(np.float64) ** 2) / np.sum(noise**2) / 10 ** (snr_db / 10))
        out[stem] = (ref + noise).astype(np.float32)
    return out


def _write(folder: Path, stems: dict[str, np.ndarray], pattern: str = "{stem}.wav") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, samples in stems.items():
        sf.write(folder / pattern.format(stem=stem), samples.T, RATE, subtype="FLOAT")


@pytest.fixture
def dataset(tmp_path: Path) -> dict[str, Path]:
    """Two MUSDB-layout tracks of 6 s with estimates at 10 dB and 20 dB SNR (app export names for the latter)."""
    paths = {"reference": tmp_path / "ref", "snr10": tmp_path / "snr10", "snr20": tmp_path / "snr20"}
    for k, track in enumerate(["Track A", "Track B"]):
        refs = _sources(k, 6 * RATE)
        _write(paths["reference"] / track, refs)
        mixture = sum(refs.values())
        sf.write(paths["reference"] / track / "mixture.wav", mixture.T, RATE)  # not a stem: ignored
        _write(paths["snr10"] / track, _noisy(refs, 10.0, 100 + k))
        _write(paths["snr20"] / track, _noisy(refs, 20.0, 200 + k), pattern=track + " - {stem}.wav")
    return paths


@pytest.mark.slow
def test_cli_reports_known_snr(
    dataset: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "report"
    code = main([
        "evaluate", "--reference", str(dataset["reference"]),
        "--estimates", str(dataset["snr10"]), "--estimates", str(dataset["snr20"]),
        "--name", "noise10", "--name", "noise20", "--out", str(out),
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert {p.name for p in out.iterdir()} == {"scores.json", "scores.md"} | {
        f"boxplot_{s}.png" for s in STEMS
    }
    for stem in STEMS:
        assert (out / f"boxplot_{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = captured.out
    assert "SDR (BSS Eval v4, median of 1 s frames, median over tracks) [dB]" in table
    assert "uSDR (whole-track SDR" in table and "SI-SDR (scale-invariant" in table
    assert all(stem in table for stem in STEMS) and "noise10" in table and "noise20" in table
    assert "evaluate noise10" in captured.err  # progress line

    scores = json.loads((out / "scores.json").read_text())
    for name, snr in (("noise10", 10.0), ("noise20", 20.0)):
        method = scores["methods"][name]
        assert len(method["tracks"]) == 2
        for metric in ("SDR", "uSDR"):
            for stem in STEMS:
                assert method["median_over_tracks"][metric][stem] == pytest.approx(snr, abs=0.2), (
                    name,
                    metric,
                )
        frames = method["tracks"][0]["stems"]["vocals"]["frames"]["SDR"]
        assert len(frames) == 6
    assert "SDR (BSS Eval v4" in scores["metrics"]["SDR"]
    assert "## Notes" not in (out / "scores.md").read_text()


def test_cli_bad_folder_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    code = main(["evaluate", "--reference", str(tmp_path / "empty"), "--estimates", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shotoku: error: ")
    assert "empty" in lines[0] and "no stem files found" in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_missing_estimates_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write(tmp_path / "ref", _sources(0, RATE))
    code = main(["evaluate", "--reference", str(tmp_path / "ref"), "--estimates", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1] == f"shotoku: error: {tmp_path / 'nowhere'}: no such folder"


def test_cli_names_must_match_estimates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:  # a usage error: argparse's parser.error
        main(["evaluate", "--reference", str(tmp_path), "--estimates", str(tmp_path), "--name", "a", "--name", "b"])
    assert exc.value.code == 2 and "2 --name for 1 --estimates" in capsys.readouterr().err


@pytest.mark.slow
def test_single_track_folders_pair_whatever_their_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refs = _sources(4, 3 * RATE, n_channels=2)
    _write(tmp_path / "truth", refs)
    estimates = {s: refs[s][:, : 2 * RATE + 100] * 0.9 for s in ("vocals", "drums", "bass")}  # no "other"
    _write(tmp_path / "My Song (separated)", estimates, pattern="My Song - {stem}.wav")
    results = evaluate_folders(tmp_path / "truth", tmp_path / "My Song (separated)")
    assert len(results) == 1
    track = results[0]
    assert track.stems == ["vocals", "drums", "bass"]
    assert track.n_samples == 2 * RATE + 100
    assert "'other'" in caplog.text and "other.wav" in caplog.text  # the warning names the reference file
    assert any("truncated" in n for n in track.notes)
    np.testing.assert_allclose([track.value(s, "uSDR") for s in track.stems], 20.0, atol=1e-3)
    table = markdown_table({"x": results})
    assert "| x | 20.00 | 20.00 | 20.00 | 1 |" in table and "other" not in table  # "other" was not evaluated
    written = write_reports({"x": results}, tmp_path / "out")
    assert "boxplot_other" not in written
    assert "truncated" in (tmp_path / "out" / "scores.md").read_text()


def test_stem_names_and_layouts(tmp_path: Path) -> None:
    assert stem_of(Path("vocals.wav")) == "vocals"
    assert stem_of(Path("Artist - Song - Drums.FLAC")) == "drums"
    assert stem_of(Path("mixture.wav")) is None
    assert stem_of(Path("vocals.txt")) is None
    assert stem_of(Path(".vocals.wav")) is None
    _write(tmp_path / "musdb" / "t1", _sources(0, 100))
    (tmp_path / "musdb" / "not a track").mkdir()
    assert list(find_tracks(tmp_path / "musdb")) == ["t1"]
    _write(tmp_path / "dup", {"vocals": np.zeros((1, 100), np.float32)})
    sf.write(tmp_path / "dup" / "x - vocals.wav", np.zeros((100, 2)), RATE)
    with pytest.raises(DatasetError, match="two files for stem 'vocals'"):
        find_tracks(tmp_path / "dup")
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="not a folder"):
        find_tracks(tmp_path / "file.wav")


def test_unmatched_track_names_are_an_error(tmp_path: Path) -> None:
    for track in ("a", "b"):
        _write(tmp_path / "ref" / track, _sources(0, 100))
        _write(tmp_path / "est" / (track + "x"), _sources(0, 100))
    with pytest.raises(DatasetError, match="no track folder matches"):
        evaluate_folders(tmp_path / "ref", tmp_path / "est")


def test_silent_estimate_follows_museval_and_reports_stay_valid(tmp_path: Path) -> None:
    # museval scores a window NaN for every source when any reference or estimate is silent in it; the track
    # value is then NaN ("–" in tables, null in strict JSON), while the whole-track uSDR stays defined.
    refs = _sources(5, 2 * RATE)
    estimates = {stem: refs[stem] * 0.9 for stem in STEMS}
    estimates["bass"] = np.zeros_like(refs["bass"])
    track = evaluate_track(refs, estimates, RATE, name="silent bass")
    assert all(np.isnan(track.value(stem, "SDR")) for stem in STEMS)
    assert track.value("vocals", "uSDR") == pytest.approx(20.0, abs=1e-3)
    assert track.value("bass", "uSDR") == pytest.approx(0.0, abs=1e-3)
    written = write_reports({"m": [track]}, tmp_path)
    data = json.loads(written["json"].read_text())
    assert data["methods"]["m"]["median_over_tracks"]["SDR"]["vocals"] is None
    assert data["methods"]["m"]["tracks"][0]["stems"]["vocals"]["frames"]["SDR"] == [None, None]
    assert "| m | – | – | – | – | 1 |" in markdown_table({"m": [track]}, "SDR")
