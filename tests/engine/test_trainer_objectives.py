"""Pluggable objectives through the one trainer: a toy two-player LSGAN (a generator and a discriminator with their
own Adam optimizers, the discriminator updated every other step) and a toy ELBO (a tiny VAE with
reparameterisation) each train a few steps, checkpoint, resume in a new trainer, and take exactly the steps the
uninterrupted run takes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.train.batches import make_loader
from engine.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, read_checkpoint_info
from engine.train.config import TrainConfig, TrainSettings
from engine.train.losses import gaussian_kl, lsgan_discriminator_loss, lsgan_generator_loss, reparameterise
from engine.train.objectives import Objective, StepContext, StepLogs
from engine.train.runtime import Runtime
from engine.train.trainer import Trainer
from tests.engine.test_train import torchrun_world_of_one

N_SAMPLES = 32


# --- a toy two-player objective -----------------------------------------------------------------------------------


class MaskGenerator(nn.Module):
    """``g(a) = a * m(a)``, ``m`` in [0, 1]: the accompaniment; the vocals are ``a - g(a)``."""

    sources = ["vocals", "accompaniment"]
    samplerate = 8000
    n_channels = 1
    segment_samples = N_SAMPLES

    def __init__(self) -> None:
        super().__init__()
        self.mask = nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.Tanh(), nn.Conv1d(4, 1, 5, padding=2), nn.Sigmoid())

    def accompaniment(self, mix: Tensor) -> Tensor:
        """``(n_batch, 1, n_samples)`` -> ``(n_batch, 1, n_samples)``."""
        return mix * self.mask(mix)

    def forward(self, mix: Tensor) -> Tensor:
        """``(n_batch, 1, n_samples)`` -> ``(n_batch, 2, 1, n_samples)``."""
        accompaniment = self.accompaniment(mix)
        return torch.stack([mix - accompaniment, accompaniment], dim=1)


class Discriminator(nn.Module):
    """``(n_batch, 1, n_samples)`` -> one least-squares score per example ``(n_batch,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(1, 4, 5, stride=2), nn.LeakyReLU(0.2), nn.Conv1d(4, 1, 5, stride=2))

    def forward(self, audio: Tensor) -> Tensor:
        return self.net(audio).mean(dim=(1, 2))


class ToyLsgan(Objective):
    """Generator + discriminator, separate Adam optimizers, discriminator every ``d_every`` steps."""

    name = "toy-lsgan"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.generator = MaskGenerator()
        self.discriminator = Discriminator()
        self.d_every = int(config.objective_args.get("d_every", 2))
        self.d_updates = 0
        self.step_log: list[dict[str, float]] = []

    def setup(self, runtime: Runtime) -> None:
        self.generator.to(runtime.device)
        self.discriminator.to(runtime.device)
        self.g_net = runtime.wrap(self.generator)
        self.d_net = runtime.wrap(self.discriminator)
        self.g_opt = torch.optim.Adam(self.generator.parameters(), lr=1e-2, betas=(0.5, 0.999))
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=1e-2, betas=(0.5, 0.999))

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.g_opt, "discriminator": self.d_opt}

    @property
    def separator(self) -> nn.Module:
        return self.generator

    def training_step(self, batch: tuple[Tensor, Tensor], step: StepContext) -> StepLogs:
        mix, real = batch
        logs: dict[str, float] = {}
        if step.global_step % self.d_every == 0:
            with step.autocast():
                fake = self.g_net(mix)[:, 1].detach()
                scores = self.d_net(torch.cat([real, fake]))  # one call: DDP-safe
                d_loss = lsgan_discriminator_loss(scores[: len(real)], scores[len(real):])
            self.d_opt.zero_grad(set_to_none=True)
            step.backward(d_loss)
            step.step(self.d_opt)
            self.d_updates += 1
            logs["d_loss"] = float(d_loss.detach())
        with step.autocast():
            accompaniment = self.g_net(mix)[:, 1]
            # the bare discriminator: its gradients stay local and are cleared before its next update
            g_loss = lsgan_generator_loss(self.discriminator(accompaniment))
            g_loss = g_loss + (self.generator.accompaniment(accompaniment) - accompaniment).abs().mean()
        self.g_opt.zero_grad(set_to_none=True)
        step.backward(g_loss)
        step.step(self.g_opt)
        logs["loss"] = float(g_loss.detach())
        self.step_log.append({**logs, "global_step": step.global_step})
        return logs

    def state(self) -> dict[str, Any]:
        return {"d_updates": self.d_updates}

    def load_state(self, state: dict[str, Any]) -> None:
        self.d_updates = int(state["d_updates"])


