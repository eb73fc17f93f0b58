"""Loaders: MUSDB18-HQ folders, .stem.mp4, validation of bad data, chunking/augmentation, unpaired pools."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.data import augment
from engine.data.musdb import ALL_STEMS, ChunkSampler, MusdbDataset, iter_tracks, scan_split
from engine.data.unpaired import UnpairedSampler, unpaired_dataset
from engine.errors import DatasetError

SR = 44100
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "synth_sample"


def _write_track(folder: Path, value: float, n: int = SR, rate: int = SR, skip: str | None = None,
                 lengths: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Stems whose left channel is a constant ``value * (k + 1)`` and right twice that (identifiable)."""
    folder.mkdir(parents=True)
    stems = {}
    for k, name in enumerate(ALL_STEMS):
        m = (lengths or {}).get(name, n)
        v = value * (k + 1)
        x = np.stack([np.full(m, v), np.full(m, 2 * v)]).astype(np.float32)
        stems[name] = x
        if name != skip:
            sf.write(str(folder / f"{name}.wav"), x.T, rate, subtype="FLOAT")
    mix = sum(s[:, :n] for s in stems.values() if s.shape[1] >= n)
    sf.write(str(folder / "mixture.wav"), np.asarray(mix).T, rate, subtype="FLOAT")
    return stems


@pytest.fixture
def good_root(tmp_path: Path) -> Path:
    for i in range(3):
        _write_track(tmp_path / "train" / f"t{i}", 0.01 * (i + 1), n=SR * 2)
    return tmp_path


def test_scan_reports_and_skips_bad_tracks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_track(tmp_path / "train" / "good", 0.01)
    _write_track(tmp_path / "train" / "missing", 0.01, skip="bass")
    _write_track(tmp_path / "train" / "short", 0.01, lengths={"other": SR - 10})
    _write_track(tmp_path / "train" / "silent", 0.0)
    rate = tmp_path / "train" / "rate"
    _write_track(rate, 0.01)
    sf.write(str(rate / "vocals.wav"), np.full((SR, 2), 0.1, np.float32), 22050, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="shotoku.data"):
        tracks = scan_split(tmp_path, "train")
    assert [t.name for t in tracks] == ["good"]
    text = caplog.text
    assert "missing" in text and "bass.wav" in text and "missing stem" in text
    assert "short" in text and "other.wav" in text and "length" in text
    assert "silent" in text and "is silent" in text
    assert "rate" in text and "22050" in text


def test_split_without_usable_track_is_refused(tmp_path: Path) -> None:
    _write_track(tmp_path / "valid" / "only", 0.01, skip="vocals")
    with pytest.raises(DatasetError, match="no usable track"):
        scan_split(tmp_path, "valid")
    with pytest.raises(DatasetError, match="no such split"):
        scan_split(tmp_path, "test")


def test_iter_tracks_is_sorted_and_complete(good_root: Path) -> None:
    items = list(iter_tracks(good_root, "train"))
    assert [name for name, *_ in items] == ["t0", "t1", "t2"]
    for _name, mixture, stems, rate in items:
        assert rate == SR and mixture.shape == (2, 2 * SR) and mixture.dtype == np.float32
        assert list(stems) == ["vocals", "drums", "bass", "other"]
        np.testing.assert_allclose(mixture, sum(stems.values()), atol=1e-6)


