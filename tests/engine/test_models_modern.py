"""The modern candidates (band-split RNN, TFC-TDF U-Net v3): their configs, shapes for any length, the band plan,
chunk continuity, training through the trainer, the card round trip and an identity check.

Both are complex-domain estimators (complex masks, or a complex mapping): unlike ratio masks, their stems need not
sum to the mixture, so no test asks for it; the identity checks set weights by hand instead.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from engine.dsp.stft import istft, stft
from engine.models.bsrnn import PAPER_BANDS, band_edges
from engine.models.catalogue import build_model, load_from_card, read_card, save_model
from engine.separation.apply import apply_chunked, chunk_stride
from engine.train.config import TrainConfig, TrainSettings, default_config
from engine.train.run import fit

SOURCES = ["vocals", "drums", "bass", "other"]
MODERN = ["bsrnn", "tfctdf"]

#: Tiny random-init configs (a few thousand to a few ten thousand parameters).
TINY: dict[str, dict] = {
    "bsrnn": {"n_fft": 512, "hop_length": 128, "n_features": 8, "hidden_size": 8, "n_layers": 1, "mask_hidden": 8,
              "segment_seconds": 0.2},
    "tfctdf": {"n_fft": 512, "hop_length": 128, "channels": 8, "growth": 4, "n_scales": 2, "n_blocks": 1,
               "bottleneck": 4, "max_frequency": 16000.0, "norm": "batch", "patch": 2, "segment_seconds": 0.2},
}


def tiny(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, {"sources": SOURCES, **TINY[name], **extra}).eval()


@pytest.mark.parametrize("name", MODERN)
def test_the_shipped_config_builds_a_complex_estimator_with_its_notes(name):
    config = default_config(name)
    assert config.architecture == name and config.notes and config.paper_model
    model = build_model(name, config.model)
    assert model.domain == "complex" and model.sources == SOURCES
    n_params = sum(p.numel() for p in model.parameters())
    assert 1e5 < n_params < 2e7
    with torch.inference_mode():
        out = model(torch.randn(1, 2, 44100 + 3))
    assert out.shape == (1, 4, 2, 44100 + 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODERN)
def test_config_is_json_serialisable_and_rebuilds_the_same_model(name):
    config = json.loads(json.dumps({"sources": SOURCES, **TINY[name]}))
    a, b = tiny(name), build_model(name, config)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert a.segment_samples == int(0.2 * 44100)


@pytest.mark.parametrize("n_samples", [1, 777, 4097, 9001])
@pytest.mark.parametrize("name", MODERN)
def test_forward_keeps_the_shape_for_any_length(name, n_samples):
    model = tiny(name)
    with torch.inference_mode():
        out = model(torch.randn(3, 2, n_samples))
    assert out.shape == (3, 4, 2, n_samples)
    assert torch.isfinite(out).all()
    if n_samples >= 777:
        assert out.abs().max() > 0


@pytest.mark.parametrize("name", MODERN)
def test_inference_and_training_paths_agree(name):
    """The estimator writes its outputs differently with and without autograd; the values must not differ."""
    model = tiny(name)
    spec = stft(torch.randn(2, 2, 3000), 512, 128)
    with torch.inference_mode():
        fast = model.estimator(spec)
    assert torch.is_grad_enabled()
    slow = model.estimator(spec).detach()
    assert slow.shape == (2, 4, 2, 257, spec.shape[-1])
    assert torch.allclose(fast, slow, atol=1e-6)


def test_band_plan_follows_the_paper_and_tiles_every_bin():
    edges = band_edges(44100, 4096)
    assert edges[0][0] == 0 and edges[-1][1] == 2049
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))
    assert len(edges) == 41  # 10 + 12 + 8 + 8 + 2 bands, and the rest
    hz = 44100 / 4096
    widths = [(stop - start) * hz for start, stop in edges]
    for first, last, bandwidth, up_to in ((0, 10, 100, 1000), (10, 22, 250, 4000), (22, 30, 500, 8000),
                                          (30, 38, 1000, 16000), (38, 40, 2000, 20000)):
        assert all(abs(w - bandwidth) < 0.35 * bandwidth for w in widths[first:last])
        assert abs(edges[last - 1][1] * hz - up_to) <= hz  # each range ends where the paper's does
    assert widths[-1] == pytest.approx(2049 * hz - 20000, abs=hz)
    # a coarse FFT: every band at least one bin, still tiling
    small = band_edges(44100, 256, PAPER_BANDS)
    assert small[0][0] == 0 and small[-1][1] == 129 and all(b > a for a, b in small)
    assert all(a[1] == b[0] for a, b in zip(small, small[1:]))


def test_bsrnn_mask_heads_run_per_band_on_a_shared_trunk():
    model = tiny("bsrnn").estimator
    assert len(model.heads) == 4 and model.n_bands == len(band_edges(44100, 512))
    assert sum(n for _, n, _ in model.groups) == model.n_bands
    # one trunk (split + RNN layers), one head per stem
    trunk = sum(p.numel() for p in model.split.parameters()) + sum(p.numel() for p in model.layers.parameters())
    head = sum(p.numel() for p in model.heads[0].parameters())
    assert trunk > 0 and head > 0


@pytest.mark.parametrize("name", MODERN)
def test_chunked_output_is_continuous_at_chunk_boundaries(name):
    """A smooth input separated chunk by chunk: no step at the chunk edges larger than the steps elsewhere."""
    model = tiny(name)
    samplerate = model.samplerate
    t = np.arange(int(1.0 * samplerate)) / samplerate
    mix = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)

    def model_fn(chunk: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(chunk)[None])[0].numpy()

    segment = model.segment_samples
    out = apply_chunked(model_fn, mix, 4, segment, overlap=0.25)
    steps = np.abs(np.diff(out, axis=-1))
    stride = chunk_stride(segment, 0.25)
    edges = sorted({e for k in range(1, mix.shape[-1] // stride) for e in (k * stride, k * stride + segment)})
    edges = [e for e in edges if 2 <= e < mix.shape[-1] - 2]
    near_edges = np.concatenate([steps[..., e - 2 : e + 1] for e in edges], axis=-1)
    interior = np.delete(steps, [i for e in edges for i in range(e - 2, e + 1)], axis=-1)
    assert near_edges.max() <= 1.5 * interior.max() + 1e-6


def test_bsrnn_unit_mask_on_one_stem_returns_the_mixture():
    """Zero the last layer of every mask head and set its bias so the GLU gives 1 + 0j for vocals and 0 for the
    rest: vocals are then the mixture (through STFT and inverse), the other stems silent."""
    model = tiny("bsrnn")
    with torch.no_grad():
        for stem, head in enumerate(model.estimator.heads):
            for out in head.out:
                out.weight.zero_()
                half = out.bias.shape[-1] // 2  # GLU: values, then gates
                values = out.bias[..., :half].view(*out.bias.shape[:-1], -1, 2)
                values[..., 0] = 2.0 if stem == 0 else 0.0  # real part x sigmoid(0) = 1 (or 0)
                values[..., 1] = 0.0
                out.bias[..., half:] = 0.0
    mix = torch.randn(1, 2, 5000)
    with torch.inference_mode():
        out = model(mix)
    assert torch.allclose(out[:, 0], mix, atol=1e-4)
    assert out[:, 1:].abs().max() < 1e-6


def test_tfctdf_input_path_alone_returns_the_mixture_below_the_crop():
    """Only the linear input path, set to copy the input's maps into vocals: vocals are the mixture with the bins
    above the crop removed (the report zeroes them too), the other stems silent."""
    model = tiny("tfctdf")
    estimator = model.estimator
    with torch.no_grad():
        for p in estimator.parameters():
            p.zero_()
        estimator.input_path.weight[:4, :, 0, 0] = torch.eye(4)
    mix = torch.randn(1, 2, 5000)
    spec = stft(mix, 512, 128)
    spec[..., estimator.n_kept :, :] = 0
    expected = istft(spec, 5000, 512, 128)
    with torch.inference_mode():
        out = model(mix)
    assert torch.allclose(out[:, 0], expected, atol=1e-4)
    assert out[:, 1:].abs().max() < 1e-6


class FixedBatch(Dataset):
    """The same few examples every epoch: ``(mixture (2, n), stems (4, 2, n))``, sines as stems."""

    def __init__(self, n_items: int = 4, n_samples: int = 4096) -> None:
        g = torch.Generator().manual_seed(0)
        t = torch.arange(n_samples) / 44100.0
        freqs = torch.tensor([440.0, 90.0, 55.0, 1200.0])
        stems = torch.sin(2 * np.pi * freqs[:, None] * t)[None, :, None, :].repeat(n_items, 1, 2, 1)
        self.stems = stems * (0.1 + 0.5 * torch.rand(n_items, 4, 2, 1, generator=g))

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stems[index].sum(dim=0), self.stems[index]


@pytest.mark.parametrize("name", MODERN)
def test_a_few_trainer_steps_lower_the_loss(name, tmp_path):
    """The supervised objective through the trainer, one fixed batch per epoch: the complex loss must fall."""
    settings = TrainSettings(epochs=12, batch_size=4, lr=3e-3, patience=100, seed=0, samples_per_epoch=4)
    config = TrainConfig(architecture=name, model={"sources": SOURCES, **TINY[name]}, train=settings)
    result = fit(config, FixedBatch(), [], tmp_path, show_progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.8 * losses[0]


@pytest.mark.parametrize("name", MODERN)
def test_card_round_trip_gives_the_same_stems(name, tmp_path):
    model = tiny(name)
    config = {"sources": SOURCES, **TINY[name]}
    fields = {"architecture": name, "kind": "test", "summary": f"tiny {name}", "config": config,
              "sources": SOURCES, "segment_seconds": 0.2}
    folder = save_model(model, f"tiny-{name}", fields, root=tmp_path, dtype=None)
    loaded = load_from_card(read_card(folder))
    mix = torch.randn(1, 2, 3000)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(mix).numpy(), model(mix).numpy(), atol=1e-6)
