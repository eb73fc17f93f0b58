"""The Separator: any length, channels and rate; stem subsets; two-stem output; oracles; OOM fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.errors import SeparationCancelled, ShotokuError
from engine.models.catalogue import build_model, load_model
from engine.separation.device import available_devices, describe_device, select_device
from engine.separation.separator import Separator


def noise(n_channels: int, n_samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_channels, n_samples)).astype(np.float32) * 0.1


@pytest.mark.parametrize("n_samples", [1, 999, 44100 * 3 + 7])
def test_identity_any_length(n_samples):
    mix = noise(2, n_samples)
    out = Separator(build_model("identity"), segment_seconds=1.0).separate(mix, 44100)
    assert set(out) == {"vocals", "drums", "bass", "other"}
    for stem in out.values():
        assert np.array_equal(stem, mix)


def test_mono_input_gives_stereo_stems():
    mix = noise(1, 5000)
    out = Separator(build_model("identity"), segment_seconds=0.05).separate(mix, 44100)
    assert out["vocals"].shape == (2, 5000)
    assert np.array_equal(out["vocals"][0], mix[0]) and np.array_equal(out["vocals"][1], mix[0])


def test_other_rate_round_trips_to_the_input_rate_and_length():
    t = np.arange(48000 * 2 + 11) / 48000
    mix = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.5
    out = Separator(build_model("identity"), segment_seconds=0.5).separate(mix, 48000)
    assert out["bass"].shape == mix.shape
    assert np.abs(out["bass"][:, 500:-500] - mix[:, 500:-500]).max() < 1e-3  # aligned, no delay


def test_stem_subset_and_two_stems():
    mix = noise(2, 4000)
    sep = Separator(build_model("tiny"), segment_seconds=0.05)
    full = sep.separate(mix, 44100)
    subset = sep.separate(mix, 44100, stems=["drums", "vocals"])
    assert list(subset) == ["drums", "vocals"]
    np.testing.assert_array_equal(subset["drums"], full["drums"])
    two = sep.separate(mix, 44100, two_stems="vocals")
    assert set(two) == {"vocals", "no_vocals"}
    np.testing.assert_allclose(two["vocals"] + two["no_vocals"], mix, atol=1e-6)
    with pytest.raises(ShotokuError, match="unknown stem"):
        sep.separate(mix, 44100, stems=["kazoo"])
    with pytest.raises(ShotokuError, match="two-stems"):
        sep.separate(mix, 44100, two_stems="kazoo")


def test_bad_input_is_refused_with_a_reason():
    sep = Separator(build_model("identity"))
    with pytest.raises(ShotokuError, match="NaN"):
        sep.separate(np.full((2, 100), np.nan, np.float32), 44100)
    with pytest.raises(ShotokuError, match="channels"):
        sep.separate(noise(3, 100), 44100)
    with pytest.raises(ShotokuError, match="n_channels, n_samples"):
        sep.separate(noise(1, 100)[0], 44100)


def test_oracle_irm_separates_and_sums_to_the_mixture():
    rng = np.random.default_rng(5)
    n = 44100 * 2
    t = np.arange(n) / 44100
    refs = {
        "vocals": np.stack([np.sin(2 * np.pi * 440 * t)] * 2) * 0.3,
        "drums": rng.standard_normal((2, n)) * 0.05 * (np.sin(2 * np.pi * 2 * t) > 0.9),
        "bass": np.stack([np.sin(2 * np.pi * 55 * t)] * 2) * 0.3,
        "other": np.stack([np.sin(2 * np.pi * 1320 * t)] * 2) * 0.2,
    }
    refs = {k: v.astype(np.float32) for k, v in refs.items()}
    mix = sum(refs.values()).astype(np.float32)
    sep = Separator(load_model("irm"))
    with pytest.raises(ShotokuError, match="needs the reference stems"):
        sep.separate(mix, 44100)
    out = sep.separate(mix, 44100, references=refs)
    for name, ref in refs.items():
        sdr = 10 * np.log10((ref**2).sum() / ((ref - out[name]) ** 2).sum())
        assert sdr > 15, (name, sdr)
    np.testing.assert_allclose(sum(out.values()), mix, atol=1e-4)  # masks sum to one


class ReferenceGain(nn.Module):
    """A model with the oracle hook: its input is the mixture then the references; it returns the references."""

    needs_references = True

    def __init__(self) -> None:
        super().__init__()
        self.sources, self.samplerate, self.n_channels, self.segment_samples = ["a", "b"], 44100, 2, 8192
        self.seen: list[set[str]] = []

    def prepare_input(self, mix: np.ndarray, references: dict[str, np.ndarray] | None) -> np.ndarray:
        self.seen.append(set(references or {}))
        assert all(ref.shape == mix.shape for ref in (references or {}).values())
        return np.concatenate([mix, references["a"], references["b"]])  # type: ignore[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 2:].reshape(x.shape[0], 2, 2, x.shape[-1])


def test_the_model_hook_builds_the_input_from_resampled_references():
    model = ReferenceGain()
    sep = Separator(model)
    assert sep.needs_references
    t = np.arange(4800) / 48000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)[None]  # band-limited: survives 48 -> 44.1 -> 48 kHz
    refs = {"a": 0.5 * tone, "b": np.concatenate([0.2 * tone, -0.3 * tone]), "unused": noise(2, 4800, seed=3)}
    out = sep.separate(noise(2, 4800), 48000, references=refs)  # fitted like the mix: channels, 44.1 kHz
    assert model.seen == [{"a", "b"}]
    assert out["a"].shape == (2, 4800)
    np.testing.assert_allclose(out["a"][:, 200:-200], np.repeat(refs["a"], 2, axis=0)[:, 200:-200], atol=2e-3)
    np.testing.assert_allclose(out["b"][:, 200:-200], refs["b"][:, 200:-200], atol=2e-3)


def test_prepare_input_is_the_identity_without_the_hook():
    from engine.models.base import prepare_input

    mix = noise(2, 100)
    assert prepare_input(build_model("identity"), mix, {"vocals": mix}) is mix


def test_cancel_raises():
    import threading

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SeparationCancelled):
        Separator(build_model("identity"), segment_seconds=0.1).separate(noise(2, 44100), 44100, cancel=cancel)


class OomAboveModel(nn.Module):
    """Behaves like a GPU that runs out of memory for chunks longer than ``limit`` samples."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.sources, self.samplerate, self.n_channels = ["a", "b"], 44100, 2
        self.segment_samples = 40_000
        self.limit = limit
        self.lengths: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lengths.append(x.shape[-1])
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.stack([x * 0.25, x * 0.75], dim=1)


def test_out_of_memory_falls_back_to_smaller_chunks_and_says_so():
    model = OomAboveModel(limit=12_000)
    sep = Separator(model)
    mix = noise(2, 100_000)
    out = sep.separate(mix, 44100)
    np.testing.assert_allclose(out["a"], mix * 0.25, atol=1e-6)
    np.testing.assert_allclose(out["b"], mix * 0.75, atol=1e-6)
    assert any("out of memory" in note for note in sep.notes)
    assert min(model.lengths) <= 12_000


def test_out_of_memory_at_the_smallest_chunk_on_cpu_is_a_clear_error():
    sep = Separator(OomAboveModel(limit=10))
    with pytest.raises(ShotokuError, match="out of memory even on the CPU"):
        sep.separate(noise(2, 20_000), 44100)


def test_device_selection():
    assert select_device(None).type in {"cpu", "cuda", "mps"}
    assert select_device("cpu").type == "cpu"
    assert "CPU" in describe_device(torch.device("cpu"))
    assert available_devices()[0][0] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ShotokuError, match="no CUDA GPU"):
            select_device("cuda")
    with pytest.raises(ShotokuError, match="unknown device"):
        select_device("tpu")
