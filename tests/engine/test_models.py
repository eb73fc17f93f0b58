"""The five separation architectures: registration, shapes for any length, chunk-boundary continuity, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.models.catalogue import architectures, build_model
from engine.separation.apply import apply_chunked, chunk_stride

SOURCES = ["vocals", "drums", "bass", "other"]

#: Tiny random-init configs, one per architecture (a few thousand parameters each).
TINY: dict[str, dict] = {
    "openunmix": {"n_fft": 256, "hop_length": 64, "hidden_size": 16, "n_layers": 1, "segment_seconds": 0.2},
    "mmdensenet": {
        "n_fft": 256,
        "hop_length": 64,
        "first_channels": 4,
        "low": [[2, 1]] * 7,
        "high": [[2, 1]] * 7,
        "full": [[2, 1]] * 7,
        "final": [2, 1],
        "segment_seconds": 0.2,
    },
    "waveunet": {"n_layers": 3, "growth": 4, "segment_seconds": 0.2},
    "deepconvsep": {
        "n_fft": 256,
        "hop_length": 64,
        "context_frames": 8,
        "vertical_filters": 4,
        "vertical_kernel": 8,
        "vertical_stride": 4,
        "horizontal_filters": 3,
        "horizontal_kernel": 3,
        "bottleneck": 8,
        "segment_seconds": 0.2,
    },
    "wavenet": {"n_stacks": 1, "layers_per_stack": 3, "residual_channels": 4, "skip_channels": 4, "segment_seconds": 0.2},
}
SPECTRAL = ["openunmix", "mmdensenet", "deepconvsep"]


def tiny(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, {"sources": SOURCES, **TINY[name], **extra}).eval()


def test_all_five_architectures_are_registered():
    assert set(TINY) <= set(architectures())


@pytest.mark.parametrize("name", sorted(TINY))
def test_config_is_json_serialisable_and_rebuilds_the_same_model(name):
    config = json.loads(json.dumps({"sources": SOURCES, **TINY[name]}))
    a, b = tiny(name), build_model(name, config)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert a.sources == SOURCES and a.n_channels == 2 and a.samplerate == 44100
    assert a.segment_samples == int(0.2 * 44100)


@pytest.mark.parametrize("n_samples", [1, 777, 4096, 9001])
@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_returns_stems_for_any_length(name, n_samples):
    model = tiny(name)
    mix = torch.randn(2, 2, n_samples)
    with torch.inference_mode():
        out = model(mix)
    assert out.shape == (2, 4, 2, n_samples)
    assert torch.isfinite(out).all()
    if n_samples >= 777:
        assert out.abs().max() > 0  # the network is not a constant zero


@pytest.mark.parametrize("name", SPECTRAL)
def test_spectral_estimates_are_non_negative_with_the_mixture_shape(name):
    model = tiny(name)
    mag = torch.rand(1, 2, 129, 50)
    with torch.inference_mode():
        est = model.estimator(mag)
    assert est.shape == (1, 4, 2, 129, 50)
    assert (est >= 0).all()


@pytest.mark.parametrize("name", SPECTRAL)
def test_ratio_masks_make_stems_sum_to_the_mixture(name):
    model = tiny(name)
    mix = torch.randn(1, 2, 5000)
    with torch.inference_mode():
        out = model(mix)
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-4)


@pytest.mark.parametrize("name", SPECTRAL)
def test_wiener_post_step_changes_the_estimates_and_keeps_the_sum(name):
    plain, filtered = tiny(name), tiny(name, wiener_iterations=2)
    mix = torch.randn(1, 2, 5000)
    with torch.inference_mode():
        a, b = plain(mix), filtered(mix)
    assert not torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(b.sum(dim=1), mix, atol=1e-3)


def test_waveunet_difference_output_sums_to_the_mixture():
    model = tiny("waveunet")
    mix = torch.randn(1, 2, 3000)
    with torch.inference_mode():
        assert torch.allclose(model(mix).sum(dim=1), mix, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY))
def test_chunked_output_is_continuous_at_chunk_boundaries(name):
    """A smooth input separated chunk by chunk: the sample-to-sample steps at chunk edges are no larger than
    the steps elsewhere (a click would be a step many times the typical one)."""
    model = tiny(name)
    samplerate = model.samplerate
    t = np.arange(int(1.0 * samplerate)) / samplerate
    mix = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)

    def model_fn(chunk: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(chunk)[None])[0].numpy()

    segment = model.segment_samples
    out = apply_chunked(model_fn, mix, 4, segment, overlap=0.25)
    assert out.shape == (4, 2, mix.shape[-1])
    steps = np.abs(np.diff(out, axis=-1))
    stride = chunk_stride(segment, 0.25)
    edges = sorted({e for k in range(1, mix.shape[-1] // stride) for e in (k * stride, k * stride + segment)})
    edges = [e for e in edges if 2 <= e < mix.shape[-1] - 2]
    near_edges = np.concatenate([steps[..., e - 2 : e + 1] for e in edges], axis=-1)
    interior = np.delete(steps, [i for e in edges for i in range(e - 2, e + 1)], axis=-1)
    assert near_edges.max() <= 1.5 * interior.max() + 1e-6


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_few_training_steps_lower_the_loss(name):
    """Adam on one fixed batch of a tiny corpus (sines as stems): the loss must fall."""
    from engine.train.losses import loss_domain, separation_loss

    torch.manual_seed(0)
    model = build_model(name, {"sources": SOURCES, **TINY[name]}).train()
    n = 4096
    t = torch.arange(n) / 44100.0
    freqs = torch.tensor([440.0, 90.0, 55.0, 1200.0])
    stems = torch.sin(2 * np.pi * freqs[:, None] * t)[None, :, None, :].repeat(2, 1, 2, 1)
    stems = stems * torch.rand(2, 4, 2, 1) * 0.5
    mixture = stems.sum(dim=1)
    domain = loss_domain(model, "auto")
    assert domain == ("magnitude" if name in SPECTRAL else "waveform")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = separation_loss(model, mixture, stems, domain)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert min(losses[-5:]) < 0.8 * losses[0]


def _shipped_neural_models() -> list[str]:
    from engine.models.catalogue import list_cards
    from engine.paths import models_dir

    if not models_dir().is_dir():
        return []
    return [c.name for c in list_cards() if c.kind == "neural" and c.architecture in TINY]


@pytest.mark.slow
@pytest.mark.parametrize("name", _shipped_neural_models())
def test_shipped_model_loads_and_separates_the_demo_song_better_than_the_mixture(name):
    """A shipped model (sha256-checked weights) on 10 s of the bundled demo song: every stem's uSDR must beat
    the unprocessed mixture's (the lower bound) by at least 1 dB."""
    import soundfile as sf

    from engine.evaluate.metrics import usdr
    from engine.models.catalogue import load_model
    from engine.paths import demo_song
    from engine.separation.separator import Separator

    model = load_model(name)
    mix, rate = sf.read(demo_song(), dtype="float32", always_2d=True)
    n = 10 * rate
    start = 8 * rate  # past the intro, where every stem plays
    mix = mix.T[:, start : start + n]
    refs = {s: sf.read(demo_song().with_name(f"{s}.flac"), dtype="float32", always_2d=True)[0].T[:, start : start + n]
            for s in model.sources}
    estimates = Separator(model, device="cpu").separate(mix, rate)
    for source in model.sources:
        gain = float(usdr(refs[source], estimates[source])[0] - usdr(refs[source], mix)[0])
        assert gain > 1.0, f"{name}/{source}: {gain:.2f} dB over the mixture"
