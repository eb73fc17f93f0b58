"""Real-audio sources: reserved packages refused, the split by piece, fetch into pools + manifest, excerpts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.data.real import sources as srcs
from engine.data.real.splits import SPLIT_NAMES, SPLITS, split_of, split_value
from engine.errors import DatasetError
from tests.engine.synth_standins import make_fake_real, needs_dpkg, piece_names


@pytest.mark.parametrize("name", [
    "asc-music", "warzone2100-music", "musescore-general-soundfont", "musescore-general-soundfont-small",
    "timgm6mb-soundfont", "/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/x/unpacked/asc-music/usr/share/asc/music/a.ogg", "/usr/share/games/warzone2100/music/menu.ogg",
])
def test_reserved_sources_are_refused(name: str) -> None:
    with pytest.raises(DatasetError, match="reserved"):
        srcs.refuse_reserved(name)


def test_catalogue_sources_are_allowed_and_reserved_fetch_is_refused(tmp_path: Path) -> None:
    from engine.data.real.fetch import fetch_real_audio
    from engine.data.synth.render import DEFAULT_SOUNDFONT

    for s in srcs.ALL_SOURCES:
        srcs.refuse_reserved(s.package)
    srcs.refuse_reserved(DEFAULT_SOUNDFONT)
    with pytest.raises(DatasetError, match="reserved"):
        fetch_real_audio(tmp_path, packages=["asc-music"])
    with pytest.raises(DatasetError, match="reserved"):
        srcs.source("warzone2100-music")
    assert not (tmp_path / "debs").exists()


def test_split_is_a_pure_function_of_piece_and_group() -> None:
    names = [f"piece{i}" for i in range(2000)]
    splits = [split_of("pkg", n) for n in names]
    assert splits == [split_of("pkg", n) for n in names]
    counts = {s: splits.count(s) for s in SPLIT_NAMES}
    for name, fraction in SPLITS:  # the hash spreads pieces in the documented proportions
        assert abs(counts[name] / len(names) - fraction) < 0.04, counts
    assert all(0 <= split_value("pkg", n) < 1 for n in names[:50])
    # Versions of one composition share a split.
    assert split_of("nexuiz-music", "sixtyfour_revisited") == split_of("nexuiz-music", "sixtyfour_")
    assert split_of("wesnoth-1.16-music", "frantic-old") == split_of("wesnoth-1.16-music", "frantic")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if needs_dpkg.args[0]:
        pytest.skip(needs_dpkg.kwargs["reason"])
    return make_fake_real(tmp_path_factory.mktemp("real"))


@needs_dpkg
def test_fetch_prepares_pools_and_manifest(real: Path) -> None:
    manifest = json.loads((real / "real_manifest.json").read_text())
    names = piece_names()
    pieces = {p["piece"]: p for p in manifest["pieces"]}
    assert set(pieces) == set(names.values())
    for split, name in names.items():
        p = pieces[name]
        assert p["split"] == split and p["package"] == "wesnoth-1.16-music"
        assert p["licence"].startswith("GPL-2+") and abs(p["seconds"] - 24.0) < 0.1
        info = sf.info(str(real / p["file"]))
        assert (info.samplerate, info.channels, info.format) == (44100, 2, "FLAC")
        assert p["file"] == f"pools/{split}/wesnoth-1.16-music__{name}/instrumental.flac"
    excluded = {e["piece"]: e["reason"] for e in manifest["excluded"]}
    assert "choir" in excluded["nunc_dimittis"] and "stinger" in excluded["victory"]
    assert manifest["splits"]["train"]["n_pieces"] == 1 and set(manifest["splits"]) == set(SPLIT_NAMES)
    assert (real / "licences" / "wesnoth-1.16-music.copyright").is_file()
    kits = [s for s in manifest["sounds"] if s["kind"] == "drumkit"]
    assert [k["name"] for k in kits] == ["TinyKit"] and kits[0]["role"] == "acoustic"
    assert {s["package"] for s in manifest["sources"]} == {"wesnoth-1.16-music", "hydrogen-drumkits"}
    assert all(len(s["deb_sha256"]) == 64 for s in manifest["sources"])
    assert "asc-music" in manifest["reserved_never_used"]


@needs_dpkg
def test_fetch_again_reuses_everything_and_gives_the_same_manifest(real: Path) -> None:
    from engine.data.real.fetch import fetch_real_audio

    before = (real / "real_manifest.json").read_bytes()
    flac = next((real / "pools").rglob("*.flac"))
    stamp = flac.stat().st_mtime_ns
    fetch_real_audio(real, packages=["wesnoth-1.16-music", "hydrogen-drumkits"], debs=real.parent / "debs",
                     workers=1)
    assert (real / "real_manifest.json").read_bytes() == before
    assert flac.stat().st_mtime_ns == stamp


@needs_dpkg
def test_pool_excerpts_are_deterministic_and_stay_in_their_split(real: Path) -> None:
    from engine.data.real.pool import RealPool

    pool = RealPool(real, "check")
    a, where_a = pool.excerpt(np.random.default_rng(3), 44100 * 5)
    b, where_b = pool.excerpt(np.random.default_rng(3), 44100 * 5)
    assert np.array_equal(a, b) and where_a == where_b
    assert a.shape == (2, 44100 * 5) and a.dtype == np.float32 and np.abs(a).max() > 0.01
    assert where_a["split"] == "check" and where_a["piece"].endswith(piece_names()["check"])
    with pytest.raises(DatasetError):
        RealPool(real, "nonsense")


@needs_dpkg
def test_newly_excluded_pieces_leave_the_pools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.data.real.fetch import fetch_real_audio
    from tests.engine.synth_standins import make_fake_debs

    debs = make_fake_debs(tmp_path, seconds=21.0)
    out = tmp_path / "real"
    fetch_real_audio(out, packages=["wesnoth-1.16-music"], debs=debs, workers=1)
    train = piece_names()["train"]
    folder = out / "pools" / "train" / f"wesnoth-1.16-music__{train}"
    assert folder.is_dir()
    monkeypatch.setitem(srcs.EXCLUDED_PIECES, ("wesnoth-1.16-music", train), "a test exclusion")
    manifest = fetch_real_audio(out, packages=["wesnoth-1.16-music"], debs=debs, workers=1)
    assert not folder.exists() and manifest["splits"]["train"]["n_pieces"] == 0
    assert any(e["reason"] == "a test exclusion" for e in manifest["excluded"])
