"""The trainer with the supervised objective: checkpoints and resume, uSDR validation, early stopping, time limit,
CSV log, DDP (gloo, world 1), AMP, export, the CLI."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from torch.utils.data import Dataset

from engine.errors import DatasetError
from engine.evaluate.metrics import usdr
from engine.train.config import TrainConfig, TrainSettings, load_config
from engine.train.run import fit
from engine.train.validation import mixture_usdr
from tests.engine.test_models import SOURCES, TINY

SAMPLERATE = 8000


def _stems(rng: np.random.Generator, n_samples: int, samplerate: int = SAMPLERATE) -> np.ndarray:
    """Four distinguishable synthetic stems ``(4, 2, n_samples)``: tone, clicks, low tone, noise."""
    t = np.arange(n_samples) / samplerate
    vocals = np.sin(2 * np.pi * rng.uniform(300, 600) * t)
    drums = (np.arange(n_samples) % 2000 < 40) * rng.standard_normal(n_samples)
    bass = np.sin(2 * np.pi * rng.uniform(50, 90) * t)
    other = 0.3 * rng.standard_normal(n_samples)
    mono = np.stack([vocals, drums, bass, other]) * rng.uniform(0.2, 0.6, size=(4, 1))
    pan = rng.uniform(0.3, 1.0, size=(4, 2, 1))
    return (mono[:, None, :] * pan).astype(np.float32)


class TinyCorpus(Dataset):
    """In-memory random segments: ``(mixture (2, n), stems (4, 2, n))`` with ``mixture == stems.sum(0)``."""

    def __init__(self, n_items: int = 8, n_samples: int = 4096, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.items = [_stems(rng, n_samples) for _ in range(n_items)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        stems = torch.from_numpy(self.items[index])
        return stems.sum(dim=0), stems


def _valid_tracks(n: int = 2) -> list:
    rng = np.random.default_rng(99)
    tracks = []
    for i in range(n):
        stems = _stems(rng, 8000)
        tracks.append((f"valid{i}", stems.sum(axis=0), stems))
    return tracks


def _config(name: str = "waveunet", **train) -> TrainConfig:
    settings = TrainSettings(**{"epochs": 2, "batch_size": 4, "lr": 3e-3, "patience": 10, "seed": 0, **train})
    return TrainConfig(architecture=name, model={"sources": SOURCES, "samplerate": SAMPLERATE, **TINY[name]},
                       train=settings)


def test_usdr_of_a_known_signal_to_noise_ratio():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 1000, generator=g)
    noise = torch.randn(2, 1000, generator=g)
    noise = noise / noise.norm() * ref.norm() / math.sqrt(10.0)  # 10 dB below the reference
    assert abs(float(usdr(ref.numpy(), (ref + noise).numpy())[0]) - 10.0) < 1e-3


def test_mixture_lower_bound_is_the_mean_of_each_stems_ratio_to_the_rest():
    tracks = _valid_tracks()
    bounds = mixture_usdr(tracks, SOURCES)
    assert list(bounds) == SOURCES
    for j, source in enumerate(SOURCES):
        expected = np.mean([10 * np.log10((s[j] ** 2).sum() / ((m - s[j]) ** 2).sum()) for _, m, s in tracks])
        assert abs(bounds[source] - expected) < 1e-3


def test_fit_writes_checkpoint_best_weights_and_a_csv_row_per_epoch(tmp_path, capsys):
    result = fit(_config(), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=True)
    assert "epoch 2/2 [" in capsys.readouterr().err  # the progress bar
    assert result.epochs_run == 2 and result.stopped == "epochs"
    assert (tmp_path / "checkpoint.safetensors").is_file() and (tmp_path / "best.safetensors").is_file()
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {f"valid_usdr_{s}" for s in SOURCES} <= set(rows[0])
    assert set(result.best_usdr_per_stem) == set(SOURCES)
    assert json.loads((tmp_path / "config.json").read_text())["architecture"] == "waveunet"


def test_resume_continues_after_the_last_epoch(tmp_path):
    fit(_config(), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    result = fit(_config(epochs=3), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert len(result.history) == 3 and result.epochs_run == 3


def test_resume_refuses_a_checkpoint_of_another_architecture(tmp_path):
    fit(_config(epochs=1), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    with pytest.raises(DatasetError, match="another architecture"):
        fit(_config("wavenet", epochs=2), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)


def test_early_stopping_when_validation_does_not_improve(tmp_path):
    config = _config(epochs=10, patience=2)
    config.train.lr = 0.0  # nothing changes, so no epoch after the first can improve
    result = fit(config, TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    assert result.stopped == "early stopping"
    assert result.epochs_run == 3 and result.best_epoch == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mmdensenet", "openunmix"])
def test_training_improves_validation_usdr_on_the_tiny_corpus(tmp_path, name):
    config = _config(name, epochs=6)
    config.train.lr = 1e-2
    result = fit(config, TinyCorpus(n_items=16), _valid_tracks(), tmp_path, show_progress=False)
    first = result.history[0]["valid_usdr"]
    assert result.best_usdr > first
    train_losses = [row["train_loss"] for row in result.history]
    assert min(train_losses[1:]) < train_losses[0]


def _free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it), for the process group's store: a random port in a fixed
    range can meet another suite's store on the same machine, and a client of someone else's store waits forever."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def torchrun_world_of_one(monkeypatch) -> list[tuple[str, str]]:
    """torchrun's environment for one process (gloo on the CPU) and a spy on DistributedDataParallel: the returned
    list fills with ``(wrapped module's class name, process group backend)`` for every DDP wrap."""
    import torch.distributed as dist

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    wrapped: list[tuple[str, str]] = []
    original = torch.nn.parallel.DistributedDataParallel.__init__

    def spy(self, module, *args, **kwargs):
        wrapped.append((type(module).__name__, dist.get_backend()))
        original(self, module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.parallel.DistributedDataParallel, "__init__", spy)
    return wrapped


def test_distributed_data_parallel_path_with_world_size_one_on_gloo(tmp_path, monkeypatch):
    import torch.distributed as dist

    wrapped = torchrun_world_of_one(monkeypatch)
    result = fit(_config("mmdensenet", epochs=1), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    assert [backend for _, backend in wrapped] == ["gloo"]
    assert wrapped[0][0] != "MaskSeparator"  # the estimator is what trains (magnitude loss)
    assert result.epochs_run == 1 and not dist.is_initialized()


def test_amp_bfloat16_on_cpu_trains(tmp_path):
    result = fit(_config("mmdensenet", epochs=1, amp=True), TinyCorpus(), _valid_tracks(), tmp_path,
                 show_progress=False)
    assert math.isfinite(result.history[0]["train_loss"])


def test_config_rejects_unknown_training_settings(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"architecture": "waveunet", "train": {"epochz": 3}}))
    with pytest.raises(DatasetError, match="epochz"):
        load_config(path)


