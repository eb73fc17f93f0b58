"""The semi-supervised objective and its baselines through the one trainer: the step, the ablation switches, the
schedule, the supervised twin, GAN-only, NES, and an exact resume from the checkpoint."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from engine.train.config import TrainConfig, TrainSettings
from engine.train.objectives import build_objective
from engine.train.objectives.base import StepContext
from engine.train.runtime import Runtime
from engine.train.trainer import Trainer
from tests.engine.test_semisup import TINY

DISC = {"channels": [2, 2, 2, 2], "n_scales": 2}
#: A small front end for speed (the paper's is tested in test_semisup.py): 32 bins x 32 frames.
SMALL = {**TINY, "n_fft": 64, "hop_length": 16, "patch_frames": 32}
CLIP_SAMPLES = 31 * 16


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - tiny convolutions: more threads than free cores only spin on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Clips(Dataset):
    """``(a, c)`` clips ``(1, CLIP_SAMPLES)`` at 20480 Hz: a sine "accompaniment" plus a noise "voice", and another
    sine alone (three tensors, mixture / vocals / accompaniment, with ``paired``)."""

    def __init__(self, n_items: int = 2, paired: bool = False, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        t = np.arange(CLIP_SAMPLES) / 20480
        self.items = []
        for _ in range(n_items):
            acc = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t)).astype(np.float32)[None]
            voice = (0.1 * rng.standard_normal(CLIP_SAMPLES)).astype(np.float32)[None]
            other = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t)).astype(np.float32)[None]
            self.items.append((acc + voice, voice, acc) if paired else (acc + voice, other))
        self.items = [tuple(torch.from_numpy(x) for x in item) for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.items[index]


def config(objective: str = "semisup", epochs: int = 1, **args: object) -> TrainConfig:
    settings = TrainSettings(
        epochs=epochs, batch_size=1, lr=1e-4, grad_clip=0.0, patience=100, seed=3, weight_decay=0.0
    )
    return TrainConfig(
        architecture="semisup",
        model=dict(SMALL),
        train=settings,
        objective=objective,
        objective_args={"discriminator": DISC, **args},
    )


def ready(cfg: TrainConfig, seed: int = 0):  # noqa: ANN201
    torch.manual_seed(seed)
    objective = build_objective(cfg)
    runtime = Runtime(torch.device("cpu"))
    objective.setup(runtime)
    return objective, StepContext(runtime, torch.amp.GradScaler(enabled=False))


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_one_step_trains_the_generator_and_both_discriminators_with_adam_0_5():
    objective, step = ready(config())
    before = {name: params(m) for name, m in objective.modules().items()}
    logs = objective.training_step(tuple(x[None] for x in Clips()[0]), step)
    assert {"loss", "R1", "R2", "R3", "R4", "GAN_C", "GAN_A", "d_C", "d_A"} <= set(logs)
    expected = sum(w * float(logs[k]) for k, w in objective.weights.items())
    assert math.isclose(float(logs["loss"]), expected, rel_tol=1e-5)  # R1+R2+R3+R4+0.5(GAN_C+GAN_A)
    for name, module in objective.modules().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters(), strict=True)), (
            name
        )
    opt = objective.optimizers()["generator"]
    assert opt.param_groups[0]["betas"] == (0.5, 0.999) and opt.param_groups[0]["lr"] == 1e-4


def test_discriminator_pretraining_trains_the_discriminators_alone_then_the_method_runs():
    objective, step = ready(config(d_pretrain_steps=2))
    g, d_c, d_a = params(objective.model), params(objective.d_c), params(objective.d_a)
    batch = tuple(x[None] for x in Clips()[0])
    for k in range(2):
        step.global_step = k
        logs = objective.training_step(batch, step)
        assert set(logs) == {"loss", "d_C", "d_A"}  # no generator term: g is not updated
    assert all(torch.equal(a, b) for a, b in zip(g, objective.model.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d_c, objective.d_c.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d_a, objective.d_a.parameters(), strict=True))
    step.global_step = 2
    logs = objective.training_step(batch, step)
    assert {"R1", "GAN_C", "d_C"} <= set(logs)
    assert any(not torch.equal(a, b) for a, b in zip(g, objective.model.parameters(), strict=True))


@pytest.mark.parametrize("without", [["R2"], ["GAN_A"], ["GAN_A", "GAN_C"]])
def test_an_ablated_term_is_gone_from_the_loss_and_its_discriminator_rests(without):
    objective, step = ready(config(without=without))
    d_a = params(objective.d_a)
    logs = objective.training_step(tuple(x[None] for x in Clips()[0]), step)
    assert not set(without) & set(logs)
    assert math.isclose(
        float(logs["loss"]), sum(w * float(logs[k]) for k, w in objective.weights.items()), rel_tol=1e-5
    )
    if "GAN_A" in without:
        assert "d_A" not in logs and all(
            torch.equal(a, b) for a, b in zip(d_a, objective.d_a.parameters(), strict=True)
        )


def test_the_learning_rate_is_halved_every_lr_halve_every_iterations():
    objective, step = ready(config(lr_halve_every=2))
    batch = tuple(x[None] for x in Clips()[0])
    rates = []
    for index in range(4):
        step.global_step = index
        objective.training_step(batch, step)
        rates.append(objective.learning_rates()["generator"])
    assert rates == [1e-4, 5e-5, 5e-5, 2.5e-5]


def test_the_supervised_twin_lowers_its_loss_on_fixed_data():
    cfg = config(supervised=True)
    cfg.train.lr = 2e-3
    objective, step = ready(cfg)
    batch = tuple(torch.stack(parts) for parts in zip(*Clips(2, paired=True).items, strict=True))
    losses = [float(objective.training_step(batch, step)["loss"]) for _ in range(12)]
    assert set(objective.training_step(batch, step)) == {"loss", "R3", "R4"}
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_gan_only_trains_with_the_c_discriminator_alone():
    objective, step = ready(config("gan_mask"))
    logs = objective.training_step(tuple(x[None] for x in Clips()[0]), step)
    assert set(logs) == {"loss", "GAN_C", "d_C"} and math.isclose(float(logs["loss"]), float(logs["GAN_C"]))


def test_nes_starts_from_half_mixtures_and_freezes_g_at_each_iteration():
    objective, step = ready(config("nes", steps_per_iteration=2))
    batch = tuple(x[None] for x in Clips()[0])
    start = copy.deepcopy(objective.previous.state_dict())
    for index in range(3):
        step.global_step = index
        logs = objective.training_step(batch, step)
    assert logs["nes_iteration"] == 1.0
    assert set(logs) == {"loss", "nes_iteration"}
    prev = objective.previous.state_dict()
    assert any(not torch.equal(start[k], prev[k]) for k in start)  # copied at step 2 ...
    now = objective.model.estimator.state_dict()
    assert any(not torch.equal(now[k], prev[k]) for k in now)  # ... and g moved on after it


def _valid() -> list:
    rng = np.random.default_rng(5)
    stems = (0.2 * rng.standard_normal((2, 2, 22050))).astype(np.float32)
    return [("v0", stems.sum(axis=0), stems)]


def _run(run_dir, epochs: int, seed: int = 0):  # noqa: ANN202
    cfg = config(epochs=epochs)
    torch.manual_seed(seed)
    objective = build_objective(cfg)
    trainer = Trainer(objective, cfg, run_dir, device="cpu", show_progress=False)
    return objective, trainer.fit(Clips(2), _valid())


def test_a_resumed_run_continues_exactly_like_the_uninterrupted_one(tmp_path):
    straight, straight_result = _run(tmp_path / "straight", 3)
    _run(tmp_path / "split", 2)
    resumed, resumed_result = _run(tmp_path / "split", 3, seed=99)  # other init: the checkpoint must win
    assert [row["epoch"] for row in resumed_result.history] == [1, 2, 3]
    keys = [k for k in straight_result.history[-1] if k.startswith(("train_", "valid_", "lr"))]
    assert {k: resumed_result.history[-1][k] for k in keys} == {
        k: straight_result.history[-1][k] for k in keys
    }
    for name, module in straight.modules().items():
        other = resumed.modules()[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), name
    assert (tmp_path / "straight" / "best.safetensors").is_file()


def test_init_from_starts_g_from_a_finished_run_and_d_lr_sets_the_discriminators_rate(tmp_path):
    _run(tmp_path / "twin", 1)
    from safetensors.torch import load_file

    from engine.errors import DatasetError

    best = load_file(str(tmp_path / "twin" / "best.safetensors"))
    objective, _ = ready(config(init_from=str(tmp_path / "twin"), d_lr=1e-3), seed=77)
    state = objective.model.state_dict()
    assert best and all(torch.equal(state[k], v) for k, v in best.items())
    rates = {name: opt.param_groups[0]["lr"] for name, opt in objective.optimizers().items()}
    assert rates == {"generator": 1e-4, "d_C": 1e-3, "d_A": 1e-3}
    wrong = config(init_from=str(tmp_path / "twin"))
    wrong.model["n_residual"] = wrong.model.get("n_residual", 1) + 1
    with pytest.raises(DatasetError, match="do not fit"):
        build_objective(wrong)


@pytest.mark.parametrize("objective", ["semisup", "nes"])
def test_the_generator_and_each_discriminator_train_under_ddp_on_gloo(tmp_path, monkeypatch, objective):
    import torch.distributed as dist

    from tests.engine.test_train import torchrun_world_of_one

    wrapped = torchrun_world_of_one(monkeypatch)
    cfg = config(objective)
    trainer = Trainer(build_objective(cfg), cfg, tmp_path, device="cpu", show_progress=False)
    result = trainer.fit(Clips(2), _valid())
    expected = (
        ["_Crosses", "MultiScaleDiscriminator", "MultiScaleDiscriminator"]
        if objective == "semisup"
        else ["_Generator"]
    )
    assert [name for name, _ in wrapped] == expected and {b for _, b in wrapped} == {"gloo"}
    assert (
        result.epochs_run == 1
        and math.isfinite(result.history[-1]["train_loss"])
        and not dist.is_initialized()
    )
