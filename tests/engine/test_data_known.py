"""Chunks with a known-stem mask: ordinary tracks beside real-accompaniment tracks (vocals + accompaniment)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.data.known import KnownSampler, KnownStemsDataset, iter_known_tracks, scan_known, track_known
from engine.data.musdb import ALL_STEMS, MusdbDataset
from engine.errors import DatasetError

SR = 44100


def _write(folder: Path, stems: dict[str, float], meta: dict | None = None, n: int = SR) -> None:
    folder.mkdir(parents=True)
    mix = np.zeros((2, n), np.float32)
    for name, v in stems.items():
        x = np.stack([np.full(n, v), np.full(n, 2 * v)]).astype(np.float32)
        sf.write(str(folder / f"{name}.wav"), x.T, SR, subtype="FLOAT")
        mix += x
    sf.write(str(folder / "mixture.wav"), mix.T, SR, subtype="FLOAT")
    if meta is not None:
        (folder / "track.json").write_text(json.dumps(meta))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for i in range(2):
        _write(tmp_path / "train" / f"t{i}", {s: 0.01 * (k + 1) + 0.1 * i for k, s in enumerate(ALL_STEMS)})
    for i in range(2):
        _write(tmp_path / "train_realacc" / f"r{i}", {"vocals": 0.05 + 0.1 * i, "accompaniment": 0.3},
               {"kind": "real_accompaniment", "known": ["vocals", "accompaniment"]})
    return tmp_path


def test_track_metadata_says_what_is_known(root: Path) -> None:
    assert track_known(root / "train" / "t0") == ALL_STEMS + ("accompaniment",)
    assert track_known(root / "train_realacc" / "r0") == ("vocals", "accompaniment")
    assert [t.real for t in scan_known(root, "train_realacc")] == [True, True]
    (root / "train_realacc" / "r0" / "track.json").write_text(json.dumps({"known": ["vocals", "piano"]}))
    with pytest.raises(DatasetError):
        track_known(root / "train_realacc" / "r0")


def test_known_mask_zeros_and_exact_mixture(root: Path) -> None:
    sources = ("vocals", "drums", "bass", "other", "accompaniment")
    sampler = KnownSampler(root, ("train", "train_realacc"), sources, segment_seconds=0.1, augment=True)
    seen_real = seen_ordinary = False
    for i in range(40):
        mixture, stems, known = sampler.sample(np.random.default_rng(i))
        assert stems.shape == (5, 2, 4410) and known.shape == (5,) and known.dtype == bool
        assert known[0] and known[4]  # vocals and accompaniment are always known
        assert np.array_equal(mixture, mixture)  # finite
        assert np.max(np.abs(mixture - stems[0] - stems[4])) < 1e-6
        if known[1]:
            seen_ordinary = True
            assert np.max(np.abs(stems[4] - stems[1] - stems[2] - stems[3])) < 1e-6
        else:
            seen_real = True
            assert not known[2] and not known[3] and not stems[1:4].any()
    assert seen_real and seen_ordinary


def test_without_augmentation_one_track_and_its_mixture_file(root: Path) -> None:
    sampler = KnownSampler(root, ("train_realacc",), ("vocals", "drums"), segment_seconds=0.1, augment=False)
    mixture, stems, known = sampler.sample(np.random.default_rng(0))
    assert known.tolist() == [True, False] and not stems[1].any()
    assert np.allclose(mixture[0], stems[0][0] + 0.3)


def test_dataset_is_deterministic_and_loaders_stay_apart(root: Path) -> None:
    ds = KnownStemsDataset(root, ("train", "train_realacc"), segment_seconds=0.1, samples_per_epoch=4, seed=1)
    a = ds[2]
    b = KnownStemsDataset(root, ("train", "train_realacc"), segment_seconds=0.1, samples_per_epoch=4, seed=1)[2]
    assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b, strict=True))
    assert a[2].dtype.is_floating_point is False
    with pytest.raises(IndexError):
        ds[4]
    # The MUSDB-layout loader keeps serving ordinary tracks and refuses a split of real-accompaniment ones.
    assert MusdbDataset(root, "train", segment_seconds=0.1)[0][1].shape == (4, 2, 4410)
    with pytest.raises(DatasetError):
        MusdbDataset(root, "train_realacc", segment_seconds=0.1)


def test_iter_known_tracks_for_evaluation(root: Path) -> None:
    rows = list(iter_known_tracks(root, "train_realacc", ("vocals", "accompaniment", "drums")))
    assert [r[0] for r in rows] == ["r0", "r1"]
    name, mixture, stems, rate = rows[0]
    assert rate == SR and stems["drums"] is None
    assert np.max(np.abs(mixture - stems["vocals"] - stems["accompaniment"])) < 1e-6