def test_chunks_remix_across_tracks_with_gain_and_swap(good_root: Path) -> None:
    sampler = ChunkSampler(good_root, "train", sources=ALL_STEMS, segment_seconds=0.5, augment=True)
    rng = np.random.default_rng(0)
    seen_mixed = seen_swapped = False
    for _ in range(40):
        mixture, stems, names = sampler.sample(rng)
        assert names == list(ALL_STEMS) and stems.shape == (4, 2, SR // 2) and stems.dtype == np.float32
        np.testing.assert_allclose(mixture, stems.sum(axis=0), atol=1e-6)
        origins = set()
        for k, stem in enumerate(stems):
            left, right = float(stem[0, 0]), float(stem[1, 0])
            if left > right:
                seen_swapped = True
                left, right = right, left
            assert right == pytest.approx(2 * left, rel=1e-5)
            # left = gain * 0.01 * (track + 1) * (k + 1) with gain in [0.25, 1.25]: find the track.
            fits = [i for i in range(3) if 0.25 - 1e-6 <= left / (0.01 * (i + 1) * (k + 1)) <= 1.25 + 1e-6]
            origins.add(tuple(fits))
        seen_mixed |= len(origins) > 1
    assert seen_mixed and seen_swapped


def test_chunks_without_augmentation_come_from_one_track(good_root: Path) -> None:
    sampler = ChunkSampler(good_root, "train", sources=("vocals", "bass"), segment_seconds=0.25, augment=False)
    mixture, stems, names = sampler.sample(np.random.default_rng(3))
    assert names == ["vocals", "bass"] and stems.shape == (2, 2, SR // 4)
    ratio = stems[0, 0, 0] / stems[1, 0, 0]  # vocals (k=3) / bass (k=1) of the same track
    assert ratio == pytest.approx(4 / 2)
    assert mixture[0, 0] == pytest.approx(stems[1, 0, 0] / 2 * 10)  # mixture = sum over k of v * (k + 1)


def test_torch_dataset_contract_and_determinism(good_root: Path) -> None:
    ds = MusdbDataset(good_root, "train", sources=("vocals", "drums", "bass", "other"), segment_seconds=0.5,
                      samples_per_epoch=7, augment=True, seed=5)
    assert len(ds) == 7
    mixture, stems = ds[3]
    assert isinstance(mixture, torch.Tensor) and mixture.dtype == torch.float32 and mixture.shape == (2, SR // 2)
    assert stems.shape == (4, 2, SR // 2)
    torch.testing.assert_close(mixture, stems.sum(0), atol=1e-6, rtol=0)
    again = MusdbDataset(good_root, "train", segment_seconds=0.5, samples_per_epoch=7, seed=5)
    assert torch.equal(again[3][1], stems)
    again.set_epoch(1)
    assert not torch.equal(again[3][1], stems)
    with pytest.raises(IndexError):
        ds[7]
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    batch_mix, batch_stems = next(iter(loader))
    assert batch_mix.shape == (3, 2, SR // 2) and batch_stems.shape == (3, 4, 2, SR // 2)


def test_augment_functions() -> None:
    rng = np.random.default_rng(0)
    x = np.ones((4, 2, 10), np.float32)
    x[:, 1] = 2
    g = augment.random_gains(x, rng)
    assert np.all((g[:, 0] >= 0.25) & (g[:, 0] <= 1.25)) and np.allclose(g[:, 1], 2 * g[:, 0])
    swapped = augment.channel_swap(x, np.random.default_rng(1), p=1.0)
    assert np.all(swapped[:, 0] == 2) and np.all(swapped[:, 1] == 1)
    assert np.array_equal(augment.channel_swap(x, rng, p=0.0), x)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (needed for .stem.mp4)")
def test_stem_mp4_is_decoded(tmp_path: Path) -> None:
    t = np.arange(2 * SR) / SR
    inputs = []
    for k, name in enumerate(("mixture", *ALL_STEMS)):
        x = 0.2 * np.sin(2 * np.pi * 220 * (k + 1) * t)
        path = tmp_path / f"{name}.wav"
        sf.write(str(path), np.stack([x, x], axis=1), SR)
        inputs += ["-i", str(path)]
    out = tmp_path / "test" / "Artist - Song.stem.mp4"
    out.parent.mkdir()
    maps = [arg for k in range(5) for arg in ("-map", f"{k}:a")]
    subprocess.run(["ffmpeg", "-v", "error", *inputs, *maps, "-c:a", "aac", "-b:a", "256k", str(out)], check=True)
    tracks = scan_split(tmp_path, "test")
    assert [tr.name for tr in tracks] == ["Artist - Song"]
    vocals = tracks[0].read("vocals", 0, SR)
    assert vocals.shape == (2, SR)
    spectrum = np.abs(np.fft.rfft(vocals[0]))
    assert np.argmax(spectrum) == pytest.approx(220 * 5, abs=2)  # 1 Hz bins: the vocals stream, not another
    assert np.sqrt(np.mean(vocals[0, 5000:] ** 2)) == pytest.approx(0.2 / np.sqrt(2), rel=0.1)
    later = tracks[0].read("bass", SR // 2, SR // 4)  # a chunk from the middle (ffmpeg seeking)
    assert later.shape == (2, SR // 4) and np.argmax(np.abs(np.fft.rfft(later[0]))) == pytest.approx(660 / 4, abs=1)
    ((name, mixture, stems, rate),) = list(iter_tracks(tmp_path, "test"))
    assert name == "Artist - Song" and rate == SR and mixture.shape[1] >= 2 * SR - 2048
    bad = tmp_path / "test" / "Two - Streams.stem.mp4"
    subprocess.run(["ffmpeg", "-v", "error", *inputs[:4], "-map", "0:a", "-map", "1:a", "-c:a", "aac", str(bad)],
                   check=True)
    assert [tr.name for tr in scan_split(tmp_path, "test")] == ["Artist - Song"]


def _unpaired_tree(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for i in range(2):
        for pool, name in (("mixtures", "mixture"), ("sources/vocals", "vocals"), ("sources/inst", "instrumental")):
            folder = root / pool / f"{name}_{i}"
            folder.mkdir(parents=True)
            sf.write(str(folder / f"{name}.wav"), 0.1 * rng.standard_normal((SR, 2)).astype(np.float32), SR,
                     subtype="FLOAT")
    return root / "mixtures", root / "sources"


def test_unpaired_sampler_and_dataset(tmp_path: Path) -> None:
    mixtures, sources = _unpaired_tree(tmp_path)
    sampler = UnpairedSampler(mixtures, sources, ("vocals", "instrumental"), segment_seconds=0.5)
    mix, srcs, names = sampler.sample(np.random.default_rng(0))
    assert mix.shape == (2, SR // 2) and srcs.shape == (2, 2, SR // 2) and names == ["vocals", "instrumental"]
    ds = unpaired_dataset(mixtures, sources, segment_seconds=0.5, samples_per_epoch=4, seed=1)
    assert len(ds) == 4 and torch.equal(ds[2][0], ds[2][0]) and ds[2][1].shape == (2, 2, SR // 2)
    with pytest.raises(DatasetError, match="drums"):
        UnpairedSampler(mixtures, sources, ("drums",), segment_seconds=0.5)
    with pytest.raises(DatasetError, match="both"):
        UnpairedSampler(tmp_path, sources, ("vocals",), segment_seconds=0.5)


@pytest.mark.skipif(not SAMPLE_DIR.is_dir(), reason="tests/data/synth_sample not present")
def test_committed_sample_loads_and_is_additive() -> None:
    items = list(iter_tracks(SAMPLE_DIR, "train"))
    assert len(items) == 2
    for _, mixture, stems, rate in items:
        assert rate == SR and mixture.shape[0] == 2
        assert np.max(np.abs(mixture - sum(stems.values()))) < 1e-6


def test_silence_check_on_long_files_reads_past_the_probes(tmp_path: Path) -> None:
    from engine.data.musdb import _peak

    n = 8 * SR  # long enough for the probing shortcut
    x = np.zeros((n, 2), np.float32)
    sparse = tmp_path / "sparse.wav"
    x[n // 2 + 1234] = 0.5  # one click that no probe window covers
    sf.write(str(sparse), x, SR, subtype="FLOAT")
    assert _peak(sparse) == pytest.approx(0.5)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros((n, 2), np.float32), SR, subtype="FLOAT")
    assert _peak(silent) == 0.0
    loud = tmp_path / "loud.wav"
    sf.write(str(loud), np.full((n, 2), 0.25, np.float32), SR, subtype="FLOAT")
    assert _peak(loud) == pytest.approx(0.25)


def test_valid_tracks_derive_the_accompaniment_the_corpus_does_not_store(good_root: Path) -> None:
    """A vocals/accompaniment model (svsgan, semisup) is validated and exported on the four-stem corpus."""
    from engine.train.validation import load_valid_tracks

    ((name, mixture, stems),) = load_valid_tracks(good_root, ["vocals", "accompaniment"], 1, 1.0, split="train")
    assert stems.shape == (2, 2, SR)
    np.testing.assert_allclose(stems[0] + stems[1], mixture, atol=1e-6)
    assert np.abs(stems[1]).max() > 0 and not np.allclose(stems[1], mixture)
