"""The synthetic corpus: additivity, layout, manifest, determinism, unpaired disjointness, CLI behaviour."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.data.synth import render as rd
from engine.data.synth.corpus import make_corpus, track_seed

STEMS = ("drums", "bass", "other", "vocals")
HAVE_TOOLS = rd.DEFAULT_SOUNDFONT.is_file() and shutil.which("espeak-ng") is not None
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="FluidSynth SoundFont or espeak-ng not installed (apt)")
SMALL = {"n_train": 2, "n_valid": 1, "n_test": 1, "n_unpaired": 2, "seconds": 4.0, "workers": 2}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    make_corpus(out, seed=7, **SMALL)
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_tools
def test_layout_and_manifest(corpus: Path) -> None:
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        tracks = sorted(p.name for p in (corpus / split).iterdir())
        assert tracks == [f"{split}_{i:04d}" for i in range(n)]
        for t in tracks:
            names = sorted(p.name for p in (corpus / split / t).iterdir())
            assert names == sorted(f"{s}.wav" for s in ("mixture", *STEMS))
            info = sf.info(str(corpus / split / t / "mixture.wav"))
            assert (info.samplerate, info.channels, info.subtype, info.frames) == (44100, 2, "FLOAT", 4 * 44100)
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["seed"] == 7 and len(manifest["tracks"]) == 2 + 1 + 1 + 3 * 2
    entry = manifest["tracks"][0]
    song = entry["song"]
    assert 60 <= song["tempo"] <= 180 and song["key"].split()[0] in ("C", "C#", "D", "Eb", "E", "F", "F#", "G",
                                                                       "Ab", "A", "Bb", "B")
    assert {p["stem"] for p in song["parts"]} >= {"drums", "bass", "other"}
    assert all(0 <= p["program"] <= 127 for p in song["parts"])
    assert entry["seed"] == track_seed(7, "train", 0)
    assert "voice" in entry["mixing"]


@needs_tools
def test_mixture_is_exact_sum_of_written_stems(corpus: Path) -> None:
    for folder in sorted((corpus / "train").iterdir()) + sorted((corpus / "test").iterdir()):
        stems = [sf.read(str(folder / f"{s}.wav"), dtype="float64")[0] for s in STEMS]
        mixture = sf.read(str(folder / "mixture.wav"), dtype="float64")[0]
        assert np.max(np.abs(mixture - np.sum(stems, axis=0))) < 1e-6
        assert all(np.abs(s).max() > 1e-3 for s in stems), f"{folder}: a stem is silent"
        assert np.abs(mixture).max() <= 1.0


@needs_tools
def test_same_seed_same_bytes_other_seed_differs(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_corpus(again, seed=7, **(SMALL | {"workers": 1}))  # other scheduling, same bytes
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert _digest(corpus / rel) == _digest(again / rel), rel
    other = tmp_path / "other"
    make_corpus(other, seed=8, n_train=1, n_valid=0, n_test=0, n_unpaired=0, seconds=4.0, workers=1)
    assert _digest(other / "train/train_0000/mixture.wav") != _digest(corpus / "train/train_0000/mixture.wav")


@needs_tools
def test_unpaired_pools_are_disjoint(corpus: Path) -> None:
    manifest = json.loads((corpus / "manifest.json").read_text())
    seeds: dict[str, set[int]] = {}
    for e in manifest["tracks"]:
        seeds.setdefault(e["pool"], set()).add(e["seed"])
    pools = list(seeds)
    for i, a in enumerate(pools):
        for b in pools[i + 1:]:
            assert not seeds[a] & seeds[b], (a, b)
    mixtures = [sf.read(str(p), dtype="float64")[0] for p in sorted((corpus / "unpaired/mixtures").rglob("*.wav"))]
    sources = sorted((corpus / "unpaired/vocals").rglob("vocals.wav")) + sorted(
        (corpus / "unpaired/instrumental").rglob("instrumental.wav"))
    assert len(mixtures) == 2 and len(sources) == 4
    for path in sources:
        s = sf.read(str(path), dtype="float64")[0]
        for m in mixtures:
            # If s were part of m, projecting m on s would explain a large share of s's energy.
            coef = float(np.sum(m * s) / np.sum(s * s))
            residual = m - coef * s
            assert np.sum(residual**2) > 0.9 * np.sum(m**2), path
    paired = {_digest(p) for p in corpus.glob("[tv]*/*/*.wav")}
    assert not paired & {_digest(p) for p in (corpus / "unpaired").rglob("*.wav")}


@needs_tools
def test_fluidsynth_renders_deterministically_from_a_reused_renderer() -> None:
    from engine.data.synth.compose import compose

    song = compose(3, 3.0)
    renderer = rd.PartRenderer(rd.DEFAULT_SOUNDFONT)
    first = [renderer.render(p, 3 * 44100) for p in song.parts[:3]]
    second = [renderer.render(p, 3 * 44100) for p in reversed(song.parts[:3])][::-1]
    for a, b in zip(first, second, strict=True):
        assert a.dtype == np.float32 and a.shape == (2, 3 * 44100)
        assert np.array_equal(a, b)
    assert np.abs(first[0]).max() > 0.01  # the drums actually sound


def test_missing_soundfont_is_a_one_line_error(tmp_path: Path) -> None:
    from engine.cli import main

    code = main(["dataset", "synth", "--out", str(tmp_path / "c"), "--soundfont", str(tmp_path / "no.sf2")])
    assert code == 1
    assert not (tmp_path / "c" / "train").exists()


def test_app_cli_imports_without_training_tools(tmp_path: Path) -> None:
    """With pyfluidsynth and pyworld unimportable the CLI still starts, and `dataset synth` says what to install."""
    code = (
        "import sys; sys.modules['fluidsynth'] = None; sys.modules['pyworld'] = None\n"
        "from engine.cli import main\n"
        f"sys.exit(main(['dataset', 'synth', '--out', {str(tmp_path / 'c')!r}, '--tracks', '1']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1, proc.stderr
    assert "shotoku: error:" in proc.stderr and "apt-get install" in proc.stderr
    assert "Traceback" not in proc.stderr


@needs_tools
def test_cli_writes_a_small_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    out = tmp_path / "c"
    code = main(["dataset", "synth", "--out", str(out), "--tracks", "1", "--seconds", "2", "--valid-tracks", "0",
                 "--test-tracks", "0", "--unpaired-tracks", "0", "--workers", "1"])
    assert code == 0
    assert sorted(p.name for p in (out / "train" / "train_0000").iterdir()) == sorted(
        f"{s}.wav" for s in ("mixture", *STEMS))
    captured = capsys.readouterr()
    assert "x real time" in captured.out and "synth [" in captured.err


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    from engine.cli import main

    for bad in (["--seconds", "0"], ["--tracks", "-1"]):
        with pytest.raises(SystemExit) as info:
            main(["dataset", "synth", "--out", str(tmp_path), *bad])
        assert info.value.code == 2


@needs_tools
def test_loaders_read_the_generated_corpus(corpus: Path) -> None:
    from engine.data.musdb import MusdbDataset, iter_tracks
    from engine.data.unpaired import UnpairedSampler

    ds = MusdbDataset(corpus, "train", segment_seconds=1.0, samples_per_epoch=3, augment=True, seed=0)
    mixture, stems = ds[0]
    assert mixture.shape == (2, 44100) and stems.shape == (4, 2, 44100)
    names = [name for name, *_ in iter_tracks(corpus, "valid")]
    assert names == ["valid_0000"]
    sampler = UnpairedSampler(corpus / "unpaired" / "mixtures", corpus / "unpaired", ("vocals", "instrumental"),
                              segment_seconds=1.0)
    assert len(sampler.mixtures) == 2 and all(len(v) == 2 for v in sampler.sources.values())


@needs_tools
def test_cancel_stops_generation(tmp_path: Path) -> None:
    import threading

    from engine.errors import SeparationCancelled

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SeparationCancelled):
        make_corpus(tmp_path / "c", n_train=50, n_valid=0, n_test=0, n_unpaired=0, seconds=4.0, workers=1,
                    cancel=cancel)
    assert not (tmp_path / "c" / "manifest.json").exists()
    assert len(list((tmp_path / "c").rglob("*.wav"))) < 10 * 5  # stopped early, not after all 50 tracks


# --- version 2 with real accompaniment (stand-in packages, see tests/engine/synth_standins.py) -----------------

REAL_COUNTS = {"n_real_train": 2, "n_real_valid": 1, "n_unpaired_real": 1}


@pytest.fixture(scope="module")
def fake_real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.engine.synth_standins import make_fake_real, needs_dpkg

    if needs_dpkg.args[0]:
        pytest.skip(needs_dpkg.kwargs["reason"])
    return make_fake_real(tmp_path_factory.mktemp("fake_real"))


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory: pytest.TempPathFactory, fake_real: Path) -> Path:
    if not HAVE_TOOLS:
        pytest.skip("FluidSynth SoundFont or espeak-ng not installed (apt)")
    out = tmp_path_factory.mktemp("real_corpus")
    make_corpus(out, seed=3, real_dir=fake_real, **(SMALL | {"n_unpaired": 1}), **REAL_COUNTS)
    return out


@needs_tools
def test_real_accompaniment_tracks_are_exact_and_say_what_is_known(real_corpus: Path) -> None:
    for split, n in (("train_realacc", 2), ("valid_realacc", 1)):
        folders = sorted((real_corpus / split).iterdir())
        assert [f.name for f in folders] == [f"{split}_{i:04d}" for i in range(n)]
        for folder in folders:
            assert sorted(p.name for p in folder.iterdir()) == ["accompaniment.wav", "mixture.wav", "track.json",
                                                                "vocals.wav"]
            parts = [sf.read(str(folder / f"{s}.wav"), dtype="float64")[0] for s in ("vocals", "accompaniment")]
            mixture = sf.read(str(folder / "mixture.wav"), dtype="float64")[0]
            assert np.max(np.abs(mixture - parts[0] - parts[1])) <= 1e-6
            assert all(np.abs(p).max() > 1e-3 for p in parts) and np.abs(mixture).max() <= 1.0
            meta = json.loads((folder / "track.json").read_text())
            assert meta["known"] == ["vocals", "accompaniment"] and "drums" in meta["unknown"]
            src = meta["accompaniment_source"]
            assert src["split"] == {"train_realacc": "train", "valid_realacc": "valid"}[split]
            assert src["licence"].startswith("GPL-2+")
    # Issue 12's S_A: only the mixture is in the pool; its references are outside every pool.
    assert [p.name for p in (real_corpus / "unpaired/real_mixtures/real_mixtures_0000").iterdir()] == ["mixture.wav"]
    refs = real_corpus / "refs/unpaired_real_mixtures/real_mixtures_0000"
    assert json.loads((refs / "track.json").read_text())["accompaniment_source"]["split"] == "unpaired_a"
    manifest = json.loads((real_corpus / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["counts"]["train_realacc"] == 2
    assert "TinyKit" in manifest["sounds"]["kits"] and "fluidr3" in manifest["sounds"]["licences"]
    assert manifest["real"]["splits"]["check"]["n_pieces"] == 1 and "Jeon" in manifest["loudness"]["source"]


@needs_tools
def test_real_corpus_is_the_same_bytes_with_other_workers(real_corpus: Path, fake_real: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_corpus(again, seed=3, real_dir=fake_real, **(SMALL | {"n_unpaired": 1, "workers": 1}), **REAL_COUNTS)
    files = sorted(p.relative_to(real_corpus) for p in real_corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert _digest(real_corpus / rel) == _digest(again / rel), rel


@needs_tools
def test_known_loader_reads_the_real_corpus(real_corpus: Path) -> None:
    from engine.data.known import KnownStemsDataset

    ds = KnownStemsDataset(real_corpus, ("train", "train_realacc"), segment_seconds=1.0, samples_per_epoch=4)
    mixture, stems, known = ds[0]
    assert mixture.shape == (2, 44100) and stems.shape == (4, 2, 44100) and known.shape == (4,)


@needs_tools
def test_check_set_has_references_and_bare_pieces(fake_real: Path, tmp_path: Path) -> None:
    from engine.data.synth.realacc import make_check_set

    out = tmp_path / "check"
    manifest = make_check_set(out, fake_real, seconds=3.0, n_excerpts=2, seed=1, workers=1)
    assert len(manifest["tracks"]) == 2 and len(manifest["instrumentals"]) == 1
    for entry in manifest["tracks"]:
        folder = out / "check" / entry["name"]
        v, a, m = (sf.read(str(folder / f"{s}.wav"), dtype="float64")[0] for s in ("vocals", "accompaniment",
                                                                                  "mixture"))
        assert np.max(np.abs(m - v - a)) <= 1e-6 and np.abs(v).max() > 1e-3
        assert entry["accompaniment_source"]["split"] == "check"
    starts = [e["accompaniment_source"]["start_seconds"] for e in manifest["tracks"]]
    assert starts[0] != starts[1]
    piece = manifest["instrumentals"][0]["name"]
    bare = out / "instrumental" / piece / "mixture.flac"
    assert bare.read_bytes() == next((fake_real / "pools" / "check").rglob("instrumental.flac")).read_bytes()


@needs_tools
def test_classic_generator_still_makes_version_1(tmp_path: Path) -> None:
    manifest = make_corpus(tmp_path / "c", n_train=1, n_valid=0, n_test=0, n_unpaired=0, seconds=2.0, workers=1,
                           classic=True)
    assert manifest["version"] == 1 and "sounds" not in manifest
    assert "mix_rms_db" in manifest["tracks"][0]


def test_cli_refuses_reserved_packages_and_real_counts_without_real(tmp_path: Path) -> None:
    from engine.cli import main

    assert main(["dataset", "fetch", "--out", str(tmp_path / "r"), "--packages", "asc-music"]) == 1
    assert main(["dataset", "synth", "--out", str(tmp_path / "c"), "--real-tracks", "2"]) == 1
    assert main(["dataset", "check", "--out", str(tmp_path / "k")]) == 1