class UnpairedToyData(Dataset):
    """``(mixture (1, n), an unrelated accompaniment (1, n))``: sines plus noise."""

    def __init__(self, n_items: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        t = np.arange(N_SAMPLES) / 8000
        self.accompaniments = [0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t)[None] for _ in range(n_items)]
        self.vocals = [0.2 * rng.standard_normal((1, N_SAMPLES)) for _ in range(n_items)]

    def __len__(self) -> int:
        return len(self.vocals)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        mix = self.vocals[index] + self.accompaniments[index]
        other = self.accompaniments[(index + 3) % len(self)]
        return torch.from_numpy(mix).float(), torch.from_numpy(other).float()


# --- a toy ELBO objective -----------------------------------------------------------------------------------------


class ToyVae(nn.Module):
    """Mixture -> K Gaussian latents -> one shared decoder per latent -> K sources that should sum to the mixture."""

    sources = ["a", "b"]
    samplerate = 8000
    n_channels = 1
    segment_samples = N_SAMPLES

    def __init__(self, n_latent: int = 3) -> None:
        super().__init__()
        self.n_latent = n_latent
        self.encoder = nn.Sequential(nn.Linear(N_SAMPLES, 16), nn.Tanh(), nn.Linear(16, 2 * 2 * n_latent))
        self.decoder = nn.Sequential(nn.Linear(n_latent, 16), nn.Tanh(), nn.Linear(16, N_SAMPLES))

    def posterior(self, mix: Tensor) -> tuple[Tensor, Tensor]:
        """``(n_batch, 1, n)`` -> mean and log-variance ``(n_batch, 2, n_latent)``."""
        mean, log_variance = self.encoder(mix.flatten(1)).view(len(mix), 2, 2, self.n_latent).unbind(dim=1)
        return mean, log_variance

    def decode(self, latent: Tensor) -> Tensor:
        """``(n_batch, 2, n_latent)`` -> sources ``(n_batch, 2, 1, n)``."""
        return self.decoder(latent)[:, :, None, :]

    def forward(self, mix: Tensor) -> Tensor:
        return self.decode(self.posterior(mix)[0])


class ToyElbo(Objective):
    """Negative ELBO: the decoded sources must sum to the mixture, plus the KL of the posterior; LR steps per epoch."""

    name = "toy-elbo"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.vae = ToyVae()
        self.step_log: list[dict[str, float]] = []

    def setup(self, runtime: Runtime) -> None:
        self.vae.to(runtime.device)
        self.optimizer = torch.optim.Adam(self.vae.parameters(), lr=5e-3)
        self.decay = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)

    def modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.optimizer}

    def schedulers(self) -> dict[str, Any]:
        return {"decay": self.decay}

    @property
    def separator(self) -> nn.Module:
        return self.vae

    def training_step(self, mix: Tensor, step: StepContext) -> StepLogs:
        mean, log_variance = self.vae.posterior(mix)
        sources = self.vae.decode(reparameterise(mean, log_variance))
        reconstruction = (sources.sum(dim=1) - mix).square().flatten(1).sum(dim=1).mean()
        kl = gaussian_kl(mean, log_variance)
        loss = reconstruction + 0.1 * kl
        self.optimizer.zero_grad(set_to_none=True)
        step.backward(loss)
        step.step(self.optimizer)
        logs = {"loss": float(loss.detach()), "kl": float(kl.detach())}
        self.step_log.append(logs)
        return logs

    def end_epoch(self, epoch: int, score: float) -> None:
        super().end_epoch(epoch, score)
        self.decay.step()


