"""UDT (engine/models/udt.py) and its objective (engine/train/objectives/udt.py): the architecture as the paper
draws it, each loss term by hand, the supervised twin, the trainer's resume, and separation through the Separator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from engine.models.catalogue import build_model
from engine.models.udt import ConvBlock, UDTNet
from engine.separation.separator import Separator
from engine.train.config import TrainConfig, TrainSettings, load_config
from engine.train.objectives import build_objective
from engine.train.objectives.base import StepContext
from engine.train.objectives.udt import DEFAULT_WEIGHTS, twin_terms, udt_terms, weights_of
from engine.train.runtime import Runtime
from engine.train.trainer import Trainer

TINY = {"hidden": 4, "n_fft": 64, "hop_length": 16, "kernel_size": 3, "segment_seconds": 0.5}
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - tiny networks: more threads than free cores only spin on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_paper_sizes_three_blocks_each_side_and_the_shared_layers():
    model = build_model("udt", load_config(CONFIGS / "udt.json").paper_model)
    net = model.estimator
    assert model.n_fft == 1024 and net.n_bins == 513 and net.hidden == 513
    blocks = [*net.enc_m, net.enc_shared]
    assert len(blocks) == 3 and all(isinstance(b.conv, torch.nn.Conv1d) for b in blocks)
    assert all(b.conv.in_channels == b.conv.out_channels == 513 and b.conv.kernel_size == (5,) for b in blocks)
    decoder = [net.dec_shared, *net.dec_s]
    assert len(decoder) == 3 and all(isinstance(b.conv, torch.nn.ConvTranspose1d) for b in decoder)
    first = net.enc_m[0]
    assert isinstance(first.norm, torch.nn.BatchNorm1d) and first.drop.p == 0.2 and net.power == 0.5
    # the last encoder block and the first decoder block are one module in both domains: a change shows in both
    x = torch.rand(1, 513, 6)
    net.eval()
    with torch.no_grad():
        before = (net.encode(x, "m"), net.encode(x, "s"), net.decode(x, "m"), net.decode(x, "s"))
        net.enc_shared.conv.bias += 1.0
        net.dec_shared.conv.bias += 1.0
        after = (net.encode(x, "m"), net.encode(x, "s"), net.decode(x, "m"), net.decode(x, "s"))
    assert all(not torch.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_a_block_is_conv_softplus_batch_norm_dropout_and_keeps_the_length():
    block = ConvBlock(3, 5, 3, 0.0).eval()
    x = torch.randn(2, 3, 7)
    expected = block.norm(torch.nn.functional.softplus(block.conv(x)))
    assert torch.allclose(block(x), expected) and block(x).shape == (2, 5, 7)
    last = ConvBlock(3, 5, 3, 0.5, transposed=True, last=True).train()
    assert (last(x) > 0).all()  # ends at its softplus: magnitudes stay positive, no dropout on the output


def test_stems_sum_to_the_mixture_and_the_target_never_exceeds_it():
    torch.manual_seed(0)
    model = build_model("udt", TINY).eval()
    mag = torch.rand(2, 2, 33, 9)
    with torch.no_grad():
        out = model.estimator(mag)
    assert out.shape == (2, 2, 2, 33, 9)
    assert torch.allclose(out.sum(dim=1), mag, atol=1e-6) and (out[:, 0] <= mag + 1e-7).all()
    with torch.no_grad():
        extracted = model.estimator.extract(model.estimator.compress(mag.reshape(4, 33, 9)))
    expected = torch.minimum(extracted.clamp_min(0) ** 2, mag.reshape(4, 33, 9)).reshape(mag.shape)  # 1 / power
    assert torch.allclose(out[:, 0], expected, atol=1e-6)


def test_through_the_separator_at_44_1_khz_stereo():
    torch.manual_seed(0)
    model = build_model("udt", TINY).eval()
    mix = (0.1 * np.random.default_rng(0).standard_normal((2, int(1.3 * 44100)))).astype(np.float32)
    out = Separator(model, device="cpu", segment_seconds=0.5).separate(mix, 44100)
    assert set(out) == {"vocals", "accompaniment"}
    assert all(stem.shape == mix.shape and np.isfinite(stem).all() for stem in out.values())
    assert np.abs(out["vocals"] + out["accompaniment"] - mix).max() < 1e-4


# --- loss terms, by hand --------------------------------------------------------------------------------------------


class Linear:
    """A stand-in network: ``E_M = 2x``, ``E_S = 3x``, ``D_M = 5z``, ``D_S = 7z`` (distinct, so every path shows)."""

    def encode(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return x * (2.0 if domain == "m" else 3.0)

    def decode(self, z: torch.Tensor, domain: str) -> torch.Tensor:
        return z * (5.0 if domain == "m" else 7.0)


def test_each_udt_term_as_the_paper_writes_it(monkeypatch):
    monkeypatch.setattr(torch, "randn_like", lambda x: torch.full_like(x, 0.5))
    g = torch.Generator().manual_seed(0)
    m, s = torch.rand(2, 3, 4, generator=g), torch.rand(2, 3, 4, generator=g)
    terms = udt_terms(Linear(), m, s)
    z_m, z_s = 2 * m + 0.5, 3 * s + 0.5

    def mse(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b) ** 2).mean())

    expected = {
        "REC_M": mse(5 * z_m, m),  # D_M(z_m) ~ m
        "REC_S": mse(7 * z_s, s),  # D_S(z_s) ~ s
        "CYC_M": mse(2 * 5 * z_m, z_m),  # E_M(D_M(z_m)) ~ z_m
        "CYC_S": mse(3 * 7 * z_s, z_s),  # E_S(D_S(z_s)) ~ z_s
        "CROSS_M": mse(3 * 7 * z_m, z_m),  # E_S(D_S(z_m)) ~ z_m: the extracted source maps back
        "CROSS_S": mse(2 * 5 * z_s, z_s),  # E_M(D_M(z_s)) ~ z_s: the dummy mixture maps back
        "KL": 0.5 * float(((2 * m) ** 2).mean()) + 0.5 * float(((3 * s) ** 2).mean()),
    }
    assert set(terms) == set(expected)
    for key, value in expected.items():
        assert math.isclose(float(terms[key]), value, rel_tol=1e-5), key
    twin = twin_terms(Linear(), m, s)
    assert math.isclose(float(twin["REC"]), mse(7 * (2 * m + 0.5), s), rel_tol=1e-5)
    assert math.isclose(float(twin["KL"]), 0.5 * float(((2 * m) ** 2).mean()), rel_tol=1e-5)
    assert set(udt_terms(Linear(), m, s, {"REC_M", "KL"})) == {"REC_M", "KL"}
    means = udt_terms(Linear(), m, s, target="mean")  # re-encoded latents against the posterior means instead
    assert math.isclose(float(means["CYC_M"]), mse(10 * z_m, 2 * m), rel_tol=1e-5)
    assert math.isclose(float(means["CROSS_S"]), mse(10 * z_s, 3 * s), rel_tol=1e-5)
    assert math.isclose(float(means["REC_M"]), expected["REC_M"], rel_tol=1e-5)


def test_weights_default_to_one_with_unit_kl_at_unit_ratio_and_unknown_terms_are_refused():
    assert weights_of({}) == DEFAULT_WEIGHTS and DEFAULT_WEIGHTS["KL"] == 1e-3
    assert "CROSS_M" not in weights_of({"without": ["CROSS_M"]})
    with pytest.raises(Exception, match="unknown loss term"):
        weights_of({"without": ["R9"]})


# --- the objective through the trainer ------------------------------------------------------------------------------


class Clips(Dataset):
    """``(mixture, source)`` monaural clips ``(1, 2000)``: a tone plus noise, and another noise."""

    def __init__(self, n_items: int = 2, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        t = np.arange(2000) / 44100
        self.items = []
        for _ in range(n_items):
            tone = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 900) * t)
            voice = 0.1 * rng.standard_normal(2000)
            self.items.append(tuple(torch.from_numpy(x.astype(np.float32))[None] for x in (tone + voice, voice)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[index]


def config(epochs: int = 1, **args: object) -> TrainConfig:
    settings = TrainSettings(epochs=epochs, batch_size=2, lr=1e-3, grad_clip=0.0, patience=100, seed=3,
                             weight_decay=0.0)
    return TrainConfig(architecture="udt", model=dict(TINY), train=settings, objective="udt", objective_args=args)


def ready(cfg: TrainConfig):  # noqa: ANN201
    torch.manual_seed(0)
    objective = build_objective(cfg)
    runtime = Runtime(torch.device("cpu"))
    objective.setup(runtime)
    return objective, StepContext(runtime, torch.amp.GradScaler(enabled=False))


def test_one_step_sums_the_weighted_terms_and_trains_both_vaes():
    objective, step = ready(config())
    before = {k: v.clone() for k, v in objective.model.state_dict().items()}
    batch = tuple(torch.stack(x) for x in zip(*Clips().items, strict=True))
    logs = objective.training_step(batch, step)
    assert set(DEFAULT_WEIGHTS) <= set(logs)
    assert math.isclose(float(logs["loss"]), sum(w * float(logs[k]) for k, w in objective.weights.items()),
                        rel_tol=1e-5)
    after = objective.model.state_dict()
    for prefix in ("estimator.enc_m", "estimator.enc_s", "estimator.enc_shared", "estimator.dec_m",
                   "estimator.dec_s", "estimator.dec_shared"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    assert objective.optimizers()["model"].param_groups[0]["betas"] == (0.5, 0.999)


def test_the_supervised_twin_trains_only_the_separation_path_and_lowers_its_loss():
    objective, step = ready(config(supervised=True))
    batch = tuple(torch.stack(x) for x in zip(*Clips().items, strict=True))
    before = {k: v.clone() for k, v in objective.model.state_dict().items()}
    losses = [float(objective.training_step(batch, step)["loss"]) for _ in range(15)]
    assert set(objective.training_step(batch, step)) == {"loss", "REC", "KL"}
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    after = objective.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("estimator.enc_s.",
                                                                                  "estimator.dec_m.")))


def _valid() -> list:
    rng = np.random.default_rng(5)
    stems = (0.2 * rng.standard_normal((2, 2, 8000))).astype(np.float32)
    return [("v0", stems.sum(axis=0), stems)]


def _run(run_dir: Path, epochs: int, seed: int = 0):  # noqa: ANN202
    cfg = config(epochs=epochs)
    torch.manual_seed(seed)
    objective = build_objective(cfg)
    return objective, Trainer(objective, cfg, run_dir, device="cpu", show_progress=False).fit(Clips(4), _valid())


def test_a_resumed_run_continues_exactly_like_the_uninterrupted_one(tmp_path):
    straight, straight_result = _run(tmp_path / "straight", 3)
    _run(tmp_path / "split", 2)
    resumed, resumed_result = _run(tmp_path / "split", 3, seed=99)  # other init: the checkpoint must win
    assert [row["epoch"] for row in resumed_result.history] == [1, 2, 3]
    keys = [k for k in straight_result.history[-1] if k.startswith(("train_", "valid_", "lr"))]
    assert {k: resumed_result.history[-1][k] for k in keys} == {k: straight_result.history[-1][k] for k in keys}
    other = resumed.model.state_dict()
    assert all(torch.equal(v, other[k]) for k, v in straight.model.state_dict().items())
    assert (tmp_path / "straight" / "best.safetensors").is_file()


def test_the_shipped_configs_build_and_name_the_target():
    for path in (CONFIGS / "udt.json", CONFIGS / "udt-supervised.json", CONFIGS / "udt-bass.json"):
        cfg = load_config(path)
        assert cfg.architecture == "udt" and cfg.objective == "udt" and cfg.train.max_cpu_minutes > 0
        model = build_model("udt", cfg.model)
        assert isinstance(model.estimator, UDTNet) and model.estimator.target in model.sources
        assert json.loads(path.read_text())["paper_model"]["hidden"] == 0  # 0: the paper's width, n_bins
    assert load_config(CONFIGS / "udt-supervised.json").objective_args["supervised"] is True


@pytest.mark.parametrize("args", [{}, {"supervised": True}])
def test_the_vaes_train_under_ddp_on_gloo(tmp_path, monkeypatch, args):
    import torch.distributed as dist

    from tests.engine.test_train import torchrun_world_of_one

    wrapped = torchrun_world_of_one(monkeypatch)
    cfg = config(**args)
    result = Trainer(build_objective(cfg), cfg, tmp_path, device="cpu", show_progress=False).fit(Clips(6), _valid())
    assert [name for name, _ in wrapped] == ["_Terms"] and {b for _, b in wrapped} == {"gloo"}
    assert result.epochs_run == 1 and not dist.is_initialized()
