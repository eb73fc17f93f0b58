"""MaskSeparator: the one spectrogram pipeline around an estimator (magnitude or complex), its config split and
its weights rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from engine.dsp.stft import istft, stft
from engine.models.catalogue import build_model, load_model, save_model
from engine.models.masking import Estimator, MaskSeparator, SpectrogramFormat, weights_module
from engine.models.openunmix import OpenUnmix

FMT = SpectrogramFormat(("a", "b"), 44100, 2, 256, 64)


class ComplexGains(nn.Module):
    """A complex-domain estimator: each source is the mixture spectrogram times a fixed gain."""

    domain = "complex"

    def __init__(self, gains: list[float]) -> None:
        super().__init__()
        self.gains = nn.Parameter(torch.tensor(gains))

    def forward(self, mix_spec: Tensor) -> Tensor:
        """complex ``(n_batch, n_channels, n_bins, n_frames)`` -> ``(n_batch, n_stems, n_channels, n_bins, n_frames)``."""
        assert mix_spec.is_complex()
        return mix_spec.unsqueeze(1) * self.gains[None, :, None, None, None].to(mix_spec.dtype)


class HalfMagnitudes(nn.Module):
    """A magnitude estimator without a ``domain`` attribute (the default domain) giving two equal sources."""

    def forward(self, mix_mag: Tensor) -> Tensor:
        assert not mix_mag.is_complex()
        return torch.stack([mix_mag, mix_mag], dim=1)


def test_complex_estimator_spectrograms_are_inverted_as_they_are():
    model = MaskSeparator(ComplexGains([0.25, 1.5]), FMT, segment_seconds=0.1).eval()
    mix = torch.randn(3, 2, 2000)
    with torch.inference_mode():
        out = model(mix)
    assert model.domain == "complex" and out.shape == (3, 2, 2, 2000)
    # no ratio mask: the gains survive (1.5 is more than the mixture), and the STFT round trip is exact
    torch.testing.assert_close(out[:, 0], 0.25 * mix, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], 1.5 * mix, atol=1e-5, rtol=0)


def test_complex_estimator_with_wiener_uses_the_estimates_magnitudes_with_the_mixture():
    model = MaskSeparator(ComplexGains([1.0, 3.0]), FMT, wiener_iterations=1).eval()
    mix = torch.randn(1, 2, 3000)
    with torch.inference_mode():
        out = model(mix)
    torch.testing.assert_close(out.sum(dim=1), mix, atol=1e-3, rtol=0)  # Wiener keeps the sum
    assert out[:, 1].square().sum() > 4 * out[:, 0].square().sum()  # the louder estimate keeps more of it


def test_magnitude_estimator_is_ratio_masked():
    model = MaskSeparator(HalfMagnitudes(), FMT).eval()
    mix = torch.randn(2, 2, 2500)
    with torch.inference_mode():
        out = model(mix)
    torch.testing.assert_close(out[:, 0], 0.5 * mix, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], 0.5 * mix, atol=1e-5, rtol=0)


def test_spectrogram_and_magnitude_are_the_pipelines_stft():
    model = MaskSeparator(HalfMagnitudes(), FMT)
    audio = torch.randn(2, 3, 2, 1000)
    spec = model.spectrogram(audio)
    assert spec.is_complex() and spec.shape == (2, 3, 2, FMT.n_bins, 1000 // 64 + 1)
    torch.testing.assert_close(spec, stft(audio, 256, 64))
    torch.testing.assert_close(istft(spec, 1000, 256, 64), audio, atol=1e-5, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mag = model.magnitude(audio)
    assert mag.dtype == torch.float32
    torch.testing.assert_close(mag, spec.abs())


def test_unknown_domain_is_refused():
    estimator = HalfMagnitudes()
    estimator.domain = "waveform"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="domain"):
        MaskSeparator(estimator, FMT)


def test_card_config_is_split_between_pipeline_and_estimator():
    config = {"sources": ["x", "y"], "n_fft": 512, "hop_length": 128, "hidden_size": 8, "n_layers": 1,
              "wiener_iterations": 2, "segment_seconds": 0.5}  # fmt: skip
    model = build_model("openunmix", config)
    assert isinstance(model, MaskSeparator) and isinstance(model.estimator, OpenUnmix)
    assert (model.n_fft, model.hop_length, model.wiener_iterations) == (512, 128, 2)
    assert model.sources == ["x", "y"] and model.segment_samples == int(0.5 * 44100)
    assert len(model.estimator.targets) == 2 and model.estimator.targets[0].hidden_size == 8
    defaults = build_model("openunmix", {"hidden_size": 8, "n_layers": 1})
    assert (defaults.n_fft, defaults.hop_length, defaults.segment_samples) == (4096, 1024, 10 * 44100)
    assert defaults.sources == ["vocals", "drums", "bass", "other"]
    with pytest.raises(TypeError, match="no_such_key"):
        build_model("openunmix", {"no_such_key": 1})


def test_a_new_mask_architecture_is_one_estimator_class():
    """What docs/ARCHITECTURE.md 'Add a model' describes: an Estimator subclass, registered, nothing else."""
    from engine.models.architectures import _ARCHITECTURES, register_architecture

    @register_architecture("test_half")
    class Half(Estimator):
        pipeline_defaults = {"n_fft": 128, "hop_length": 32}

        def __init__(self, fmt: SpectrogramFormat, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.full((fmt.n_stems,), scale))

        def forward(self, mix_mag: Tensor) -> Tensor:
            return mix_mag.unsqueeze(1) * self.scale[None, :, None, None, None]

    try:
        model = build_model("test_half", {"scale": 2.0, "sources": ["a", "b", "c"]})
        assert isinstance(model, MaskSeparator) and model.n_fft == 128
        with torch.inference_mode():
            out = model(torch.randn(1, 2, 700))
        assert out.shape == (1, 3, 2, 700)
    finally:
        _ARCHITECTURES.pop("test_half")


def test_weights_file_holds_the_estimators_state_dict(tmp_path: Path):
    from safetensors.torch import load_file

    config = {"n_fft": 256, "hop_length": 64, "hidden_size": 8, "n_layers": 1, "segment_seconds": 0.1}
    torch.manual_seed(0)
    model = build_model("openunmix", config)
    assert weights_module(model) is model.estimator
    fields = {"architecture": "openunmix", "kind": "test", "config": config, "sources": model.sources}
    folder = save_model(model, "mini", fields, root=tmp_path, dtype=None)
    keys = set(load_file(str(folder / "weights.safetensors")))
    assert keys == set(model.estimator.state_dict()) and not any(k.startswith("estimator.") for k in keys)
    assert json.loads((folder / "card.json").read_text())["weights_dtype"] == "float32"
    loaded = load_model("mini", root=tmp_path)
    model.eval()
    mix = torch.randn(1, 2, 3000)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(mix), model(mix))
