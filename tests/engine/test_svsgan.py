"""SVSGAN (engine/models/svsgan.py, engine/train/objectives/svsgan.py) and Griffin-Lim (engine/dsp/griffin_lim.py):
the two generators, the conditional discriminator, the GKL loss, the two stages and an exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from engine.dsp.griffin_lim import griffin_lim
from engine.dsp.stft import stft
from engine.errors import DatasetError
from engine.models.catalogue import build_model
from engine.models.svsgan import SvsganDiscriminator
from engine.train.config import TrainConfig, TrainSettings
from engine.train.objectives import build_objective
from engine.train.objectives.base import StepContext
from engine.train.objectives.svsgan import generalised_kl
from engine.train.runtime import Runtime
from engine.train.trainer import Trainer

RATE = 8000
N_SAMPLES = 4096
SMALL = {"samplerate": RATE, "n_fft": 256, "hop_length": 128, "hidden": 16, "bottleneck": 8, "segment_seconds": 1.0}
RNN = {**SMALL, "lstm_hidden": 8}


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - tiny layers: more threads than free cores only spin on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def song(seed: int, n: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """A stereo mixture ``(2, n)`` of a sine "accompaniment" and a noise-burst "voice", and the voice ``(2, n)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    acc = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 400) * t)
    voice = 0.2 * rng.standard_normal(n) * (np.sin(2 * np.pi * 3 * t) > 0)
    vocals = np.stack([voice, 0.8 * voice]).astype(np.float32)
    return (np.stack([acc, acc]) + vocals).astype(np.float32), vocals


