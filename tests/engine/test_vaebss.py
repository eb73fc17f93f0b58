"""The blind VAE (engine/models/vaebss.py), its objectives (vaebss: VAE/AE; mixit) and clips
(engine/data/gm_pairs.py): the slides' sizes, VAEM, each loss by hand, the trainer's resume, the Separator."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import Dataset

from engine.data.gm_pairs import MixtureClips
from engine.models.catalogue import build_model
from engine.models.vaebss import CLIP_SAMPLES, N_BINS, PATCH_FRAMES, patch_apply, vaem_mask
from engine.separation.separator import Separator
from engine.train.config import TrainConfig, TrainSettings, load_config
from engine.train.objectives import build_objective
from engine.train.objectives.base import StepContext
from engine.train.objectives.mixit import assignments, mixit_loss
from engine.train.objectives.vaebss import elbo_terms, normalised_patches
from engine.train.runtime import Runtime
from engine.train.trainer import Trainer

TINY = {"hidden": [8, 4], "latent_dim": 3, "segment_seconds": 3.0}
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - tiny networks: more threads than free cores only spin on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_slides_mums_sizes_and_the_front_end():
    cfg = load_config(CONFIGS / "vaebss.json")
    with torch.device("meta"):  # 189 M parameters: sizes only, no memory
        model = build_model("vaebss", cfg.paper_model)
    net = model.estimator
    widths = [m.out_features for m in net.encoder if isinstance(m, torch.nn.Linear)]
    assert net.encoder[0].in_features == 32768 == N_BINS * PATCH_FRAMES
    assert widths == [2560, 2048, 1536, 1024, 512, 2 * 64 * 2]
    decoder = [m.out_features for m in net.decoder[0] if isinstance(m, torch.nn.Linear)]
    assert net.decoder[0][0].in_features == 64 and decoder == [512, 1024, 1536, 2048, 2560, 32768]
    assert model.samplerate == 5512 and model.n_fft == 512 and model.hop_length == 64
    spec = build_model("vaebss", TINY).magnitude(torch.zeros(1, 1, CLIP_SAMPLES))
    assert spec.shape[-2:] == (257, 128)  # 256 bins kept x 128 frames: 1.47 s at 5512 Hz


def test_vaem_makes_the_sources_sum_to_the_mixture():
    sources = torch.rand(2, 3, 4, 5)
    x = torch.rand(2, 4, 5)
    masked = vaem_mask(sources, x)
    assert torch.allclose(masked.sum(dim=1), x, atol=1e-5)
    assert torch.allclose(masked[:, 0], sources[:, 0] * x / sources.sum(dim=1), atol=1e-5)


def test_patches_blend_back_exactly_and_one_patch_is_the_function_itself():
    x = torch.rand(2, 6, 300)
    out = patch_apply(x, lambda p: torch.stack([p, 2 * p], dim=1), 128, batch=3)
    assert out.shape == (2, 2, 6, 300) and torch.allclose(out[:, 0], x, atol=1e-6)
    assert torch.allclose(out[:, 1], 2 * x, atol=1e-6)
    short = torch.rand(1, 6, 50)
    assert torch.allclose(patch_apply(short, lambda p: p[:, None], 128)[:, 0], short)


@pytest.mark.parametrize("vaem", [True, False])
def test_the_estimator_separates_into_k_sources_and_vaem_sums_to_the_input(vaem):
    torch.manual_seed(0)
    model = build_model("vaebss", {**TINY, "vaem": vaem, "sources": ["source1", "source2", "source3"]}).eval()
    spec = torch.randn(1, 2, 257, 200, dtype=torch.complex64)
    with torch.no_grad():
        out = model.estimator(spec)
        mags = model.estimator.magnitudes(spec.abs())
    assert out.shape == (1, 3, 2, 257, 200) and out.is_complex()
    assert torch.allclose(out.abs(), mags, atol=1e-5)  # the estimated magnitudes, inverted as they are ...
    assert torch.allclose(out, mags * (spec / spec.abs())[:, None], atol=1e-5)  # ... with the mixture's phase
    assert torch.allclose(out.sum(dim=1), spec, atol=1e-4) == vaem  # VAEM: the sources sum to the mixture


def test_through_the_separator_at_44_1_khz_stereo_returns_the_songs_format():
    torch.manual_seed(0)
    model = build_model("vaebss", TINY).eval()
    mix = (0.1 * np.random.default_rng(0).standard_normal((2, int(2.2 * 44100)))).astype(np.float32)
    out = Separator(model, device="cpu", segment_seconds=3.0).separate(mix, 44100)
    assert set(out) == {"source1", "source2"}
    assert all(stem.shape == mix.shape and np.isfinite(stem).all() for stem in out.values())


# --- losses, by hand ------------------------------------------------------------------------------------------------


class Fixed:
    """A stand-in network: fixed posterior, a decoder that scales the latent's mean into a patch."""

    def __init__(self, mean: torch.Tensor, log_variance: torch.Tensor) -> None:
        self.mean, self.log_variance = mean, log_variance

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean, self.log_variance

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.mean(dim=-1)[..., None, None].expand(-1, -1, 2, 3)


