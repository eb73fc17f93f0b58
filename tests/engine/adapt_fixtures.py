"""Shared fixtures of the adaptation tests: a tiny random semi-supervised model installed as the shipped
``semisup``, a generated library (a band of tones, a noise-band "voice" in the middle of each song) and a detector
that hears that voice (the energy above 1.5 kHz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.models.catalogue import build_model, save_model

RATE = 44100
#: A small semisup (the paper's front end is tested in test_semisup.py): 32 bins x 32 frames per patch.
SMALL = {"encoder_channels": [2, 4, 4], "upsample_channels": [4, 4], "n_residual": 1, "style_dim": 2, "mlp_dim": 8,
         "segment_seconds": 4.0, "n_fft": 64, "hop_length": 16, "patch_frames": 32}
DISC = {"channels": [2, 2, 2, 2], "n_scales": 2}
#: Tiny training: two epochs of two steps, short validation.
OVERRIDES = {"train": {"samples_per_epoch": 4, "batch_size": 2, "epochs": 2, "valid_seconds": 2.0,
                       "valid_tracks": 2}, "objective_args": {}}
REPO = Path(__file__).resolve().parents[2]


def install_semisup(resources: Path, name: str = "semisup") -> Path:
    """Save a random-init SMALL semisup as ``resources/models/<name>`` (as the export saves a trained one)."""
    torch.manual_seed(0)
    model = build_model("semisup", dict(SMALL))
    fields = {"architecture": "semisup", "kind": "neural", "config": dict(SMALL),
              "sources": list(model.sources), "samplerate": 44100, "n_channels": 2, "segment_seconds": 4.0,
              "training": {"objective": {"name": "semisup",  # init_from: as the shipped card, a run folder users lack
                                        "args": {"discriminator": DISC, "pool": "real",
                                                 "init_from": "runs/semisup-supervised"}}}}
    return save_model(model, name, fields, root=resources / "models", dtype=None)


def make_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """(For a fixture.) A registry holding only the tiny ``semisup`` (and the demo song, for the reference voice); the user's
    data folder in ``tmp_path``."""
    root = tmp_path / "resources"
    (root / "models").mkdir(parents=True)
    (root / "demo").symlink_to(REPO / "resources" / "demo")
    install_semisup(root)
    monkeypatch.setenv("SHOTOKU_RESOURCES", str(root))
    monkeypatch.setenv("SHOTOKU_DATA", str(tmp_path / "data"))
    return root


def song(seed: int, seconds: float = 30.0, voice: tuple[float, float] | None = (10.0, 20.0)) -> np.ndarray:
    """``(2, n)`` at 44.1 kHz: tones below 500 Hz throughout, a 2-6 kHz noise "voice" during ``voice``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    band = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(80, 500, size=3))
    audio = np.stack([band, band * 0.9]).astype(np.float32)
    if voice is not None:
        noise = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        noise[(freqs < 2000) | (freqs > 6000)] = 0
        v = np.fft.irfft(noise, n)
        v *= 0.1 / np.sqrt(np.mean(v**2))
        gate = ((t >= voice[0]) & (t < voice[1])).astype(np.float64)
        audio += (v * gate).astype(np.float32)[None]
    return audio


def write_library(folder: Path, n_songs: int = 4, voice: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_songs):
        sf.write(folder / f"song{k}.flac", song(k, voice=(10.0, 20.0) if voice else None).T, RATE)
    return folder


def high_band_detector(mixture: np.ndarray, samplerate: int) -> np.ndarray:
    """The "vocals": the mixture above 1.5 kHz (the generated voice, and nothing of the tones)."""
    spec = np.fft.rfft(mixture, axis=-1)
    spec[:, np.fft.rfftfreq(mixture.shape[-1], 1 / samplerate) < 1500] = 0
    return np.fft.irfft(spec, mixture.shape[-1], axis=-1).astype(np.float32)