class Songs(Dataset):
    """``(mixture (2, n), vocals (1, 2, n))`` tensors, what the objective's ``train_dataset`` serves."""

    def __init__(self, n_items: int = 2) -> None:
        self.items = []
        for k in range(n_items):
            mix, vocals = song(k)
            self.items.append((torch.from_numpy(mix), torch.from_numpy(vocals)[None]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[index]


def valid() -> list:
    mix, vocals = song(9)
    return [("v0", mix, np.stack([vocals, mix - vocals]))]


def config(architecture: str = "svsgan-fc", epochs: int = 1, **args: object) -> TrainConfig:
    settings = TrainSettings(epochs=epochs, batch_size=2, lr=1e-3, grad_clip=0.0, patience=100, seed=3,
                             weight_decay=0.0)
    return TrainConfig(architecture=architecture, model=dict(RNN if architecture == "svsgan-rnn" else SMALL),
                       train=settings, objective="svsgan",
                       objective_args={"discriminator": {"hidden": 8}, **args})


def ready(cfg: TrainConfig, seed: int = 0):  # noqa: ANN201
    torch.manual_seed(seed)
    objective = build_objective(cfg)
    runtime = Runtime(torch.device("cpu"))
    objective.setup(runtime)
    return objective, StepContext(runtime, torch.amp.GradScaler(enabled=False))


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    data = Songs(2)
    return torch.stack([data[0][0], data[1][0]]), torch.stack([data[0][1], data[1][1]])


# --- the generators and the discriminator ------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["svsgan-fc", "svsgan-rnn"])
def test_the_generator_masks_the_mixture_and_the_stems_sum_to_it(architecture):
    model = build_model(architecture, RNN if architecture == "svsgan-rnn" else SMALL)
    assert model.sources == ["vocals", "accompaniment"] and model.n_fft == 256
    mix, _ = song(0)
    x = torch.from_numpy(mix)[None]
    with torch.no_grad():
        mag = model.magnitude(x)
        mask = model.estimator.mask(mag)
        stems = model.estimator(mag)
        audio = model(x)
    assert mask.shape == mag.shape and float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    assert torch.allclose(stems.sum(1), mag, atol=1e-5)
    assert audio.shape == (1, 2, 2, N_SAMPLES)
    assert torch.allclose(audio.sum(1), x, atol=1e-4)


def test_the_encoder_decoder_sees_one_frame_and_the_rnn_carries_context_forward():
    mix, _ = song(1)
    for architecture, config_, later_changes in (("svsgan-fc", SMALL, False), ("svsgan-rnn", RNN, True)):
        torch.manual_seed(0)
        estimator = build_model(architecture, config_).estimator
        mag = stft(torch.from_numpy(mix)[None], 256, 128).abs()
        changed = mag.clone()
        changed[..., 10] *= 3.0  # one frame louder
        with torch.no_grad():
            a, b = estimator.mask(mag), estimator.mask(changed)
        moved = (a - b).abs().amax(dim=(0, 1, 2))  # per frame
        assert float(moved[10]) > 0 and float(moved[:10].max()) == 0.0  # causal, both
        assert (float(moved[11:].max()) > 0) == later_changes, architecture


def test_the_discriminator_is_conditioned_on_the_mixture():
    torch.manual_seed(0)
    disc = SvsganDiscriminator(n_bins=129, hidden=8)
    assert len([m for m in disc.net if isinstance(m, torch.nn.Linear)]) == 4  # three hidden layers, one output
    vocals, mixture = torch.rand(2, 2, 129, 7), torch.rand(2, 2, 129, 7)
    logits = disc(vocals, mixture)
    assert logits.shape == (2, 2, 7)
    assert not torch.allclose(logits, disc(vocals, mixture * 2.0))
    assert SvsganDiscriminator(n_bins=1025).net[0].in_features == 2 * 1025  # paper: 512 units per hidden layer
    assert SvsganDiscriminator(n_bins=1025).net[0].out_features == 512


def test_generalised_kl_is_eq_1_summed_over_bins_and_averaged_over_batch_and_frames():
    x = torch.tensor([[[1.0, 2.0], [0.5, 0.0]]])  # (1, 2 bins, 2 frames)
    y = torch.tensor([[[2.0, 2.0], [0.5, 1.0]]])
    by_hand = sum(a * (math.log(a + 1e-8) - math.log(b + 1e-8)) - a + b
                  for a, b in zip(x.flatten().tolist(), y.flatten().tolist(), strict=True)) / 2  # / 2 frames
    assert float(generalised_kl(x, y)) == pytest.approx(by_hand, rel=1e-6)
    assert float(generalised_kl(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(generalised_kl(x.repeat(3, 1, 4), y.repeat(3, 1, 4))) == pytest.approx(by_hand, rel=1e-5)


# --- Griffin-Lim ------------------------------------------------------------------------------------------------


def test_griffin_lim_brings_the_magnitude_closer_with_iterations():
    mix, _ = song(2)
    x = torch.from_numpy(mix[:1])
    target = stft(x, 256, 128).abs()

    def error(iterations: int) -> float:
        y = griffin_lim(target, N_SAMPLES, 256, 128, iterations)
        return float((stft(y, 256, 128).abs() - target).norm() / target.norm())

    errors = [error(n) for n in (0, 5, 30)]
    assert errors[2] < errors[1] < errors[0], errors
    assert errors[2] < 0.5 * errors[0], errors


def test_the_pipeline_resynthesises_with_griffin_lim_when_asked():
    torch.manual_seed(0)
    mixture_phase = build_model("svsgan-fc", SMALL)
    torch.manual_seed(0)
    rebuilt = build_model("svsgan-fc", {**SMALL, "phase": "griffin_lim", "griffin_lim_iterations": 8})
    x = torch.from_numpy(song(3)[0])[None]
    with torch.no_grad():
        a, b = mixture_phase(x), rebuilt(x)
    assert b.shape == a.shape and bool(torch.isfinite(b).all())
    assert not torch.allclose(a, b, atol=1e-3)  # another phase
    spec_a, spec_b = stft(a, 256, 128).abs(), stft(b, 256, 128).abs()
    assert float((spec_a - spec_b).norm() / spec_a.norm()) < 0.6  # about the same magnitudes
    with pytest.raises(ValueError, match="phase"):
        build_model("svsgan-fc", {**SMALL, "phase": "random"})


# --- the objective ----------------------------------------------------------------------------------------------


def test_stage_1_trains_the_generator_alone_on_gkl_and_stage_2_both_players():
    objective, step = ready(config(pretrain_epochs=1))
    g0, d0 = params(objective.model), params(objective.discriminator)
    step.epoch = 1
    logs = objective.training_step(batch(), step)
    assert set(logs) == {"loss", "gkl"} and float(logs["loss"]) > 0
    assert any(not torch.equal(a, b) for a, b in zip(g0, params(objective.model), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(d0, params(objective.discriminator), strict=True))
    step.epoch = 2
    g1 = params(objective.model)
    logs = objective.training_step(batch(), step)
    assert {"d_loss", "g_adv", "d_real", "d_fake"} <= set(logs)
    assert any(not torch.equal(a, b) for a, b in zip(d0, params(objective.discriminator), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(g1, params(objective.model), strict=True))
    assert objective.optimizers()["discriminator"].defaults["betas"] == (0.5, 0.999)


def test_stage_1_lowers_the_divergence_on_fixed_data():
    objective, step = ready(config("svsgan-rnn", pretrain_epochs=10, g_lr=1e-2, betas=[0.9, 0.999]))
    losses = [float(objective.training_step(batch(), step)["loss"]) for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def _run(run_dir, epochs: int, seed: int = 0, **args: object):  # noqa: ANN202
    cfg = config(epochs=epochs, pretrain_epochs=1, **args)
    torch.manual_seed(seed)
    objective = build_objective(cfg)
    trainer = Trainer(objective, cfg, run_dir, device="cpu", show_progress=False)
    return objective, trainer.fit(Songs(2), valid())


def test_a_resumed_run_crosses_the_stage_change_exactly_like_the_uninterrupted_one(tmp_path):
    straight, straight_result = _run(tmp_path / "straight", 3)
    _run(tmp_path / "split", 1)  # stage 1 only, then resumed into stage 2
    resumed, resumed_result = _run(tmp_path / "split", 3, seed=99)  # other init: the checkpoint must win
    assert [row["epoch"] for row in resumed_result.history] == [1, 2, 3]
    assert "train_d_loss" in straight_result.history[-1] and "train_d_loss" not in straight_result.history[0]
    keys = [k for k in straight_result.history[-1] if k.startswith(("train_", "valid_"))]
    assert {k: resumed_result.history[-1][k] for k in keys} == {k: straight_result.history[-1][k] for k in keys}
    for name, module in straight.modules().items():
        other = resumed.modules()[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), name


def test_init_from_starts_the_generator_from_a_finished_run(tmp_path):
    _run(tmp_path / "stage1", 1)
    from safetensors.torch import load_file

    best = load_file(str(tmp_path / "stage1" / "best.safetensors"))
    torch.manual_seed(123)
    objective = build_objective(config(pretrain_epochs=0, init_from=str(tmp_path / "stage1")))
    state = objective.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in best.items())
    with pytest.raises(DatasetError, match="svsgan-fc"):
        build_objective(config("svsgan-rnn", init_from=str(tmp_path / "stage1")))
    with pytest.raises(DatasetError, match="svsgan"):
        build_objective(TrainConfig(architecture="tiny", objective="svsgan"))


def test_the_generator_and_the_discriminator_train_under_ddp_on_gloo(tmp_path, monkeypatch):
    import torch.distributed as dist

    from tests.engine.test_train import torchrun_world_of_one

    wrapped = torchrun_world_of_one(monkeypatch)
    cfg = config(epochs=2, pretrain_epochs=1)
    result = Trainer(build_objective(cfg), cfg, tmp_path, device="cpu", show_progress=False).fit(Songs(2), valid())
    assert [name for name, _ in wrapped] == ["SvsganEncoderDecoder", "SvsganDiscriminator"]
    assert result.epochs_run == 2 and math.isfinite(result.history[-1]["train_d_loss"])
    assert not dist.is_initialized()