def test_the_elbo_terms_as_the_slides_write_them(monkeypatch):
    g = torch.Generator().manual_seed(0)
    mean, log_variance = torch.randn(2, 2, 4, generator=g), torch.randn(2, 2, 4, generator=g)
    x = torch.rand(2, 2, 3, generator=g)
    net = Fixed(mean, log_variance)
    ae = elbo_terms(net, x, sigma=0.5, variational=False)
    x_hat = mean.mean(dim=-1).sum(dim=1)[:, None, None]  # z = mu, each source decoded, summed
    assert set(ae) == {"REC"}
    assert math.isclose(float(ae["REC"]), float(((x - x_hat) ** 2).sum(dim=(1, 2)).mean() / 0.5), rel_tol=1e-5)
    monkeypatch.setattr(torch, "randn", lambda *a, **k: torch.ones(mean.shape))  # eps = 1
    vae = elbo_terms(net, x, sigma=0.5)
    z = mean + torch.exp(0.5 * log_variance)
    x_hat = z.mean(dim=-1).sum(dim=1)[:, None, None]
    assert math.isclose(float(vae["REC"]), float(((x - x_hat) ** 2).sum(dim=(1, 2)).mean() / 0.5), rel_tol=1e-5)
    kl = 0.5 * (mean**2 + log_variance.exp() - 1 - log_variance).sum(dim=(1, 2)).mean()
    assert math.isclose(float(vae["KL"]), float(kl), rel_tol=1e-5)


def test_mixit_takes_the_best_assignment_of_outputs_to_mixtures():
    g = torch.Generator().manual_seed(1)
    sources, x1, x2 = torch.rand(2, 3, 5, generator=g), torch.rand(2, 5, generator=g), torch.rand(2, 5, generator=g)
    assert assignments(3).shape == (8, 2, 3) and torch.equal(assignments(3).sum(dim=1), torch.ones(8, 3))
    best = []
    for n in range(2):
        values = []
        for choice in itertools.product((0, 1), repeat=3):
            one = sum(sources[n, j] for j in range(3) if choice[j] == 0) + torch.zeros(5)
            two = sum(sources[n, j] for j in range(3) if choice[j] == 1) + torch.zeros(5)
            values.append(float(((x1[n] - one) ** 2).mean() + ((x2[n] - two) ** 2).mean()))
        best.append(min(values))
    assert math.isclose(float(mixit_loss(sources, x1, x2)), float(np.mean(best)), rel_tol=1e-5)
    exact = torch.stack([x1[:, None] * 0.5, x1[:, None] * 0.5, x2[:, None]], dim=1)[:, :, 0]
    assert float(mixit_loss(exact, x1, x2)) < 1e-10


def test_patches_are_normalised_to_0_1_by_their_maximum():
    model = build_model("vaebss", TINY)
    audio = 0.3 * torch.randn(3, 1, CLIP_SAMPLES)
    x, scale = normalised_patches(model, audio)
    assert x.shape == (3, 256, 128) and torch.allclose(x.flatten(1).amax(dim=1), torch.ones(3))
    assert torch.allclose(x * scale, model.magnitude(audio)[:, 0, :256])


# --- objectives through the trainer ---------------------------------------------------------------------------------


class Mixtures(Dataset):
    """Monaural two-tone mixtures ``(1, CLIP_SAMPLES)`` at 5512 Hz (sparse spectra, as the instruments')."""

    def __init__(self, n_items: int = 4) -> None:
        rng = np.random.default_rng(0)
        t = np.arange(CLIP_SAMPLES) / 5512
        self.items = [(torch.from_numpy(sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, 2))
                                        .astype(np.float32)[None]),) for _ in range(n_items)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor]:
        return self.items[index]


def config(objective: str = "vaebss", epochs: int = 1, k: int = 2, **args: object) -> TrainConfig:
    settings = TrainSettings(epochs=epochs, batch_size=4, lr=1e-3, grad_clip=0.0, patience=100, seed=3,
                             weight_decay=0.0)
    model = {**TINY, "sources": [f"source{i + 1}" for i in range(k)]}
    return TrainConfig(architecture="vaebss", model=model, train=settings, objective=objective, objective_args=args)


@pytest.mark.parametrize("objective,args,keys", [("vaebss", {}, {"loss", "REC", "KL"}),
                                                 ("vaebss", {"variational": False}, {"loss", "REC"}),
                                                 ("mixit", {}, {"loss"})])
