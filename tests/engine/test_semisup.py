"""The semi-supervised masking network (engine/models/semisup.py) and its loss terms
(engine/train/objectives/semisup.py): shapes, the mask's range, the band rule, each term as the paper writes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models.catalogue import build_model
from engine.models.semisup import (
    CLIP_SAMPLES,
    PATCH_FRAMES,
    MultiScaleDiscriminator,
    SemisupSeparator,
    compress,
    resample,
)
from engine.separation.separator import Separator
from engine.train.objectives.semisup import (
    DEFAULT_WEIGHTS,
    active_terms,
    discriminator_loss,
    generator_gan,
    generator_terms,
    l1,
    least_squares,
    make_cross,
)

TINY = {
    "encoder_channels": [2, 4, 4],
    "upsample_channels": [4, 4],
    "n_residual": 1,
    "style_dim": 2,
    "mlp_dim": 8,
    "segment_seconds": 1.0,
}


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - tiny convolutions: more threads than free cores only spin on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed: int = 0, **overrides: object) -> SemisupSeparator:
    torch.manual_seed(seed)
    return build_model("semisup", {**TINY, **overrides})


def test_the_paper_sizes_build_and_the_front_end_gives_256_by_256_patches():
    model = build_model("semisup", {"encoder_channels": [64, 128, 256], "upsample_channels": [128, 256]})
    net = model.estimator.mask_net
    assert [m.out_channels for m in net.encoder if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256]
    assert net.encoder[0].kernel_size == (7, 7) and net.encoder[3].stride == (2, 2)
    assert len(net.encoder_blocks) == 4 and len(net.decoder_blocks) == 4
    assert (net.up0.out_channels, net.up1.out_channels, net.up1.kernel_size) == (128, 256, (5, 5))
    assert net.out.kernel_size == (7, 7) and net.out.out_channels == 1
    spec = model.spectrogram(torch.zeros(1, 1, 44100))  # at the model's outer rate, STFT at 20480 Hz
    assert spec.shape[-2] == 257  # n_fft 512
    clip = torch.randn(1, 1, CLIP_SAMPLES)
    from engine.dsp.stft import stft

    assert stft(clip, 512, 64)[..., :-1, :].shape[-2:] == (256, PATCH_FRAMES)


def test_the_mask_is_in_0_1_and_g_is_the_masked_input():
    model = tiny_model()
    x = compress(torch.rand(3, 1, 256, 256) * 4)
    mask = model.estimator.mask(x)
    assert mask.shape == x.shape and mask.min() >= 0 and mask.max() <= 1
    assert torch.allclose(model.estimator.generator(x), x * mask)


def test_patches_of_any_length_blend_back_to_the_input_length():
    est = tiny_model().estimator
    x = compress(torch.rand(2, 1, 256, 600))
    mask = est.patch_mask(x)
    assert mask.shape == x.shape and 0 <= mask.min() and mask.max() <= 1
    one = compress(torch.rand(1, 1, 256, PATCH_FRAMES))
    assert torch.allclose(est.patch_mask(one), est.mask(one), atol=1e-6)  # one patch: the network itself
    assert est.patch_mask(compress(torch.rand(1, 1, 256, 3))).shape[-1] == 3


def test_multi_scale_discriminator_scores_each_scale():
    d = MultiScaleDiscriminator(channels=(4, 4, 4, 4), n_scales=3)
    scores = d(torch.rand(2, 1, 256, 256))
    assert [s.shape for s in scores] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]
    slopes = {m.negative_slope for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}


def test_stems_sum_to_the_mixture_and_the_band_above_10_khz_is_accompaniment():
    model = tiny_model().eval()
    t = np.arange(44100) / 44100
    high = 0.3 * np.sin(2 * np.pi * 15000 * t)  # above 10.24 kHz: the network never sees it
    low = 0.3 * np.sin(2 * np.pi * 440 * t)
    mix = torch.from_numpy(np.stack([high + low, high]).astype(np.float32))[None]
    with torch.no_grad():
        out = model(mix)
    assert out.shape == (1, 2, 2, 44100)
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-6)
    vocals = out[0, model.sources.index("vocals"), 1].numpy()  # channel 1 holds only the 15 kHz tone
    assert np.sqrt(np.mean(vocals[2000:-2000] ** 2)) < 1e-3 * np.sqrt(np.mean(high**2))


@pytest.mark.parametrize("rate,n_channels", [(44100, 2), (48000, 1)])
def test_through_the_separator_at_the_songs_rate_channels_and_length(rate, n_channels):
    model = tiny_model().eval()
    mix = (0.1 * np.random.default_rng(0).standard_normal((n_channels, int(2.3 * rate)))).astype(np.float32)
    out = Separator(model, device="cpu", segment_seconds=1.0).separate(mix, rate)
    assert set(out) == {"vocals", "accompaniment"}
    assert all(stem.shape == (2, mix.shape[-1]) and np.isfinite(stem).all() for stem in out.values())
    if rate == 44100:  # no resampling outside the model: the stems sum to the song
        assert np.abs(out["vocals"] + out["accompaniment"] - mix).max() < 1e-5


def test_very_short_chunks_and_resampling_lengths():
    model = tiny_model().eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 2, 5)).shape == (1, 2, 2, 5)
    assert resample(torch.zeros(2, 3, 44100), 44100, 20480).shape == (2, 3, 20480)


# --- loss terms, by hand --------------------------------------------------------------------------------------------


def _patches(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    a_spec = torch.randn(2, 1, 8, 12, generator=g, dtype=torch.complex64)
    c_spec = torch.randn(2, 1, 8, 12, generator=g, dtype=torch.complex64)
    return a_spec, compress(a_spec.abs()), c_spec, compress(c_spec.abs())


def half(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x


def test_each_reconstruction_term_is_the_papers():
    a_spec, a, c_spec, c = _patches()
    terms, ga, a_bar = generator_terms(
        half, a, a_spec, c, c_spec, ["R1", "R2", "R3", "R4"], cross_domain="compressed"
    )
    # b_bar = a - g(a), a_bar = b_bar + c
    assert torch.allclose(ga, 0.5 * a) and torch.allclose(a_bar, 0.5 * a + c)
    assert torch.isclose(terms["R1"], (0.5 * c - c).abs().mean())  # |g(c) - c|
    assert torch.isclose(terms["R2"], (0.25 * a - 0.5 * a).abs().mean())  # |g(g(a)) - g(a)|
    assert torch.isclose(terms["R3"], (0.5 * a_bar - c).abs().mean())  # |g(a_bar) - c(a_bar)|
    # |(a_bar - g(a_bar)) - b(a_bar)|
    assert torch.isclose(terms["R4"], ((a_bar - 0.5 * a_bar) - 0.5 * a).abs().mean())


def test_summed_in_the_compressed_domain_r4_is_r3_but_not_in_the_complex_domain():
    a_spec, a, c_spec, c = _patches(1)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def g(x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(conv(x))

    literal, _, _ = generator_terms(g, a, a_spec, c, c_spec, ["R3", "R4"], cross_domain="compressed")
    assert torch.isclose(literal["R3"], literal["R4"], atol=1e-6)
    summed, _, _ = generator_terms(g, a, a_spec, c, c_spec, ["R3", "R4"], cross_domain="complex")
    assert not torch.isclose(summed["R3"], summed["R4"], atol=1e-3)


def test_the_complex_cross_is_the_sum_of_the_two_spectrograms():
    a_spec, a, c_spec, c = _patches(2)
    # the vocals estimate is the whole mixture and c is silent: the cross is the mixture
    assert torch.allclose(make_cross(a, a_spec, c, torch.zeros_like(c_spec)), a, atol=1e-5)
    expected = compress((0.5 ** (1 / 0.3) * a_spec + c_spec).abs())
    assert torch.allclose(make_cross(0.5 * a, a_spec, c, c_spec), expected, atol=1e-5)


def test_the_gan_terms_and_discriminator_losses_are_least_squares():
    scores = [torch.full((2, 1, 3, 3), 0.25), torch.full((2, 1, 1, 1), 0.5)]
    assert torch.isclose(least_squares(scores, 1.0), torch.tensor(0.75**2 + 0.5**2))
    assert torch.isclose(generator_gan(scores, "lsgan"), torch.tensor(0.75**2 + 0.5**2))  # l(d(x), 1)
    # eq. 7-8 as printed: -l(d(x), 0)
    assert torch.isclose(generator_gan(scores, "negated"), torch.tensor(-(0.25**2 + 0.5**2)))
    real, fake = torch.full((2, 1, 4, 4), 0.8), torch.full((2, 1, 4, 4), 0.3)
    loss = discriminator_loss(lambda x: [x], real, fake)  # eq. 9-10: l(d(fake), 0) + l(d(real), 1)
    assert torch.isclose(loss, torch.tensor(0.3**2 + 0.2**2))

    a_spec, a, c_spec, c = _patches(3)
    seen = []

    def d(x: torch.Tensor) -> list[torch.Tensor]:
        seen.append(x)
        return [x.mean(dim=(1, 2, 3))]

    terms, ga, a_bar = generator_terms(half, a, a_spec, c, c_spec, ["GAN_C", "GAN_A"], d_c=d, d_a=d)
    assert torch.equal(seen[0], ga) and torch.equal(seen[1], a_bar)  # d_C on g(a), d_A on a_bar
    assert torch.isclose(terms["GAN_C"], ((ga.mean(dim=(1, 2, 3)) - 1) ** 2).mean())


def test_weights_and_ablation_switches():
    assert active_terms({}) == DEFAULT_WEIGHTS  # R1 + R2 + R3 + R4 + 0.5 (GAN_C + GAN_A)
    assert set(active_terms({"without": ["R2"]})) == set(DEFAULT_WEIGHTS) - {"R2"}
    assert set(active_terms({"without": ["GAN_A", "GAN_C"]})) == {"R1", "R2", "R3", "R4"}
    assert active_terms({"weights": {"R1": 2}})["R1"] == 2.0
    with pytest.raises(Exception, match="unknown loss term"):
        active_terms({"without": ["R5"]})
    a_spec, a, c_spec, c = _patches(4)
    terms, _, _ = generator_terms(half, a, a_spec, c, c_spec, ["R1", "R3"])
    assert set(terms) == {"R1", "R3"}
    assert torch.isclose(l1(torch.ones(3), torch.zeros(3)), torch.tensor(1.0))


def test_chunked_output_is_continuous_at_chunk_boundaries():
    from engine.separation.apply import apply_chunked, chunk_stride

    model = tiny_model(segment_seconds=0.3).eval()
    t = np.arange(44100) / 44100
    mix = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)

    def model_fn(chunk: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(chunk)[None])[0].numpy()

    segment = model.segment_samples
    out = apply_chunked(model_fn, mix, 2, segment, overlap=0.25)
    steps = np.abs(np.diff(out, axis=-1))
    stride = chunk_stride(segment, 0.25)
    edges = sorted({e for k in range(1, mix.shape[-1] // stride) for e in (k * stride, k * stride + segment)})
    edges = [e for e in edges if 2 <= e < mix.shape[-1] - 2]
    near_edges = np.concatenate([steps[..., e - 2 : e + 1] for e in edges], axis=-1)
    interior = np.delete(steps, [i for e in edges for i in range(e - 2, e + 1)], axis=-1)
    assert near_edges.max() <= 1.5 * interior.max() + 1e-6


def test_wiener_post_step_changes_the_vocals_and_keeps_the_sum():
    plain, filtered = tiny_model().eval(), tiny_model(wiener_iterations=2).eval()
    mix = 0.1 * torch.randn(1, 2, 20000)
    with torch.inference_mode():
        a, b = plain(mix), filtered(mix)
    assert not torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(b.sum(dim=1), mix, atol=1e-5)


def test_the_supervised_objectives_magnitude_loss_trains_the_same_estimator():
    from engine.train.losses import loss_domain, separation_loss

    model = tiny_model().train()
    mix = 0.1 * torch.randn(1, 2, 8000)
    stems = torch.stack([0.5 * mix, 0.5 * mix], dim=1)
    assert loss_domain(model) == "magnitude"
    loss = separation_loss(model, mix, stems, "magnitude")
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in model.estimator.parameters())