def test_shipped_configs_build_and_name_their_architecture():
    from engine.models.catalogue import build_model
    from engine.train.config import CONFIGS_DIR

    names = sorted(p.stem for p in CONFIGS_DIR.glob("*.json"))
    assert set(TINY) <= set(names)
    for name in names:
        config = load_config(CONFIGS_DIR / f"{name}.json")
        # a recipe variant, or a training method named after its objective (configs/gan_mask.json, configs/nes.json)
        assert name in (config.architecture, config.objective) or name.startswith(f"{config.architecture}-")
        model = build_model(config.architecture, config.model)
        # the four stems, vocals + accompaniment, or names the data gives (blind sources, one instrument + the rest)
        sources = list(model.sources)
        assert sources in (["vocals", "drums", "bass", "other"], ["vocals", "accompaniment"]) or (
            len(sources) >= 2 and len(set(sources)) == len(sources)
            and all(re.fullmatch(r"[a-z][a-z0-9_]*", s) for s in sources)
        ), (name, sources)


def test_export_writes_a_card_that_loads_and_separates(tmp_path):
    from engine.models.catalogue import load_model
    from engine.train.export import export_run

    run = tmp_path / "run"
    fit(_config("mmdensenet", epochs=1), TinyCorpus(), _valid_tracks(), run, show_progress=False)
    folder = export_run(run, "tiny-mmd", {"summary": "test", "kind": "test"}, tracks=_valid_tracks(1),
                        root=tmp_path / "models")
    card = json.loads((folder / "card.json").read_text())
    assert card["architecture"] == "mmdensenet" and card["weights_dtype"] in ("float16", "float32")
    assert "precision_check" in card["training"]
    model = load_model("tiny-mmd", root=tmp_path / "models")
    with torch.inference_mode():
        assert model(torch.randn(1, 2, 3000)).shape == (1, 4, 2, 3000)


