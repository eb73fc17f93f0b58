"""PROJET (engine/models/projet.py): projections, the fit, objects left to right, the chunked engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.models.catalogue import build_model, get_card, load_model
from engine.models.projet import Projet, fit_projet, object_names, projection_matrix, steering
from engine.separation.separator import Separator

RATE = 16000
SMALL = {"samplerate": RATE, "n_fft": 1024, "hop_length": 256, "n_pans": 19, "n_projections": 8, "iterations": 40,
         "segment_seconds": 3.0}


def sparse_source(seed: int, n_samples: int, rate: int = RATE) -> np.ndarray:
    """A mono "instrument": random notes (decaying sines with harmonics), sparse in time and frequency."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n_samples)
    t = np.arange(int(0.25 * rate)) / rate
    for start in rng.integers(0, n_samples - t.size, size=int(n_samples / rate * 6)):
        f0 = rng.uniform(110, 1200)
        note = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3)) * np.exp(-t * 12)
        out[start : start + t.size] += note
    return (out / np.abs(out).max() * 0.3).astype(np.float32)


def pan_image(source: np.ndarray, degrees: float, delay_samples: int = 0) -> np.ndarray:
    """The pan/delay model of the paper: ``[cos phi s(t), sin phi s(t - tau)]``, ``(2, n_samples)``."""
    phi = math.radians(degrees)
    right = np.roll(source, delay_samples) if delay_samples else source
    return np.stack([math.cos(phi) * source, math.sin(phi) * right]).astype(np.float32)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-12)))


@pytest.fixture(scope="module")
def three_objects() -> tuple[np.ndarray, np.ndarray]:
    """Three sources panned left (15 degrees), centre (45) and right (75): images ``(3, 2, n)`` and their mix."""
    n = 2 * RATE
    images = np.stack([pan_image(sparse_source(s, n), deg) for s, deg in ((1, 15), (2, 45), (3, 75))])
    return images, images.sum(0)


def test_a_projection_cancels_a_source_at_its_own_position_and_no_other():
    freqs = torch.linspace(0, 8000, 9, dtype=torch.float64)
    pans = torch.tensor([0.3, 0.9, 1.2], dtype=torch.float64)
    delays = torch.tensor([0.0, 2e-4, -1e-4], dtype=torch.float64)
    gains = (projection_matrix(pans, delays, freqs) @ steering(pans, delays, freqs)).abs()  # (F, M, L)
    assert torch.allclose(torch.diagonal(gains, dim1=1, dim2=2), torch.zeros(9, 3, dtype=torch.float64), atol=1e-12)
    off = gains[1:] + torch.eye(3, dtype=torch.float64)  # above 0 Hz, every other location passes
    assert bool((off > 1e-3).all())


def test_fit_lowers_the_divergence_and_keeps_q_normalised():
    model = Projet(**SMALL)
    rng = torch.Generator().manual_seed(0)
    v = torch.rand(20, 30, model.k.shape[1], generator=rng) + 0.01

    def itakura_saito(p: torch.Tensor, q: torch.Tensor) -> float:
        sigma = p @ (model.k @ q).transpose(-1, -2)
        ratio = v / sigma
        return float((ratio - ratio.log() - 1).sum())

    p1, q1 = fit_projet(v, model.k, model.q_init, 1)
    p30, q30 = fit_projet(v, model.k, model.q_init, 30)
    assert itakura_saito(p30, q30) < itakura_saito(p1, q1)
    assert torch.allclose(q30.sum(0), torch.ones(3), atol=1e-5)
    assert bool((p30 >= 0).all()) and bool((q30 >= 0).all())