def test_each_objective_lowers_its_loss_on_fixed_mixtures(objective, args, keys):
    torch.manual_seed(0)
    obj = build_objective(config(objective, k=4 if objective == "mixit" else 2, **args))
    runtime = Runtime(torch.device("cpu"))
    obj.setup(runtime)
    step = StepContext(runtime, torch.amp.GradScaler(enabled=False))
    batch = (torch.stack([item[0] for item in Mixtures().items]),)
    losses = [float(obj.training_step(batch, step)["loss"]) for _ in range(15)]
    assert set(obj.training_step(batch, step)) == keys
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_kl_warm_up_weighs_the_kl_linearly_and_the_decoder_starts_low():
    torch.manual_seed(0)
    obj = build_objective(config(kl_warmup_steps=4))
    runtime = Runtime(torch.device("cpu"))
    obj.setup(runtime)
    step = StepContext(runtime, torch.amp.GradScaler(enabled=False), global_step=0)
    logs = obj.training_step((torch.stack([item[0] for item in Mixtures().items]),), step)
    assert logs["kl_weight"] == 0.25
    assert math.isclose(float(logs["loss"]), float(logs["REC"]) + 0.25 * float(logs["KL"]), rel_tol=1e-5)
    fresh = build_model("vaebss", TINY).estimator
    assert torch.all(fresh.decoder[0][-1].bias == -4.0)
    with torch.no_grad():
        assert float(fresh.decode(torch.zeros(1, 2, 3)).max()) < 0.05  # sigmoid(-4 + small): no saturation at 0.5


def _run(run_dir: Path, epochs: int, seed: int = 0):  # noqa: ANN202
    cfg = config(epochs=epochs)
    torch.manual_seed(seed)
    objective = build_objective(cfg)
    return objective, Trainer(objective, cfg, run_dir, device="cpu", show_progress=False).fit(Mixtures(8), [])


def test_a_resumed_run_continues_exactly_like_the_uninterrupted_one(tmp_path):
    straight, straight_result = _run(tmp_path / "straight", 3)
    _run(tmp_path / "split", 2)
    resumed, resumed_result = _run(tmp_path / "split", 3, seed=99)
    assert [row["epoch"] for row in resumed_result.history] == [1, 2, 3]
    keys = [k for k in straight_result.history[-1] if k.startswith(("train_", "lr"))]
    assert {k: resumed_result.history[-1][k] for k in keys} == {k: straight_result.history[-1][k] for k in keys}
    other = resumed.model.state_dict()
    assert all(torch.equal(v, other[k]) for k, v in straight.model.state_dict().items())


# --- data and configs -----------------------------------------------------------------------------------------------


def test_mixture_clips_are_monaural_at_5512_hz_and_a_function_of_the_index(tmp_path):
    track = tmp_path / "pool" / "m0"
    track.mkdir(parents=True)
    sf.write(str(track / "mixture.wav"), (0.1 * np.random.default_rng(0).standard_normal((44100, 2))), 44100)
    clips = MixtureClips(tmp_path / "pool", samples_per_epoch=3, seed=1)
    assert clips[0][0].shape == (1, CLIP_SAMPLES) and torch.equal(clips[1][0], clips[1][0])
    with pytest.raises(Exception, match="no mixture"):
        MixtureClips(tmp_path / "empty")


def test_instrument_mixtures_never_share_sources_between_train_and_test():
    from engine.data.gm_pairs import SPLIT_SEEDS, InstrumentMixtures
    from engine.data.synth.render import DEFAULT_SOUNDFONT

    if not DEFAULT_SOUNDFONT.is_file():
        pytest.skip("no SoundFont")
    pool = 3
    assert SPLIT_SEEDS["test"] - SPLIT_SEEDS["train"] > 1000  # pools of up to 1000 clips stay disjoint
    train = InstrumentMixtures(("bassoon", "violin"), "train", pool, 1)
    mixture, sources = train[0]
    assert mixture.shape == (1, CLIP_SAMPLES) and sources.shape == (2, 1, CLIP_SAMPLES)
    assert torch.allclose(sources.sum(dim=0), mixture) and (sources.abs().amax(dim=-1) > 0.01).all()
    test = InstrumentMixtures(("bassoon", "violin"), "test", pool, 1)
    assert not torch.allclose(test[0][1], sources)


def test_every_vae_config_builds_and_names_its_architecture_or_objective():
    for path in sorted([*CONFIGS.glob("vaebss*.json"), CONFIGS / "mixit.json"]):
        cfg = load_config(path)
        assert path.stem in (cfg.architecture, cfg.objective) or path.stem.startswith(f"{cfg.architecture}-")
        assert cfg.train.max_cpu_minutes > 0 and cfg.notes and cfg.paper_model
        build_model(cfg.architecture, cfg.model)


@pytest.mark.parametrize("objective", ["vaebss", "mixit"])
def test_the_network_trains_under_ddp_on_gloo(tmp_path, monkeypatch, objective):
    import torch.distributed as dist

    from tests.engine.test_train import torchrun_world_of_one

    wrapped = torchrun_world_of_one(monkeypatch)
    cfg = config(objective, k=4 if objective == "mixit" else 2)
    result = Trainer(build_objective(cfg), cfg, tmp_path, device="cpu", show_progress=False).fit(Mixtures(8), [])
    assert [name for name, _ in wrapped] == ["_Terms"] and {b for _, b in wrapped} == {"gloo"}
    assert result.epochs_run == 1 and not dist.is_initialized()