def _write_corpus(root, n_train: int = 3, n_valid: int = 2, seconds: float = 1.5, samplerate: int = 44100) -> None:
    """A tiny MUSDB18-HQ-layout corpus (the loader wants 44.1 kHz)."""
    rng = np.random.default_rng(5)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", 1)):
        for i in range(n):
            folder = root / split / f"{split}{i:02d}"
            folder.mkdir(parents=True)
            stems = _stems(rng, int(seconds * samplerate), samplerate)
            for name, stem in zip(SOURCES, stems, strict=True):
                sf.write(folder / f"{name}.wav", stem.T, samplerate, subtype="FLOAT")
            sf.write(folder / "mixture.wav", stems.sum(axis=0).T, samplerate, subtype="FLOAT")


def test_cli_trains_from_a_musdb_layout_folder_and_exports(tmp_path, monkeypatch, capsys):
    from engine.cli import main

    corpus = tmp_path / "corpus"
    _write_corpus(corpus)
    config = _config("mmdensenet", epochs=2, samples_per_epoch=8, segment_seconds=0.5, valid_seconds=1.0)
    config.model["samplerate"] = 44100
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(config.to_json()))
    monkeypatch.setenv("SHOTOKU_RESOURCES", str(tmp_path / "resources"))
    code = main(["train", "mmdensenet", "--data", str(corpus), "--config", str(config_path),
                 "--out", str(tmp_path / "run"), "--no-progress", "--export", "cli-tiny"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.split("exported")[0])
    assert summary["epochs_run"] == 2 and set(summary["best_valid_usdr_per_stem"]) == set(SOURCES)
    assert (tmp_path / "resources" / "models" / "cli-tiny" / "card.json").is_file()


def test_validation_usdr_leaves_out_stems_silent_in_the_excerpt():
    """A valid excerpt before the vocals come in must not drag the vocals' mean down (uSDR ~ -30 dB there)."""

    rng = np.random.default_rng(0)
    loud = rng.standard_normal((4, 2, 4000)).astype(np.float32) * 0.1
    quiet = loud.copy()
    quiet[0] = 0.0  # no vocals in this excerpt
    tracks = [("a", loud.sum(0), loud), ("b", quiet.sum(0), quiet)]
    per_stem = mixture_usdr(tracks, ["vocals", "drums", "bass", "other"])
    only_a = mixture_usdr(tracks[:1], ["vocals", "drums", "bass", "other"])
    assert per_stem["vocals"] == pytest.approx(only_a["vocals"])  # track b left out for vocals
    assert np.isfinite(list(per_stem.values())).all()
    silent_everywhere = [("b", quiet.sum(0), quiet)]
    assert np.isnan(mixture_usdr(silent_everywhere, ["vocals", "drums", "bass", "other"])["vocals"])


def test_a_full_disk_keeps_the_last_checkpoint_and_says_how_to_go_on(tmp_path):
    from engine.errors import ShotokuError
    from engine.train.checkpoint import write_atomically

    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(b"epoch 7")

    def short_write(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ShotokuError, match="checkpoint.safetensors.*previous one is kept.*resumes"):
        write_atomically(path, short_write)
    assert path.read_bytes() == b"epoch 7"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]  # no temporary file left


