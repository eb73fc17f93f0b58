"""Clips for the blind VAE (``engine/models/vaebss.py``): two-instrument mixtures rendered from General MIDI
programs (the slides' MUMS experiment made from what we have), and mixture clips of songs.

- :class:`InstrumentMixtures`: item ``i`` is ``(mixture (1, n), sources (2, 1, n))`` at 5512 Hz, ``n`` = 8128
  (1.47 s): two instruments (e.g. bassoon and violin, GM programs 70 and 40) each playing random notes of its own
  range, rendered by FluidSynth (``engine.data.synth.render.PartRenderer``, FluidR3_GM) at 44.1 kHz, monaural
  (left + right) / 2, resampled with soxr. Source clips are drawn from a pool of ``pool_size`` clips per
  instrument and split; the ``train`` and ``test`` pools come from disjoint seeds, so a source is never shared
  between training and testing (the slides' rule). Each source is scaled to a random level in [0.3, 1] of peak
  0.5. Rendered clips are cached in memory (a clip renders in ~50 ms).
- :class:`MixtureClips`: item ``i`` is ``(mixture (1, n),)`` at 5512 Hz from the mixture files of a folder (the
  unpaired mixtures pool), for training on songs.

Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import Dataset

from engine.errors import DatasetError

#: Instruments: GM program and MIDI pitch range (roughly the instrument's written range).
INSTRUMENTS = {
    "bassoon": (70, 34, 72),
    "violin": (40, 55, 96),
    "flute": (73, 60, 96),
    "cello": (42, 36, 76),
    "trumpet": (56, 54, 82),
    "clarinet": (71, 50, 89),
    "piano": (0, 36, 96),
}
SOURCE_RATE = 44100
RATE = 5512
CLIP_SAMPLES = 8128
#: Offsets that keep the train and test seeds of a pool apart.
SPLIT_SEEDS = {"train": 0, "valid": 1_000_003, "test": 2_000_003}


def random_part(instrument: str, seconds: float, rng: np.random.Generator):  # noqa: ANN201 - a compose.Part
    """A monophonic part of ``instrument``: notes of 0.15-0.6 s with short gaps, pitches in its range."""
    from engine.data.synth.compose import Note, Part

    program, low, high = INSTRUMENTS[instrument]
    notes, t = [], float(rng.uniform(0, 0.1))
    while t < seconds:
        length = float(rng.uniform(0.15, 0.6))
        notes.append(Note(t, t + length, int(rng.integers(low, high + 1)), int(rng.integers(70, 115))))
        t += length + float(rng.uniform(0.0, 0.08))
    return Part(name=instrument, stem="other", program=program, notes=notes)


@lru_cache(maxsize=1)
def _renderer():  # noqa: ANN202 - one FluidSynth per process
    from engine.data.synth.render import DEFAULT_SOUNDFONT, PartRenderer

    if not DEFAULT_SOUNDFONT.is_file():
        raise DatasetError(DEFAULT_SOUNDFONT, "SoundFont not found (apt-get install fluid-soundfont-gm)")
    return PartRenderer(DEFAULT_SOUNDFONT)


@lru_cache(maxsize=8192)
def render_clip(instrument: str, seed: int, n_samples: int = CLIP_SAMPLES, rate: int = RATE) -> np.ndarray:
    """One source clip ``(n_samples,)`` float32 at ``rate``, a pure function of its arguments (peak 0.5)."""
    rng = np.random.default_rng([seed, sorted(INSTRUMENTS).index(instrument)])
    seconds = n_samples / rate + 0.05
    audio = _renderer().render(random_part(instrument, seconds, rng), int(seconds * SOURCE_RATE) + 1)
    mono = soxr.resample(audio.mean(axis=0).astype(np.float32), SOURCE_RATE, rate, quality="HQ")
    clip = np.zeros(n_samples, dtype=np.float32)
    clip[: min(n_samples, mono.size)] = mono[:n_samples]
    peak = float(np.abs(clip).max())
    return clip * (0.5 / peak) if peak > 0 else clip


class InstrumentMixtures(Dataset):
    """Two-instrument mixtures: ``(mixture (1, n), sources (2, 1, n))`` float32 (see the module docstring)."""

    def __init__(self, instruments: tuple[str, str] = ("bassoon", "violin"), split: str = "train",
                 pool_size: int = 500, samples_per_epoch: int = 256, seed: int = 0,
                 n_samples: int = CLIP_SAMPLES, rate: int = RATE) -> None:
        unknown = set(instruments) - set(INSTRUMENTS)
        if unknown or len(instruments) != 2 or split not in SPLIT_SEEDS:
            raise DatasetError(None, f"instruments must be two of {sorted(INSTRUMENTS)} and split one of "
                                     f"{sorted(SPLIT_SEEDS)}; got {list(instruments)}, {split!r}")
        self.instruments, self.split = tuple(instruments), split
        self.pool_size, self.samples_per_epoch = int(pool_size), int(samples_per_epoch)
        self.seed, self.epoch, self.n_samples, self.rate = int(seed), 0, int(n_samples), int(rate)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sources = []
        for name in self.instruments:
            clip_seed = SPLIT_SEEDS[self.split] + int(rng.integers(0, self.pool_size))
            sources.append(render_clip(name, clip_seed, self.n_samples, self.rate) * float(rng.uniform(0.3, 1.0)))
        stack = torch.from_numpy(np.stack(sources))[:, None]
        return stack.sum(dim=0), stack


class MixtureClips(Dataset):
    """``(mixture (1, n),)`` float32 clips at ``rate`` from the ``mixture.wav|flac`` files below ``folder`` (one
    channel drawn at random)."""

    def __init__(self, folder: str | Path, samples_per_epoch: int = 256, seed: int = 0,
                 n_samples: int = CLIP_SAMPLES, rate: int = RATE) -> None:
        self.files = sorted(p for p in Path(folder).rglob("mixture.*") if p.suffix in (".wav", ".flac"))
        if not self.files:
            raise DatasetError(folder, "no mixture.wav or mixture.flac below this folder")
        self.samples_per_epoch, self.seed, self.epoch = int(samples_per_epoch), int(seed), 0
        self.n_samples, self.rate = int(n_samples), int(rate)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        path = self.files[int(rng.integers(0, len(self.files)))]
        info = sf.info(str(path))
        n_read = int(np.ceil(self.n_samples * info.samplerate / self.rate)) + 64
        start = int(rng.integers(0, max(1, info.frames - n_read)))
        audio, _ = sf.read(str(path), start=start, frames=n_read, dtype="float32", always_2d=True)
        channel = audio[:, int(rng.integers(0, audio.shape[1]))]
        low = soxr.resample(np.ascontiguousarray(channel), info.samplerate, self.rate, quality="HQ")
        clip = np.zeros(self.n_samples, dtype=np.float32)
        clip[: min(self.n_samples, low.size)] = low[: self.n_samples]
        return (torch.from_numpy(clip)[None],)
