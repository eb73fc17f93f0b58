"""The known-stem loss (songs over real accompaniment know only the vocals and the sum of the other stems), the
supervised objective's training data with and without ``train_realacc/``, and the CPU-time budget of the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor, nn

from engine.data.known import KnownStemsDataset
from engine.data.musdb import MusdbDataset
from engine.dsp.stft import stft
from engine.errors import DatasetError
from engine.models.masking import MaskSeparator, SpectrogramFormat
from engine.train.checkpoint import CHECKPOINT_FILE, read_checkpoint_info
from engine.train.config import TrainConfig, TrainSettings
from engine.train.losses import accompaniment_row, known_stems_loss, separation_loss
from engine.train.objectives import build_objective
from engine.train.run import fit, train

SR = 44100
SOURCES = ["vocals", "drums", "bass", "other"]
ROW = accompaniment_row(SOURCES)
N = 2048


# --- models whose estimates are set by hand -----------------------------------------------------------------------


class FixedWaveforms(nn.Module):
    """A waveform 'model' that returns the estimates it is given: ``(n_batch, n_stems, n_channels, n)``."""

    sources = SOURCES
    samplerate = SR
    n_channels = 2
    segment_samples = N

    def __init__(self, estimates: Tensor) -> None:
        super().__init__()
        self.estimates = estimates

    def forward(self, mix: Tensor) -> Tensor:
        return self.estimates


class FixedSpectra(nn.Module):
    """An estimator returning the spectrograms of given waveforms (complex, or their magnitudes)."""

    def __init__(self, estimates: Tensor, domain: str) -> None:
        super().__init__()
        self.domain = domain
        spec = stft(estimates, 256, 64)
        self.out = spec if domain == "complex" else spec.abs()

    def forward(self, spec: Tensor) -> Tensor:
        return self.out


def _model(domain: str, estimates: Tensor) -> nn.Module:
    if domain == "waveform":
        return FixedWaveforms(estimates)
    fmt = SpectrogramFormat(tuple(SOURCES), SR, 2, 256, 64)
    return MaskSeparator(FixedSpectra(estimates, domain), fmt)


def _batch(real: bool, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """mixture, true stems (4), references (4 + accompaniment, unknown ones zero) and the known mask."""
    g = torch.Generator().manual_seed(seed)
    stems = 0.3 * torch.randn(1, 4, 2, N, generator=g)
    mixture = stems.sum(dim=1)
    accompaniment = mixture - stems[:, :1].sum(dim=1)
    references = torch.cat([stems, accompaniment[:, None]], dim=1)
    known = torch.ones(1, 5, dtype=torch.bool)
    if real:
        references[:, 1:4] = 0
        known[:, 1:4] = False
    return mixture, stems, references, known


DOMAINS = ["waveform", "complex", "magnitude"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_everything_but_the_vocals_in_other_costs_nothing_where_only_the_sum_is_known(domain):
    mixture, stems, references, known = _batch(real=True)
    lumped = torch.stack([stems[:, 0], torch.zeros_like(mixture), torch.zeros_like(mixture),
                          mixture - stems[:, 0]], dim=1)
    model = _model(domain, lumped)
    assert float(known_stems_loss(model, mixture, references, known, domain, ROW)) < 1e-5
    # the same estimates on an ordinary song (every stem known) are wrong: drums and bass are missing
    mixture, stems, references, known = _batch(real=False)
    lumped = torch.stack([stems[:, 0], torch.zeros_like(mixture), torch.zeros_like(mixture),
                          mixture - stems[:, 0]], dim=1)
    assert float(known_stems_loss(_model(domain, lumped), mixture, references, known, domain, ROW)) > 1e-3


@pytest.mark.parametrize("domain", DOMAINS)
def test_drums_bass_and_other_are_not_judged_one_by_one_where_unknown(domain):
    mixture, stems, references, known = _batch(real=True, seed=1)
    g = torch.Generator().manual_seed(5)
    noisy = stems + 0.05 * torch.randn(stems.shape, generator=g)
    swapped = noisy[:, [0, 3, 1, 2]]  # the accompaniment parts shuffled: same sum
    a = known_stems_loss(_model(domain, noisy), mixture, references, known, domain, ROW)
    b = known_stems_loss(_model(domain, swapped), mixture, references, known, domain, ROW)
    assert float(a) > 0 and float(a) == pytest.approx(float(b), rel=1e-5)
    # a wrong vocals estimate is still seen
    worse = noisy.clone()
    worse[:, 0] *= 0.5
    assert float(known_stems_loss(_model(domain, worse), mixture, references, known, domain, ROW)) > float(a)
    # on an ordinary song the shuffle is an error
    mixture, stems, references, known = _batch(real=False, seed=1)
    noisy = stems + 0.05 * torch.randn(stems.shape, generator=torch.Generator().manual_seed(5))
    c = known_stems_loss(_model(domain, noisy), mixture, references, known, domain, ROW)
    d = known_stems_loss(_model(domain, noisy[:, [0, 3, 1, 2]]), mixture, references, known, domain, ROW)
    assert float(d) > 2 * float(c)


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_song_that_knows_every_stem_has_the_ordinary_loss(domain):
    mixture, stems, references, known = _batch(real=False, seed=2)
    noisy = stems + 0.1 * torch.randn(stems.shape, generator=torch.Generator().manual_seed(3))
    model = _model(domain, noisy)
    expected = separation_loss(model, mixture, stems, domain)
    assert float(known_stems_loss(model, mixture, references, known, domain, ROW)) == pytest.approx(float(expected),
                                                                                                    rel=1e-5)


def test_the_complex_loss_is_the_band_split_rnn_papers():
    """MAE of the real parts + MAE of the imaginary parts + MAE of the waveforms (Luo & Yu)."""
    mixture, stems, _, _ = _batch(real=False, seed=4)
    noisy = stems + 0.1 * torch.randn(stems.shape, generator=torch.Generator().manual_seed(4))
    model = _model("complex", noisy)
    est, ref = stft(noisy, 256, 64), stft(stems, 256, 64)
    audio = model(mixture)
    expected = ((est.real - ref.real).abs().mean() + (est.imag - ref.imag).abs().mean()
                + (audio - stems).abs().mean())
    assert float(separation_loss(model, mixture, stems, "complex")) == pytest.approx(float(expected), rel=1e-4)


def test_accompaniment_row_needs_stems_that_cover_the_mixture():
    assert accompaniment_row(SOURCES) == [0.0, 1.0, 1.0, 1.0]
    assert accompaniment_row(["vocals", "drums"]) is None
    assert accompaniment_row(["vocals", "accompaniment"]) is None
    assert accompaniment_row(["drums", "bass", "other", "vocals", "piano"]) == [1.0, 1.0, 1.0, 0.0, 1.0]


# --- the objective on a toy corpus --------------------------------------------------------------------------------


def _write(folder: Path, stems: dict[str, np.ndarray], meta: dict | None = None) -> None:
    folder.mkdir(parents=True)
    for name, x in stems.items():
        sf.write(str(folder / f"{name}.wav"), x.T, SR, subtype="FLOAT")
    sf.write(str(folder / "mixture.wav"), sum(stems.values()).T, SR, subtype="FLOAT")
    if meta is not None:
        (folder / "track.json").write_text(json.dumps(meta))


def _tone(rng: np.random.Generator, low: float, high: float, n: int = SR) -> np.ndarray:
    t = np.arange(n) / SR
    x = 0.2 * np.sin(2 * np.pi * rng.uniform(low, high) * t)
    return np.stack([x, 0.8 * x]).astype(np.float32)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "corpus"
    for split, count in (("train", 2), ("valid", 1)):
        for i in range(count):
            _write(root / split / f"{split}{i}", {"vocals": _tone(rng, 300, 600), "drums": _tone(rng, 2000, 4000),
                                                  "bass": _tone(rng, 40, 90), "other": _tone(rng, 700, 1500)})
    for i in range(2):
        _write(root / "train_realacc" / f"real{i}", {"vocals": _tone(rng, 300, 600), "accompaniment":
                                                     _tone(rng, 60, 3000) + _tone(rng, 60, 3000)},
               {"kind": "real_accompaniment", "known": ["vocals", "accompaniment"],
                "unknown": ["drums", "bass", "other"]})
    return root


def _config(**objective_args) -> TrainConfig:
    settings = TrainSettings(epochs=2, batch_size=2, lr=3e-3, segment_seconds=0.25, samples_per_epoch=4, seed=0,
                             valid_tracks=1, valid_seconds=0.5, patience=10)
    model = {"sources": SOURCES, "n_fft": 512, "hop_length": 128, "n_features": 8, "hidden_size": 8, "n_layers": 1,
             "mask_hidden": 8, "segment_seconds": 0.25}
    return TrainConfig(architecture="bsrnn", model=model, train=settings, objective_args=objective_args)


def test_train_data_adds_the_songs_over_real_accompaniment_when_the_corpus_has_them(corpus):
    config = _config()
    config.train.samples_per_epoch = 24
    dataset = build_objective(config).train_dataset(corpus)
    assert isinstance(dataset, KnownStemsDataset)
    assert dataset.sources == SOURCES + ["accompaniment"]
    seen_real = False
    for i in range(len(dataset)):
        mixture, references, known = dataset[i]
        assert references.shape == (5, 2, int(0.25 * SR)) and known[0] and known[4]
        if not known[1]:
            seen_real = True
            assert not known[2:4].any()
    assert seen_real and len(dataset.sampler.real) == 2 and len(dataset.sampler.ordinary) == 2
    off = build_objective(_config(real_accompaniment=False)).train_dataset(corpus)
    assert isinstance(off, MusdbDataset)


def test_without_train_realacc_the_default_is_the_plain_train_split(corpus):
    import shutil

    shutil.rmtree(corpus / "train_realacc")
    assert isinstance(build_objective(_config()).train_dataset(corpus), MusdbDataset)
    with pytest.raises(DatasetError, match="train_realacc"):
        build_objective(_config(real_accompaniment=True)).train_dataset(corpus)
    with pytest.raises(DatasetError, match="real_accompaniment"):
        build_objective(_config(real_accompaniment="yes")).train_dataset(corpus)


def test_shotoku_train_runs_on_a_corpus_with_real_accompaniment(corpus, tmp_path):
    result = train(_config(), corpus, tmp_path / "run", show_progress=False)
    assert result.epochs_run == 2
    assert all(np.isfinite(row["train_loss"]) for row in result.history)
    assert set(result.best_usdr_per_stem) == set(SOURCES)


# --- the CPU-time budget ------------------------------------------------------------------------------------------


class Tiny(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.stems = 0.3 * torch.randn(4, 4, 2, 2048, generator=g)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.stems[index].sum(dim=0), self.stems[index]


def test_cpu_time_budget_stops_the_run_and_counts_across_resumes(tmp_path):
    config = _config()
    config.train.epochs = 5
    config.train.max_cpu_minutes = 1e-9
    result = fit(config, Tiny(), [], tmp_path, show_progress=False)
    assert result.stopped == "cpu time limit" and result.epochs_run == 1
    first = read_checkpoint_info(tmp_path / CHECKPOINT_FILE)["trainer"]["cpu_seconds"]
    assert first > 0 and result.history[0]["cpu_seconds"] == pytest.approx(first, abs=0.1)
    config.train.max_cpu_minutes = 0.0  # no limit: the resumed run goes on to the last epoch
    resumed = fit(config, Tiny(), [], tmp_path, show_progress=False)
    assert resumed.stopped == "epochs" and resumed.epochs_run == 5
    assert read_checkpoint_info(tmp_path / CHECKPOINT_FILE)["trainer"]["cpu_seconds"] > first