def test_time_limit_stops_after_the_epoch_in_progress(tmp_path):
    result = fit(_config(epochs=5, max_minutes=1e-9), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    assert result.stopped == "time limit" and result.epochs_run == 1
    assert [row["epoch"] for row in result.history] == [1]


def test_a_diverged_epoch_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from engine.train.checkpoint import read_checkpoint_info
    from engine.train.trainer import Trainer

    fit(_config(epochs=1), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    best = (tmp_path / "best.safetensors").read_bytes()
    real = Trainer.train_epoch
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, *a, **k: {**real(self, *a, **k), "loss": float("nan")})
    result = fit(_config(epochs=4), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    assert result.stopped.startswith("diverged: the training loss of epoch 2 is not finite"), result.stopped
    assert read_checkpoint_info(tmp_path / "checkpoint.safetensors")["trainer"]["epoch"] == 1
    assert (tmp_path / "best.safetensors").read_bytes() == best
    assert (tmp_path / "log.csv").read_text().splitlines()[-1].startswith("2,nan")


def test_a_full_disk_during_training_keeps_the_last_checkpoint_and_the_run_resumes(tmp_path, monkeypatch):
    from pathlib import Path

    from engine.errors import ShotokuError
    from engine.train.checkpoint import read_checkpoint_info

    fit(_config(epochs=1), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    write_bytes = Path.write_bytes

    def full_disk(self, data):
        if self.name.startswith(".checkpoint.safetensors."):
            write_bytes(self, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(ShotokuError, match=r"checkpoint\.safetensors: could not be written .*No space left.*"
                                           r"previous one is kept.*run the same command again"):
        fit(_config(epochs=2), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    assert read_checkpoint_info(tmp_path / "checkpoint.safetensors")["trainer"]["epoch"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    monkeypatch.undo()
    result = fit(_config(epochs=2), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    assert result.epochs_run == 2 and read_checkpoint_info(tmp_path / "checkpoint.safetensors")["trainer"]["epoch"] == 2


def test_a_pickled_checkpoint_of_the_old_format_is_not_loaded(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x04pickle")
    with pytest.raises(DatasetError, match="old pickle format.*--no-resume"):
        fit(_config(epochs=1), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    assert fit(_config(epochs=1), TinyCorpus(), _valid_tracks(), tmp_path, resume=False,
               show_progress=False).epochs_run == 1


def test_the_checkpoint_records_the_run_and_loads_without_pickle(tmp_path):
    from engine.train.checkpoint import load_checkpoint

    fit(_config(epochs=2), TinyCorpus(), _valid_tracks(), tmp_path, show_progress=False)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert checkpoint.info["objective"] == "supervised"
    assert checkpoint.info["config"]["architecture"] == "waveunet" and checkpoint.info["config"]["model"]["n_layers"] == 3
    assert checkpoint.trainer["epoch"] == 2 and checkpoint.trainer["global_step"] == 4  # 8 items, batches of 4
    assert len(checkpoint.trainer["history"]) == 2 and checkpoint.info["hardware"]["device"] == "cpu"
    assert set(checkpoint.state["schedulers"]) == {"plateau"} and checkpoint.state["schedulers"]["plateau"]["mode"] == "max"
    from safetensors.torch import load_file

    names = set(load_file(str(tmp_path / "checkpoint.safetensors")))
    assert any(n.startswith("modules/model/") for n in names) and "rng/torch" in names
    assert any(n.startswith("optimizers/model/state/0/") for n in names)


def test_validation_is_the_evaluation_usdr_per_stem(tmp_path):
    from engine.models.catalogue import build_model
    from engine.train.validation import evaluate_usdr

    config = _config("waveunet")
    torch.manual_seed(0)
    model = build_model(config.architecture, config.model).train()
    tracks = _valid_tracks()
    per_stem = evaluate_usdr(model, tracks, "cpu")
    assert model.training  # its mode is restored
    with torch.inference_mode():
        estimates = [model.eval()(torch.from_numpy(m)[None])[0].numpy() for _, m, _ in tracks]
    expected = np.mean([usdr(s, e) for (_, _, s), e in zip(tracks, estimates, strict=True)], axis=0)
    np.testing.assert_allclose([per_stem[s] for s in SOURCES], expected, rtol=1e-6)


def test_progress_reaches_a_callback_and_the_config_picks_the_objective(tmp_path):
    seen = []
    fit(_config(epochs=1), TinyCorpus(), _valid_tracks(), tmp_path / "a", show_progress=False,
        progress=lambda fraction, detail: seen.append((fraction, detail)))
    assert [f for f, _ in seen] == [0.5, 1.0] and seen[-1][1].startswith("loss ")
    config = _config(epochs=1)
    config.objective = "nope"
    with pytest.raises(DatasetError, match="unknown training objective 'nope'.*supervised"):
        fit(config, TinyCorpus(), _valid_tracks(), tmp_path / "b", show_progress=False)
    assert TrainConfig.from_json({"architecture": "waveunet"}).objective == "supervised"


def test_the_supervised_loss_setting_must_fit_the_model():
    from engine.models.catalogue import build_model
    from engine.train.losses import loss_domain

    waveunet = build_model("waveunet", {"sources": SOURCES, **TINY["waveunet"]})
    mmd = build_model("mmdensenet", {"sources": SOURCES, **TINY["mmdensenet"]})
    assert loss_domain(waveunet, "auto") == "waveform" and loss_domain(mmd, "auto") == "magnitude"
    assert loss_domain(mmd, "waveform") == "waveform"
    with pytest.raises(ValueError, match="no spectrogram estimator"):
        loss_domain(waveunet, "magnitude")
    with pytest.raises(ValueError, match="works on magnitude spectrograms, not complex"):
        loss_domain(mmd, "complex")
    with pytest.raises(ValueError, match="unknown loss"):
        loss_domain(mmd, "spectral")


def test_complex_estimators_train_on_real_imag_and_waveform_l1():
    from engine.models.masking import MaskSeparator, SpectrogramFormat
    from engine.train.losses import loss_domain, separation_loss

    class ComplexGain(nn.Module):
        domain = "complex"

        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.full((4,), 0.5))

        def forward(self, spec):
            return spec[:, None] * self.gain[None, :, None, None, None]

    fmt = SpectrogramFormat(tuple(SOURCES), SAMPLERATE, 2, 256, 64)
    model = MaskSeparator(ComplexGain(), fmt, segment_seconds=0.2)
    stems = torch.from_numpy(_stems(np.random.default_rng(1), 2048))[None]
    mixture = stems.sum(dim=1)
    assert loss_domain(model, "auto") == "complex"
    loss = separation_loss(model, mixture, stems, "complex")
    spec = model.spectrogram(mixture)
    estimate = spec[:, None] * 0.5
    target = model.spectrogram(stems)
    # BSRNN's loss: MAE of the real part + MAE of the imaginary part + MAE of the waveform
    expected = 2 * (torch.view_as_real(estimate) - torch.view_as_real(target)).abs().mean()
    expected = expected + (0.5 * mixture[:, None] - stems).abs().mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-4)
    loss.backward()
    assert model.estimator.gain.grad is not None


def test_the_thresholded_snr_loss_does_not_hold_a_model_at_silence():
    from engine.models.catalogue import build_model
    from engine.models.masking import MaskSeparator, SpectrogramFormat
    from engine.train.losses import loss_domain, separation_loss, term_losses, thresholded_snr

    rng = np.random.default_rng(2)
    stems = torch.from_numpy(_stems(rng, 4096))[None]
    mixture = stems.sum(dim=1)
    exact = thresholded_snr(stems, stems, mixture)
    silent = thresholded_snr(torch.zeros_like(stems), stems, mixture)
    assert exact.shape == (1, 4) and torch.all(exact < -10) and torch.all(exact > -30.1)  # the ceiling
    assert torch.all(silent.abs() < 0.01)
    quiet = torch.zeros_like(stems)
    quiet[:, 0] = stems[:, 0]
    assert torch.isfinite(thresholded_snr(quiet, quiet, mixture)).all()  # silent references stay finite

    class ComplexGain(nn.Module):
        domain = "complex"

        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.zeros(4))

        def forward(self, spec):
            return spec[:, None] * self.gain[None, :, None, None, None]

    model = MaskSeparator(ComplexGain(), SpectrogramFormat(tuple(SOURCES), SAMPLERATE, 2, 256, 64), segment_seconds=0.2)
    assert loss_domain(model, "snr") == "snr"
    separation_loss(model, mixture, stems, "snr").backward()
    assert torch.all(model.estimator.gain.grad < 0)  # from silence every gain is pushed up: no attractor there
    waveunet = build_model("waveunet", {"sources": SOURCES, **TINY["waveunet"]})
    assert loss_domain(waveunet, "snr") == "snr"
    assert term_losses(waveunet, mixture, stems, "snr").shape == (1, 4)
    with pytest.raises(ValueError, match="needs waveforms"):
        loss_domain(build_model("mmdensenet", {"sources": SOURCES, **TINY["mmdensenet"]}), "snr")


def test_cli_refuses_a_config_of_another_model(tmp_path, capsys):
    from engine.cli import main

    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(_config("mmdensenet").to_json()))
    assert main(["train", "waveunet", "--data", str(tmp_path), "--config", str(config_path)]) == 2
    assert "is for 'mmdensenet', not 'waveunet'" in capsys.readouterr().err


def test_the_cli_raises_a_runs_cpu_budget_so_a_finished_run_can_continue():
    from engine.cli import build_parser
    from engine.cli.cmd_train import _apply_overrides
    from engine.train.config import default_config

    args = build_parser().parse_args(["train", "semisup-shared", "--data", "corpus", "--max-cpu-minutes", "90"])
    config = _apply_overrides(default_config("semisup-shared"), args)
    assert config.train.max_cpu_minutes == 90.0
    kept = _apply_overrides(default_config("semisup-shared"), build_parser().parse_args(["train", "x", "--data", "c"]))
    assert kept.train.max_cpu_minutes == 40.0  # the config's own budget when the flag is not given
