"""Monaural training clips at the semi-supervised network's rate, from unpaired pools or from paired songs.

The semi-supervised masking network (``engine/models/semisup.py``) trains on 0.8 s monaural clips at 20480 Hz:

- :func:`unpaired_clips`: item ``i`` is ``(a (1, n), c (1, n))``, a clip of a mixture of S_A and a clip of an
  instrumental recording of S_C, drawn independently (:class:`engine.data.unpaired.UnpairedSampler`), so a mixture
  never comes with its own accompaniment;
- :class:`SharedPieceClips`: item ``i`` is ``(a (1, n), c (1, n))`` from songs over real accompaniment
  (``train_realacc``): ``a`` a clip of a song's mixture, ``c`` a clip of a song's accompaniment alone, both songs
  drawn independently, and the two never from the same stretch of time: each song is cut into blocks of
  ``block_seconds``, mixtures are read from even blocks and accompaniments from odd ones. The voice is then the only
  thing that tells S_A from S_C (the pieces are the same), as in "Learn from my music", where mixtures and
  instrument-only passages come from the same songs; a mixture still never meets its own accompaniment;
- :func:`paired_clips`: item ``i`` is ``(mixture (1, n), vocals (1, n), accompaniment (1, n))`` from the paired
  ``train`` split (:class:`engine.data.musdb.ChunkSampler`), for the supervised twin.

Each clip is read at 44.1 kHz with a margin, resampled with soxr and cut in the middle (no resampler edge in the
clip); one channel of the stereo source, drawn at random, is the monaural signal (the paper's data is monaural).
Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.

Unpaired clips are drawn again (from the same generator, so still a pure function of the index) while either is
digitally silent, paired ones while the mixture is (peak below :data:`SILENT_PEAK`). Real pieces hold silent
stretches, and a silent patch, constant after the network's compression, gives the network NaN gradients: a
random-init generator's parameter gradient is NaN on a silent patch and finite on noise. One such S_C clip turned
a semisup run's generator gradient norm from ~50 to inf in a single step (the NaN in the README).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import Dataset

from engine.data.musdb import ChunkSampler
from engine.data.unpaired import UnpairedSampler
from engine.errors import DatasetError

#: The corpus rate the pools are read at.
SOURCE_RATE = 44100
#: Extra seconds read on each side of a clip before resampling.
MARGIN_SECONDS = 0.02
#: A clip whose peak is below this (-80 dBFS) is silent; unpaired clips are redrawn up to MAX_DRAWS times.
SILENT_PEAK = 1e-4
MAX_DRAWS = 16


class _Clips(Dataset):
    """Base: ``samples_per_epoch`` items, each from ``np.random.default_rng([seed, epoch, index])``."""

    def __init__(self, n_samples: int, samplerate: int, samples_per_epoch: int, seed: int) -> None:
        self.n_samples = int(n_samples)
        self.samplerate = int(samplerate)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self.read_seconds = self.n_samples / self.samplerate + 2 * MARGIN_SECONDS

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        return np.random.default_rng([self.seed, self.epoch, index])

    def _until_heard(self, rng: np.random.Generator, draw: Callable[[np.random.Generator], tuple]) -> tuple:
        """``draw(rng)`` -> ``(clips, heard)``, drawn again (up to :data:`MAX_DRAWS` times) while a clip of
        ``heard`` is silent; returns the last ``clips``."""
        for _ in range(MAX_DRAWS):
            clips, heard = draw(rng)
            if min(float(x.abs().max()) for x in heard) >= SILENT_PEAK:
                break
        return clips

    def _heard_pair(self, index: int, draw: Callable[[np.random.Generator], tuple]) -> tuple:
        """Item ``index`` of a set of ``(a, c)`` pairs: ``draw(rng) -> (a, c)``, drawn again while either is silent."""
        return self._until_heard(self._rng(index), lambda rng: (pair := draw(rng), pair))

    def _fit(self, audio: np.ndarray, channel: int) -> torch.Tensor:
        """One channel of ``audio`` ``(n_channels, n)`` at 44.1 kHz -> ``(1, n_samples)`` at ``samplerate``."""
        low = soxr.resample(np.ascontiguousarray(audio[channel]), SOURCE_RATE, self.samplerate, quality="HQ")
        start = max(0, (low.shape[-1] - self.n_samples) // 2)
        clip = np.zeros(self.n_samples, dtype=np.float32)
        part = low[start : start + self.n_samples]
        clip[: part.shape[-1]] = part
        return torch.from_numpy(clip)[None]


class UnpairedClips(_Clips):
    """``(a (1, n_samples), c (1, n_samples))`` float32 at ``samplerate``: S_A and S_C clips, independent."""

    def __init__(
        self,
        mixtures: str | Path,
        instrumentals: str | Path,
        instrumental_name: str = "instrumental",
        n_samples: int = 16320,
        samplerate: int = 20480,
        samples_per_epoch: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(n_samples, samplerate, samples_per_epoch, seed)
        self.sampler = UnpairedSampler(
            mixtures, instrumentals, (instrumental_name,), self.read_seconds, SOURCE_RATE
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        def draw(rng: np.random.Generator) -> tuple:
            mix, sources, _ = self.sampler.sample(rng)
            channels = rng.integers(0, mix.shape[0], size=2)
            return self._fit(mix, int(channels[0])), self._fit(sources[0], int(channels[1]))

        return self._heard_pair(index, draw)


class SharedPieceClips(_Clips):
    """``(a (1, n_samples), c (1, n_samples))`` float32 at ``samplerate``: a mixture clip from an even block and an
    accompaniment clip from an odd block of independently drawn songs of ``root/split`` (each
    ``<track>/{mixture,accompaniment}.wav`` at 44.1 kHz)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train_realacc",
        block_seconds: float = 4.0,
        n_samples: int = 16320,
        samplerate: int = 20480,
        samples_per_epoch: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(n_samples, samplerate, samples_per_epoch, seed)
        folder = Path(root) / split
        if not folder.is_dir():
            raise DatasetError(folder, "no such folder (songs over real accompaniment: `shotoku dataset synth --real`)")
        self.block = int(round(block_seconds * SOURCE_RATE))
        self.read = int(np.ceil(self.read_seconds * SOURCE_RATE))
        if self.block < self.read:
            raise DatasetError(folder, f"block_seconds {block_seconds} is shorter than one clip")
        self.tracks: list[tuple[Path, Path, int]] = []
        for track in sorted(p for p in folder.iterdir() if p.is_dir()):
            mixture, accompaniment = track / "mixture.wav", track / "accompaniment.wav"
            if mixture.is_file() and accompaniment.is_file():
                frames = min(sf.info(str(mixture)).frames, sf.info(str(accompaniment)).frames)
                if frames >= 2 * self.block:
                    self.tracks.append((mixture, accompaniment, frames // self.block))
        if not self.tracks:
            raise DatasetError(folder, f"no song with mixture.wav and accompaniment.wav of at least {2 * block_seconds} s")

    def _clip(self, rng: np.random.Generator, parity: int) -> torch.Tensor:
        mixture, accompaniment, n_blocks = self.tracks[int(rng.integers(0, len(self.tracks)))]
        block = 2 * int(rng.integers(0, (n_blocks - parity + 1) // 2)) + parity
        start = block * self.block + int(rng.integers(0, self.block - self.read + 1))
        path = mixture if parity == 0 else accompaniment
        data, _ = sf.read(str(path), start=start, frames=self.read, dtype="float32", always_2d=True)
        return self._fit(data.T, int(rng.integers(0, data.shape[1])))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._heard_pair(index, lambda rng: (self._clip(rng, 0), self._clip(rng, 1)))


class PairedClips(_Clips):
    """``(mixture, vocals, accompaniment)``, each ``(1, n_samples)`` at ``samplerate``, from one paired song (or,
    with ``augment``, the corpus's remix of stems across songs); ``mixture == vocals + accompaniment`` before
    resampling."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        n_samples: int = 16320,
        samplerate: int = 20480,
        samples_per_epoch: int = 256,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(n_samples, samplerate, samples_per_epoch, seed)
        self.sampler = ChunkSampler(
            root, split, ("vocals", "drums", "bass", "other"), self.read_seconds, augment
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        def draw(rng: np.random.Generator) -> tuple:
            mixture, stems, _ = self.sampler.sample(rng)
            channel = int(rng.integers(0, mixture.shape[0]))
            vocals = self._fit(stems[0], channel)
            accompaniment = self._fit(stems[1:].sum(axis=0), channel)
            return (vocals + accompaniment, vocals, accompaniment), (vocals + accompaniment,)  # silent vocals are fair

        return self._until_heard(self._rng(index), draw)


def unpaired_clips(mixtures: str | Path, instrumentals: str | Path, **kwargs: object) -> UnpairedClips:
    """:class:`UnpairedClips` (keyword arguments as its constructor)."""
    return UnpairedClips(mixtures, instrumentals, **kwargs)  # type: ignore[arg-type]


def paired_clips(root: str | Path, split: str = "train", **kwargs: object) -> PairedClips:
    """:class:`PairedClips` (keyword arguments as its constructor)."""
    return PairedClips(root, split, **kwargs)  # type: ignore[arg-type]
