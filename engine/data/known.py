"""Training chunks where only some stems are known: songs over real accompaniment beside ordinary tracks.

A real-accompaniment track (``<split>/<track>/{mixture,vocals,accompaniment}.wav`` + ``track.json`` with
``"known": ["vocals", "accompaniment"]``) knows its vocals and the sum of the other stems, not drums, bass and
other one by one. An ordinary track (four stems, no ``track.json`` or one without ``known``) knows all four and
therefore the accompaniment (drums + bass + other). The sources a trainer may ask for are the four stems and
``"accompaniment"``; each item carries a boolean mask of which requested sources are known, and unknown sources
are zeros, so the loss goes on what is known (e.g. vocals, and drums + bass + other estimates against the
accompaniment)::

    ds = KnownStemsDataset(root, ("train", "train_realacc"), sources=("vocals", "drums", "bass", "other"))
    mixture, stems, known = ds[i]  # (n_channels, n), (n_sources, n_channels, n), (n_sources,) bool
    # mixture == vocals + accompaniment exactly, where accompaniment = mixture - vocals is always known

``MusdbDataset`` keeps serving ordinary tracks unchanged (it skips real-accompaniment tracks as incomplete).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.augment import augment_stems
from engine.data.musdb import ALL_STEMS, Track, _validate_folder
from engine.errors import DatasetError

log = logging.getLogger("shotoku.data")

KNOWN_SOURCES = ALL_STEMS + ("accompaniment",)
TRACK_META = "track.json"


@dataclass
class KnownTrack:
    """A validated track and the stems it knows (``accompaniment`` is known whenever drums, bass, other are)."""

    track: Track
    known: tuple[str, ...]

    @property
    def real(self) -> bool:
        return "drums" not in self.known

    def read(self, source: str, start: int, n: int) -> np.ndarray:
        """One known source ``(n_channels, n)`` (the accompaniment of an ordinary track is its three stems' sum)."""
        if source == "accompaniment" and not self.real:
            return sum(self.track.read(s, start, n) for s in ("drums", "bass", "other"))  # type: ignore[return-value]
        return self.track.read(source, start, n)


def track_known(folder: Path) -> tuple[str, ...]:
    """The stems ``folder`` knows, from its ``track.json`` (all four stems and the accompaniment if absent)."""
    meta = folder / TRACK_META
    if meta.is_file():
        try:
            known = json.loads(meta.read_text()).get("known")
        except ValueError as err:
            raise DatasetError(meta, f"unreadable track metadata ({err})") from err
        if known:
            bad = set(known) - set(KNOWN_SOURCES)
            if bad:
                raise DatasetError(meta, f"unknown stem name(s) {sorted(bad)} in 'known'")
            return tuple(known)
    return KNOWN_SOURCES


def scan_known(root: str | Path, split: str) -> list[KnownTrack]:
    """The valid tracks of ``root/split`` of either kind, sorted by name (bad ones logged and skipped)."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(folder, "no such split folder")
    out = []
    for entry in sorted(p for p in folder.iterdir() if p.is_dir()):
        known = track_known(entry)
        files = tuple(k for k in known if k in ALL_STEMS or k == "accompaniment" and "drums" not in known)
        track = _validate_folder(entry, files, ())
        if track is not None:
            out.append(KnownTrack(track, known))
    if not out:
        raise DatasetError(folder, "no usable track (see the warnings)")
    return out


class KnownSampler:
    """Random chunks with a known-mask: ``sample(rng) -> (mixture, stems, known)`` (numpy).

    ``augment``: the vocals come from one random track and the accompaniment either from a random
    real-accompaniment track (drums/bass/other unknown) or as drums, bass and other from independently drawn
    ordinary tracks (all known), with the per-stem gain and channel swap of :func:`augment_stems`; the mixture is
    the float32 sum of the parts. Without: one track, one offset, its own mixture file.
    """

    def __init__(self, root: str | Path, splits: Sequence[str], sources: Sequence[str] = ALL_STEMS,
                 segment_seconds: float = 6.0, augment: bool = True) -> None:
        self.sources = list(sources)
        bad = set(self.sources) - set(KNOWN_SOURCES)
        if bad:
            raise DatasetError(None, f"unknown source(s) {sorted(bad)}; known: {list(KNOWN_SOURCES)}")
        self.tracks = [t for split in splits for t in scan_known(root, split)]
        self.ordinary = [t for t in self.tracks if not t.real]
        self.real = [t for t in self.tracks if t.real]
        self.samplerate = self.tracks[0].track.samplerate
        self.n_samples = int(round(segment_seconds * self.samplerate))
        self.augment = augment

    def _offset(self, t: KnownTrack, rng: np.random.Generator) -> int:
        return int(rng.integers(0, max(t.track.n_samples - self.n_samples, 0) + 1))

    def _pick(self, pool: list[KnownTrack], rng: np.random.Generator) -> KnownTrack:
        return pool[int(rng.integers(0, len(pool)))]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """mixture ``(n_channels, n)``, stems ``(n_sources, n_channels, n)`` (zeros where unknown), known ``(n_sources,)``."""
        n = self.n_samples
        if self.augment:
            t = self._pick(self.tracks, rng)
            v = self._pick(self.tracks, rng)
            vocals = v.read("vocals", self._offset(v, rng), n)
            if t.real:
                parts = {"vocals": vocals, "accompaniment": t.read("accompaniment", self._offset(t, rng), n)}
            else:
                parts = {"vocals": vocals}
                for s in ("drums", "bass", "other"):
                    o = self._pick(self.ordinary, rng)
                    parts[s] = o.read(s, self._offset(o, rng), n)
            names = list(parts)
            stack = augment_stems(np.stack([parts[k] for k in names]), rng)
            parts = dict(zip(names, stack, strict=True))
            mixture = np.zeros_like(stack[0])
            for k in names:  # a fixed order: vocals first, then accompaniment or drums, bass, other
                mixture += parts[k]
            known_set = set(names) | ({"accompaniment"} if not t.real else set())
            if not t.real:
                parts["accompaniment"] = parts["drums"] + parts["bass"] + parts["other"]
        else:
            t = self._pick(self.tracks, rng)
            start = self._offset(t, rng)
            known_set = set(t.known)
            parts = {k: t.read(k, start, n) for k in self.sources if k in known_set}
            has_mix = "mixture" in t.track.files
            if has_mix:
                mixture = t.track.read("mixture", start, n)
            else:
                mixture = t.read("vocals", start, n) + t.read("accompaniment", start, n)
        zeros = np.zeros((mixture.shape[0], n), dtype=np.float32)
        stems = np.stack([parts.get(k, zeros) if k in known_set else zeros for k in self.sources])
        known = np.array([k in known_set for k in self.sources], dtype=bool)
        return mixture.astype(np.float32), stems.astype(np.float32), known


def _dataset_base() -> type:
    import torch.utils.data

    return torch.utils.data.Dataset


class KnownStemsDataset(_dataset_base()):  # type: ignore[misc]
    """A torch ``Dataset`` over :class:`KnownSampler`: ``ds[i] -> (mixture, stems, known)`` tensors (float32,
    float32, bool); item ``i`` is a pure function of ``(seed, epoch, i)``."""

    def __init__(self, root: str | Path, splits: Sequence[str], sources: Sequence[str] = ALL_STEMS,
                 segment_seconds: float = 6.0, samples_per_epoch: int | None = None, augment: bool = True,
                 seed: int = 0) -> None:
        self.sampler = KnownSampler(root, splits, sources, segment_seconds, augment)
        self.sources = list(sources)
        self.samplerate = self.sampler.samplerate
        self.samples_per_epoch = samples_per_epoch or len(self.sampler.tracks)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different chunks for each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int):  # noqa: ANN204 (tuple of torch tensors)
        import torch

        if not 0 <= index < len(self):
            raise IndexError(index)
        mixture, stems, known = self.sampler.sample(np.random.default_rng([self.seed, self.epoch, index]))
        return torch.from_numpy(mixture), torch.from_numpy(stems), torch.from_numpy(known)


def iter_known_tracks(root: str | Path, split: str, sources: Sequence[str] = ("vocals", "accompaniment")
                      ) -> Iterator[tuple[str, np.ndarray, dict[str, np.ndarray | None], int]]:
    """Whole tracks in name order: ``(name, mixture, {source: stem or None if unknown}, samplerate)``."""
    for t in scan_known(root, split):
        n = t.track.n_samples
        stems = {k: (t.read(k, 0, n) if k in t.known else None) for k in sources}
        mixture = t.track.read("mixture", 0, n) if "mixture" in t.track.files else \
            t.read("vocals", 0, n) + t.read("accompaniment", 0, n)
        yield t.track.name, mixture, stems, t.track.samplerate