class MixtureToyData(Dataset):
    """Mixtures ``(1, n)`` of a sine and noise."""

    def __init__(self, n_items: int = 8, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        t = np.arange(N_SAMPLES) / 8000
        self.items = [(0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.1 * rng.standard_normal(N_SAMPLES))[None]
                      for _ in range(n_items)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Tensor:
        return torch.from_numpy(self.items[index]).float()


# --- the harness --------------------------------------------------------------------------------------------------


def _valid_tracks(n_stems: int = 2) -> list:
    rng = np.random.default_rng(7)
    tracks = []
    for i in range(2):
        stems = (0.3 * rng.standard_normal((n_stems, 1, N_SAMPLES))).astype(np.float32)
        tracks.append((f"valid{i}", stems.sum(axis=0), stems))
    return tracks


def _config(name: str, epochs: int) -> TrainConfig:
    settings = TrainSettings(epochs=epochs, batch_size=4, patience=100, seed=3, grad_clip=1.0)
    return TrainConfig(architecture=name, model={"n_samples": N_SAMPLES}, train=settings, objective=name,
                       objective_args={"d_every": 2})


OBJECTIVES: dict[str, tuple[type[Objective], type[Dataset]]] = {
    "toy-lsgan": (ToyLsgan, UnpairedToyData),
    "toy-elbo": (ToyElbo, MixtureToyData),
}


def _train(name: str, run_dir: Path, epochs: int, init_seed: int = 0) -> tuple[Objective, Trainer, Any]:
    objective_class, data_class = OBJECTIVES[name]
    torch.manual_seed(init_seed)
    config = _config(name, epochs)
    objective = objective_class(config)
    trainer = Trainer(objective, config, run_dir, device="cpu", show_progress=False)
    result = trainer.fit(data_class(), _valid_tracks())
    return objective, trainer, result


def _states(objective: Objective) -> dict[str, Tensor]:
    tensors = {f"{n}.{k}": v for n, m in objective.modules().items() for k, v in m.state_dict().items()}
    for name, optimizer in objective.optimizers().items():
        for index, state in optimizer.state_dict()["state"].items():
            tensors.update({f"opt.{name}.{index}.{k}": v for k, v in state.items() if isinstance(v, Tensor)})
    return tensors


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_a_resumed_run_takes_exactly_the_next_steps_of_the_uninterrupted_one(tmp_path, name):
    straight, straight_trainer, straight_result = _train(name, tmp_path / "straight", epochs=3)
    _train(name, tmp_path / "split", epochs=2)
    # a new process would build the networks from another seed: the checkpoint must override all of it
    resumed, resumed_trainer, resumed_result = _train(name, tmp_path / "split", epochs=3, init_seed=123)

    steps_per_epoch = len(straight.step_log) // 3
    assert steps_per_epoch == 2 and len(resumed.step_log) == steps_per_epoch  # only epoch 3 ran after resuming
    assert resumed.step_log == straight.step_log[-steps_per_epoch:]  # exactly the same losses
    a, b = _states(straight), _states(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "parameters or optimizer state differ"
    assert resumed_trainer.global_step == straight_trainer.global_step == 3 * steps_per_epoch
    assert resumed.state() == straight.state()
    assert [r["epoch"] for r in resumed_result.history] == [1, 2, 3]
    train_keys = [k for k in straight_result.history[-1] if k.startswith(("train_", "valid_", "lr"))]
    assert {k: resumed_result.history[-1][k] for k in train_keys} == {k: straight_result.history[-1][k]
                                                                      for k in train_keys}
    assert all(math.isfinite(row["train_loss"]) for row in straight_result.history)


def test_the_two_players_have_their_own_optimizers_and_schedule(tmp_path):
    objective, trainer, result = _train("toy-lsgan", tmp_path, epochs=2)
    d_steps = [row for row in objective.step_log if "d_loss" in row]
    assert [row["global_step"] for row in d_steps] == [0, 2]  # every other step
    assert objective.d_updates == 2
    assert {"train_loss", "train_d_loss", "lr_generator", "lr_discriminator"} <= set(result.history[-1])
    assert set(result.best_usdr_per_stem) == {"vocals", "accompaniment"}
    assert (tmp_path / "best.safetensors").is_file()


def test_the_checkpoint_is_self_contained_safetensors_without_pickle(tmp_path):
    _train("toy-lsgan", tmp_path, epochs=1)
    path = tmp_path / CHECKPOINT_FILE
    header_length = int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: u64 header size, JSON header
    assert path.read_bytes()[8:9] == b"{" and header_length < path.stat().st_size
    info = read_checkpoint_info(path)
    assert info["objective"] == "toy-lsgan" and info["config"]["objective_args"] == {"d_every": 2}
    assert info["config"]["architecture"] == "toy-lsgan" and info["config"]["train"]["batch_size"] == 4
    assert info["trainer"]["epoch"] == 1 and info["trainer"]["global_step"] == 2
    assert info["trainer"]["elapsed_seconds"] > 0
    assert {"machine", "torch", "device", "python"} <= set(info["hardware"])
    checkpoint = load_checkpoint(path)
    assert set(checkpoint.state["optimizers"]) == {"generator", "discriminator"}
    adam = checkpoint.state["optimizers"]["discriminator"]
    assert set(adam["state"]) == {0, 1, 2, 3}  # parameter indices stay integers
    assert adam["param_groups"][0]["betas"] == (0.5, 0.999)
    assert checkpoint.state["rng"]["torch"].dtype == torch.uint8
    assert checkpoint.state["objective_state"] == {"d_updates": 1}


def test_the_generator_and_discriminator_are_each_wrapped_in_ddp_on_gloo(tmp_path, monkeypatch):
    import torch.distributed as dist

    wrapped = torchrun_world_of_one(monkeypatch)
    objective, _, result = _train("toy-lsgan", tmp_path, epochs=1)
    assert wrapped == [("MaskGenerator", "gloo"), ("Discriminator", "gloo")]
    assert result.epochs_run == 1 and not dist.is_initialized()
    assert objective.d_updates == 1


def test_data_order_depends_on_the_seed_and_epoch_only():
    data = list(range(16))
    runtime = Runtime(torch.device("cpu"))

    def order(epoch: int) -> list[int]:
        return [int(i) for batch in make_loader(data, 4, epoch, seed=5, runtime=runtime) for i in batch]

    torch.manual_seed(0)
    first = order(1)
    torch.manual_seed(99)  # the global generator does not matter
    assert order(1) == first
    assert order(2) != first and sorted(order(2)) == data
