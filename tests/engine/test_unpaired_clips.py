"""Monaural clips at 20480 Hz for the semi-supervised network (engine/data/unpaired_pairs.py) and the pools the
semisup objective reads (synthetic and real)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.data.unpaired_pairs import PairedClips, UnpairedClips
from engine.errors import DatasetError
from engine.models.semisup import CLIP_SAMPLES, NETWORK_RATE
from engine.train.config import TrainConfig
from engine.train.objectives import build_objective
from tests.engine.test_semisup import TINY


def _write(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.T, 44100, subtype="FLOAT")


def _tone(freq: float, seconds: float = 2.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * 44100)) / 44100
    return np.stack(
        [0.3 * np.sin(2 * np.pi * freq * t) * (k + 1) / channels for k in range(channels)]
    ).astype(np.float32)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for i in range(2):
        _write(tmp_path / "unpaired" / "mixtures" / f"m{i}" / "mixture.wav", _tone(300 + 50 * i))
        _write(tmp_path / "unpaired" / "instrumental" / f"i{i}" / "instrumental.wav", _tone(5000 + 100 * i))
        _write(tmp_path / "unpaired" / "real_mixtures" / f"r{i}" / "mixture.wav", _tone(700))
        _write(tmp_path / "real" / "pools" / "unpaired_c" / f"p{i}" / "instrumental.wav", _tone(2000))
        for stem, freq in (("vocals", 440), ("drums", 100), ("bass", 60), ("other", 1000)):
            _write(tmp_path / "train" / f"t{i}" / f"{stem}.wav", _tone(freq))
    return tmp_path


def test_unpaired_clips_are_mono_at_the_network_rate_independent_and_deterministic(corpus):
    ds = UnpairedClips(corpus / "unpaired" / "mixtures", corpus / "unpaired", samples_per_epoch=4, seed=1)
    a, c = ds[0]
    assert a.shape == c.shape == (1, CLIP_SAMPLES) and a.dtype == torch.float32
    spectrum_a, spectrum_c = np.abs(np.fft.rfft(a[0].numpy())), np.abs(np.fft.rfft(c[0].numpy()))
    freqs = np.fft.rfftfreq(CLIP_SAMPLES, 1 / NETWORK_RATE)
    assert freqs[spectrum_a.argmax()] < 400 and freqs[spectrum_c.argmax()] > 4900  # a from S_A, c from S_C
    assert torch.equal(ds[0][0], a)  # a pure function of (seed, epoch, index)
    ds.set_epoch(2)
    assert not torch.equal(ds[0][0], a) or not torch.equal(ds[0][1], c)
    with pytest.raises(IndexError):
        ds[4]


def test_silent_stretches_of_a_pool_never_become_clips(tmp_path):
    # an instrumental and a mixture each digitally silent in one half
    tail = np.zeros((2, 8 * 44100), dtype=np.float32)
    tail[:, 4 * 44100 :] = _tone(2000, 4.0)
    head = np.zeros((2, 8 * 44100), dtype=np.float32)
    head[:, : 4 * 44100] = _tone(300, 4.0)
    _write(tmp_path / "c" / "p0" / "instrumental.wav", tail)
    _write(tmp_path / "a" / "m0" / "mixture.wav", head)
    ds = UnpairedClips(tmp_path / "a", tmp_path / "c", samples_per_epoch=24, seed=0)
    peaks = [(float(a.abs().max()), float(c.abs().max())) for a, c in (ds[i] for i in range(len(ds)))]
    assert min(min(p) for p in peaks) > 1e-3  # three draws in four would have held a silent clip
    assert torch.equal(ds[5][1], ds[5][1])  # still a pure function of the index
    for stem, freq in (("vocals", 440), ("drums", 100), ("bass", 60), ("other", 1000)):  # a song silent in half
        audio = np.zeros((2, 8 * 44100), dtype=np.float32)
        audio[:, : 4 * 44100] = _tone(freq, 4.0)
        _write(tmp_path / "train" / "t0" / f"{stem}.wav", audio)
    paired = PairedClips(tmp_path, "train", samples_per_epoch=16, augment=False)
    assert min(float(paired[i][0].abs().max()) for i in range(len(paired))) > 1e-3


def test_paired_clips_sum_to_the_mixture(corpus):
    mixture, vocals, accompaniment = PairedClips(corpus, "train", samples_per_epoch=2, augment=False)[1]
    assert mixture.shape == (1, CLIP_SAMPLES)
    assert torch.allclose(mixture, vocals + accompaniment)
    assert vocals.abs().max() > 0.05 and accompaniment.abs().max() > 0.05


def _objective(**args: object):  # noqa: ANN202
    cfg = TrainConfig(
        architecture="semisup",
        model=dict(TINY),
        objective="semisup",
        objective_args={"discriminator": {"channels": [2, 2, 2, 2], "n_scales": 1}, **args},
    )
    return build_objective(cfg)


def test_the_objective_reads_the_synthetic_or_the_real_pools(corpus, monkeypatch):
    assert _objective().pools(corpus) == (corpus / "unpaired" / "mixtures", corpus / "unpaired")
    monkeypatch.setenv("SHOTOKU_REAL", str(corpus / "real"))
    mixtures, instrumentals = _objective(pool="real").pools(corpus)
    assert (mixtures, instrumentals) == (
        corpus / "unpaired" / "real_mixtures",
        corpus / "real" / "pools" / "unpaired_c",
    )
    a, c = _objective(pool="real").train_dataset(corpus)[0]
    assert a.shape == c.shape == (1, CLIP_SAMPLES)
    monkeypatch.delenv("SHOTOKU_REAL")
    with pytest.raises(DatasetError, match="SHOTOKU_REAL"):
        _objective(pool="real").pools(corpus)
    with pytest.raises(DatasetError, match="pool"):
        _objective(pool="elsewhere").pools(corpus)


def test_validation_excerpts_have_vocals_and_accompaniment_of_either_kind(corpus):
    import json

    _write(corpus / "valid" / "v0" / "vocals.wav", _tone(440))
    for stem, freq in (("drums", 100), ("bass", 60), ("other", 1000)):
        _write(corpus / "valid" / "v0" / f"{stem}.wav", _tone(freq))
    track = corpus / "valid_realacc" / "r0"
    _write(track / "vocals.wav", _tone(500))
    _write(track / "accompaniment.wav", _tone(3000))
    _write(track / "mixture.wav", _tone(500) + _tone(3000))
    meta = {
        "kind": "real_accompaniment",
        "known": ["vocals", "accompaniment"],
        "unknown": ["drums", "bass", "other"],
    }
    (track / "track.json").write_text(json.dumps(meta))
    objective = _objective()
    objective.config.train.valid_seconds = 1.0
    [(_, mixture, refs)] = objective.valid_tracks(corpus)
    assert refs.shape == (2, 2, 44100) and np.allclose(refs.sum(axis=0), mixture, atol=1e-5)
    assert np.allclose(refs[0], _tone(440)[:, :44100])  # vocals first, as the model's sources
    [(_, mixture, refs)] = _objective(valid_split="valid_realacc").valid_tracks(corpus)
    assert np.allclose(refs[1], _tone(3000)[:, : 44100 * 10][:, : refs.shape[-1]])
    assert _objective(validate=False).valid_tracks(corpus) == []


def _blocks(freqs: list[float], seconds: float) -> np.ndarray:
    return np.concatenate([_tone(f, seconds) for f in freqs], axis=1)


def test_shared_piece_clips_take_mixtures_and_accompaniments_of_the_same_songs_at_other_times(tmp_path):
    from engine.data.unpaired_pairs import SharedPieceClips

    for i in range(2):  # block k of song i holds one tone in the mixture and another in the accompaniment
        track = tmp_path / "train_realacc" / f"s{i}"
        _write(track / "mixture.wav", _blocks([300 + 100 * k + 20 * i for k in range(4)], 1.0))
        _write(track / "accompaniment.wav", _blocks([3000 + 100 * k + 20 * i for k in range(4)], 1.0))
        _write(track / "vocals.wav", _blocks([300.0] * 4, 1.0))
    ds = SharedPieceClips(tmp_path, block_seconds=1.0, samples_per_epoch=40, seed=3)
    freqs = np.fft.rfftfreq(CLIP_SAMPLES, 1 / NETWORK_RATE)
    blocks_a, blocks_c, songs = set(), set(), set()
    for index in range(len(ds)):
        a, c = ds[index]
        fa, fc = freqs[np.abs(np.fft.rfft(a[0].numpy())).argmax()], freqs[np.abs(np.fft.rfft(c[0].numpy())).argmax()]
        assert fa < 1000 < fc  # a from a mixture, c from an accompaniment
        blocks_a.add(round((fa - 300) / 100))
        blocks_c.add(round((fc - 3000) / 100))
        songs.add(round((fa - 300) / 20) % 5)
    assert blocks_a == {0, 2} and blocks_c == {1, 3}  # never the same stretch of time
    assert songs == {0, 1}
    assert torch.equal(ds[7][1], SharedPieceClips(tmp_path, block_seconds=1.0, samples_per_epoch=40, seed=3)[7][1])
    a, c = _objective(pool="shared", block_seconds=1.0).train_dataset(tmp_path)[0]
    assert a.shape == c.shape == (1, CLIP_SAMPLES)
    with pytest.raises(DatasetError, match="no such folder"):
        SharedPieceClips(tmp_path, split="valid_realacc")
    with pytest.raises(DatasetError, match="shorter than one clip"):
        SharedPieceClips(tmp_path, block_seconds=0.5)
