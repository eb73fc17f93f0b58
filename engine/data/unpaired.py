"""Unpaired data for semi-/unsupervised separation: mixtures from one pool, isolated sources from another.

``--mixtures DIR``: every audio file below DIR is a mixture (e.g. the synthetic ``unpaired/mixtures``).
``--sources DIR``: every audio file below DIR is an isolated source named by its file name without suffix
(``vocals.wav``, ``instrumental.flac``, ``drums.wav``, ...), e.g. the synthetic ``unpaired/vocals`` and
``unpaired/instrumental`` pools under ``unpaired/``. Chunks of mixtures and of each source are drawn independently,
so a mixture never comes with its own sources.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.data.musdb import AUDIO_SUFFIXES, SILENCE_PEAK, _peak
from engine.errors import DatasetError

log = logging.getLogger("shotoku.data")


def _audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(folder, "no such folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _usable(path: Path, samplerate: int, min_samples: int) -> bool:
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        log.warning("%s: unreadable (%s); skipped", path, err)
        return False
    if info.samplerate != samplerate:
        log.warning("%s: %d Hz, expected %d Hz; skipped", path, info.samplerate, samplerate)
        return False
    if info.frames < min_samples:
        log.warning("%s: shorter (%d samples) than one chunk; skipped", path, info.frames)
        return False
    if _peak(path) < SILENCE_PEAK:
        log.warning("%s: silent; skipped", path)
        return False
    return True


def _read_chunk(path: Path, n: int, rng: np.random.Generator) -> np.ndarray:
    n_frames = sf.info(str(path)).frames
    start = int(rng.integers(0, max(n_frames - n, 0) + 1))
    data, _ = sf.read(str(path), start=start, frames=n, dtype="float32", always_2d=True)
    x = data.T
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    return np.ascontiguousarray(x[:2])


class UnpairedSampler:
    """Independent random chunks: ``sample(rng) -> (mixture (2, n), sources (n_sources, 2, n), names)``."""

    def __init__(self, mixtures: str | Path, sources: str | Path, source_names: Sequence[str] = ("vocals",
                 "instrumental"), segment_seconds: float = 6.0, samplerate: int = 44100) -> None:
        self.n_samples = int(round(segment_seconds * samplerate))
        self.samplerate = samplerate
        self.mixtures = [p for p in _audio_files(Path(mixtures)) if _usable(p, samplerate, self.n_samples)]
        if not self.mixtures:
            raise DatasetError(mixtures, "no usable mixture file")
        by_name: dict[str, list[Path]] = {}
        for p in _audio_files(Path(sources)):
            by_name.setdefault(p.stem, []).append(p)
        self.source_names = list(source_names)
        self.sources: dict[str, list[Path]] = {}
        for name in self.source_names:
            usable = [p for p in by_name.get(name, []) if _usable(p, samplerate, self.n_samples)]
            if not usable:
                raise DatasetError(sources, f"no usable {name!r} file (looked for {name}.wav/.flac below it)")
            self.sources[name] = usable
        overlap = {p.resolve() for p in self.mixtures} & {p.resolve() for v in self.sources.values() for p in v}
        if overlap:
            raise DatasetError(sorted(overlap)[0], "file is in both the mixture and the source pool")

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A mixture chunk and one chunk of each source, all from independently drawn files."""
        mix = _read_chunk(self.mixtures[int(rng.integers(0, len(self.mixtures)))], self.n_samples, rng)
        srcs = []
        for name in self.source_names:
            pool = self.sources[name]
            srcs.append(_read_chunk(pool[int(rng.integers(0, len(pool)))], self.n_samples, rng))
        return mix, np.stack(srcs), list(self.source_names)


def unpaired_dataset(mixtures: str | Path, sources: str | Path, source_names: Sequence[str] = ("vocals",
                     "instrumental"), segment_seconds: float = 6.0, samples_per_epoch: int = 1000, seed: int = 0):  # noqa: ANN201
    """A torch ``Dataset`` over :class:`UnpairedSampler`: item ``i`` is ``(mixture, sources)`` float32 tensors,
    a pure function of ``(seed, i)``."""
    import torch
    import torch.utils.data

    sampler = UnpairedSampler(mixtures, sources, source_names, segment_seconds)

    class UnpairedDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return samples_per_epoch

        def __getitem__(self, index: int):  # noqa: ANN204
            if not 0 <= index < samples_per_epoch:
                raise IndexError(index)
            mix, srcs, _ = sampler.sample(np.random.default_rng([seed, index]))
            return torch.from_numpy(mix), torch.from_numpy(srcs)

    ds = UnpairedDataset()
    ds.sampler = sampler  # type: ignore[attr-defined]
    return ds