def test_three_panned_objects_come_out_left_to_right_and_sum_to_the_mix(three_objects):
    images, mix = three_objects
    model = Projet(**SMALL)
    with torch.no_grad():
        out = model(torch.from_numpy(mix)[None])[0].numpy()
    assert out.shape == images.shape
    np.testing.assert_allclose(out.sum(0), mix, atol=1e-4)
    scores = np.array([[sdr(ref, est) for est in out] for ref in images])  # (reference, estimate)
    assert list(scores.argmax(axis=1)) == [0, 1, 2], scores  # each object matches its own, leftmost first
    assert np.diag(scores).min() > 8.0, scores  # the mixture itself scores about -3 dB against each image
    assert max(sdr(ref, mix / 3) for ref in images) < 3.0


def test_objects_with_inter_channel_delays_need_delays_in_the_grid():
    n = 2 * RATE
    images = np.stack([pan_image(sparse_source(s, n), deg, d) for s, deg, d in ((4, 25, -3), (5, 65, 3))])
    mix = images.sum(0)
    delays_ms = [-3000 / RATE, 0.0, 3000 / RATE]
    scores = {}
    for name, grid in (("pan only", [0.0]), ("pan and delay", delays_ms)):
        model = Projet(n_objects=2, delays_ms=grid, **SMALL)
        assert model.frequency_dependent == (name != "pan only")
        with torch.no_grad():
            out = model(torch.from_numpy(mix)[None])[0].numpy()
        np.testing.assert_allclose(out.sum(0), mix, atol=1e-4)
        scores[name] = min(sdr(ref, est) for ref, est in zip(images, out, strict=True))
    assert scores["pan and delay"] > 8.0, scores
    assert scores["pan and delay"] > scores["pan only"] + 2.0, scores


def test_through_the_chunked_engine_the_objects_sum_to_the_song_and_repeat_exactly(three_objects):
    _, mix = three_objects
    song = np.concatenate([mix, mix[:, : RATE // 2]], axis=1)  # 2.5 s: several overlapping 1 s chunks
    model = build_model("projet", dict(SMALL, segment_seconds=1.0, iterations=5))
    separator = Separator(model, device="cpu", overlap=0.25)
    first = separator.separate(song, RATE)
    second = separator.separate(song, RATE)
    assert list(first) == ["left", "centre", "right"]
    np.testing.assert_allclose(sum(first.values()), song, atol=1e-4)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])  # no random start: a region is reproducible


@pytest.mark.parametrize("kind", ["silence", "mono"])
def test_silence_and_mono_give_finite_objects_that_sum_to_the_input(kind):
    n = RATE
    mix = np.zeros((2, n), np.float32) if kind == "silence" else np.repeat(sparse_source(7, n)[None], 2, 0)
    with torch.no_grad():
        out = Projet(**SMALL)(torch.from_numpy(mix)[None])[0].numpy()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(0), mix, atol=1e-4)


def test_the_shipped_card_is_a_reference_model_without_weights():
    card = get_card("projet")
    assert card.kind == "reference" and card.weights_sha256 is None
    model = load_model("projet")
    assert model.sources == card.sources == ["left", "centre", "right"]
    assert model.segment_samples == int(card.segment_seconds * card.samplerate)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="stereo"):
        Projet(n_channels=1)
    with pytest.raises(ValueError, match="alpha"):
        Projet(alpha=2.5)
    assert object_names(3) == ["left", "centre", "right"] and object_names(7)[-1] == "object7"


def test_the_benchmark_places_objects_by_the_pan_delay_model_at_equal_angles():
    from tests.engine.benches import load_bench

    bench = load_bench("projet")
    sources = np.random.default_rng(0).standard_normal((4, 100)).astype(np.float32)
    images = bench.place(sources, 20.0, [-6, -2, 2, 6])
    for j, (angle, delay) in enumerate(zip((15, 35, 55, 75), (-6, -2, 2, 6), strict=True)):
        phi = math.radians(angle)
        np.testing.assert_allclose(images[j, 0], math.cos(phi) * sources[j], rtol=1e-6)
        shifted = images[j, 1] / math.sin(phi)
        if delay > 0:
            np.testing.assert_allclose(shifted[delay:], sources[j, :-delay], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(shifted[:delay], sources[j, -delay:], rtol=1e-5, atol=1e-6)
