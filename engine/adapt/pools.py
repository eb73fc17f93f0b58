"""The user's library as training pools: songs scanned, passages found, decoded once into pool files.

:func:`build_pools` reads every song of the library (any format :func:`engine.audio.load_audio` opens), marks
its instrumental and mixture passages with a vocals detector (:mod:`engine.adapt.passages`) and writes

- ``mixtures.f16`` / ``instrumentals.f16``: the training pools S_A and S_C, float16 frames ``(n, n_channels)`` at
  the network's rate (20480 Hz for the semi-supervised model: 60 minutes of stereo are 0.3 GB), read by
  :class:`PoolClips`;
- ``heldout.f16``: instrument-only pieces kept out of training, at the model's rate (44.1 kHz), to score leakage
  before and after: pieces of the training songs' instrumental passages (every :data:`HOLD_OUT_EVERY` th piece of
  :data:`PIECE_SECONDS`) and the instrumental passages of whole songs kept out (every :data:`HOLD_OUT_EVERY` th
  song, once there are at least three);
- ``pools.json``: the index (which song, where, how long), written last through :mod:`engine.atomic`.

Songs of a ``--instrumentals`` folder join S_C whole (every :data:`HOLD_OUT_EVERY` th piece held out the same way).
Unreadable files are skipped with a note naming them; a full disk raises a :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch
from torch.utils.data import Dataset

from engine.adapt.passages import HOLD_SECONDS, THRESHOLD_DB, Passage, find_passages
from engine.atomic import atomic_write_json
from engine.errors import AudioLoadError, DatasetError, SeparationCancelled

#: Instrumental passages are cut into pieces this long; every HOLD_OUT_EVERY-th piece (and song) is held out.
PIECE_SECONDS = 10.0
HOLD_OUT_EVERY = 5
#: At most this many held-out pieces per group are kept (bounds the scoring time).
MAX_HELDOUT = 12
POOLS_FILE = "pools.json"
#: ``detector(mixture (n_channels, n_samples), samplerate) -> vocals`` like it.
Detector = Callable[[np.ndarray, int], np.ndarray]
Report = Callable[[float, str], None]


def library_files(folder: Path) -> list[Path]:
    """The audio files below ``folder`` (recursively, hidden ones left out), sorted; DatasetError if none."""
    from engine.audio import SUPPORTED_EXTENSIONS

    if not folder.is_dir():
        raise DatasetError(folder, "no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise DatasetError(folder, "holds no audio file (" + ", ".join(sorted(SUPPORTED_EXTENSIONS)) + ")")
    return files


def separator_detector(model: str, n_threads: int, cancel: threading.Event | None = None) -> Detector:
    """A detector from a vocals model of the catalogue (run by :class:`engine.separation.separator.Separator`)."""
    from engine.separation.separator import Separator

    separator = Separator(model, n_threads=n_threads)
    if "vocals" not in separator.sources:
        raise DatasetError(None, f"model {model!r} has no vocals stem: it cannot find the passages without singing")

    def detect(mixture: np.ndarray, samplerate: int) -> np.ndarray:
        return separator.separate(mixture, samplerate, stems=["vocals"], cancel=cancel)["vocals"]

    return detect


class _PoolWriter:
    """Appends float16 frames ``(n, n_channels)`` to one pool file and indexes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.index: list[dict[str, Any]] = []
        self.n_frames = 0

    def add(self, audio: np.ndarray, song: str, start_seconds: float) -> None:
        """Append ``audio`` ``(n_channels, n)``."""
        frames = np.ascontiguousarray(audio.T, dtype=np.float16)
        try:
            frames.tofile(self.file)
            self.file.flush()
        except OSError as err:
            full = err.errno in (errno.ENOSPC, errno.EDQUOT)
            raise DatasetError(self.path, "the disk is full" if full else f"cannot be written ({err})") from None
        self.index.append({"song": song, "start_seconds": round(start_seconds, 3), "offset": self.n_frames,
                           "n_frames": frames.shape[0]})
        self.n_frames += frames.shape[0]

    def close(self) -> None:
        self.file.close()


@dataclass
class PoolSummary:
    """What the scan found: minutes per pool, the songs, the files skipped (with why), the held-out songs."""

    songs: list[str] = field(default_factory=list)
    heldout_songs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    minutes: dict[str, float] = field(default_factory=dict)
    instrumental_files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"songs": self.songs, "heldout_songs": self.heldout_songs, "skipped": self.skipped,
                "minutes": self.minutes, "instrumental_files": self.instrumental_files}


def _to_rate(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return audio
    return np.ascontiguousarray(soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="HQ").T)


def _pieces(passage: Passage) -> list[tuple[int, int]]:
    n = int(PIECE_SECONDS * passage.samplerate)
    return [(a, min(a + n, passage.stop)) for a in range(passage.start, passage.stop, n)]


def build_pools(songs: Sequence[Path], instrumentals: Sequence[Path], out: Path, detector: Detector,
                samplerate: int, network_rate: int, min_samples: int, threshold_db: float = THRESHOLD_DB,
                report: Report | None = None, cancel: threading.Event | None = None) -> PoolSummary:
    """Scan the library into pool files in ``out`` (see the module docstring); returns what was found.

    Args:
        songs, instrumentals: the library's files (songs with singing; instrument-only recordings).
        detector: the vocals detector; ``samplerate`` the rate songs are read at (the model's), ``network_rate``
            the pools' rate, ``min_samples`` the shortest passage kept (one training clip, at ``network_rate``).
        report: ``(fraction, detail)`` after each file.

    Raises:
        DatasetError: no usable song, no singing found, no instrument-only audio found (and none given), a full
            disk. SeparationCancelled when ``cancel`` is set.
    """
    out.mkdir(parents=True, exist_ok=True)
    pools = {k: _PoolWriter(out / f"{k}.f16") for k in ("mixtures", "instrumentals", "heldout")}
    summary = PoolSummary()
    heldout_groups: dict[str, list[int]] = {"passages": [], "songs": []}
    min_seconds = min_samples / network_rate
    n_pieces = 0
    n_songs = len(songs)
    heldout_song = {i for i in range(n_songs) if n_songs >= 3 and i % HOLD_OUT_EVERY == 2}
    everything = [(p, "song") for p in songs] + [(p, "instrumental") for p in instrumentals]
    try:
        for number, (path, what) in enumerate(everything):
            if cancel is not None and cancel.is_set():
                raise SeparationCancelled("adaptation cancelled")
            try:
                from engine.audio import load_audio

                audio = load_audio(path, samplerate=samplerate, n_channels=2).samples
            except AudioLoadError as err:
                summary.skipped.append(str(err))
                continue
            name = str(path)
            if what == "song":
                passages = find_passages(audio, detector(audio, samplerate), samplerate, threshold_db, HOLD_SECONDS)
                held = number in heldout_song
                (summary.heldout_songs if held else summary.songs).append(name)
            else:
                passages = [Passage(0, audio.shape[-1], "instrumental", samplerate)]
                summary.instrumental_files.append(name)
                held = False
            for passage in passages:
                if passage.seconds < min_seconds:
                    continue
                if passage.kind == "mixture":
                    if not held:
                        low = _to_rate(audio[:, passage.start : passage.stop], samplerate, network_rate)
                        pools["mixtures"].add(low, name, passage.start / samplerate)
                    continue
                for a, b in _pieces(passage):
                    piece = audio[:, a:b]
                    if held or (n_pieces % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 and (b - a) >= samplerate):
                        group = "songs" if held else "passages"
                        if len(heldout_groups[group]) < MAX_HELDOUT:
                            heldout_groups[group].append(len(pools["heldout"].index))
                            pools["heldout"].add(piece, name, a / samplerate)
                    elif (b - a) / samplerate >= min_seconds:
                        pools["instrumentals"].add(_to_rate(piece, samplerate, network_rate), name, a / samplerate)
                    if not held:
                        n_pieces += 1
            if report is not None:
                report((number + 1) / len(everything), path.name)
    finally:
        for pool in pools.values():
            pool.close()
    for key, pool in pools.items():
        rate = samplerate if key == "heldout" else network_rate
        summary.minutes[key] = round(pool.n_frames / rate / 60, 2)
    if not summary.songs and not summary.heldout_songs:
        reasons = "; ".join(summary.skipped[:3])
        raise DatasetError(None, f"none of the {len(songs)} song file(s) could be read" + (f": {reasons}"
                                                                                            if reasons else ""))
    if not pools["mixtures"].index:
        raise DatasetError(None, f"no singing found in the {len(songs)} song(s) (the vocals model heard no voice "
                                 f"above {threshold_db:g} dB): adapting needs songs with vocals; instrument-only "
                                 "recordings go in the instrumentals folder")
    if not pools["instrumentals"].index:
        raise DatasetError(None, f"no passage without singing (held for {HOLD_SECONDS:g} s) was found in the "
                                 f"{len(songs)} song(s): give a folder of instrument-only recordings "
                                 "(instrumental versions, backing tracks) as well")
    atomic_write_json(out / POOLS_FILE, {
        "format": "shotoku-adapt-pools/1", "samplerate": samplerate, "network_rate": network_rate, "n_channels": 2,
        "threshold_db": threshold_db, "summary": summary.to_json(), "heldout_groups": heldout_groups,
        **{key: pool.index for key, pool in pools.items()},
    })
    return summary


def read_pools(folder: Path) -> dict[str, Any]:
    """The index of a pool folder (``pools.json``); DatasetError when it is missing or damaged."""
    import json

    try:
        return json.loads((folder / POOLS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DatasetError(folder / POOLS_FILE, f"the passages found are not readable ({err}); start afresh") from None


def pool_array(folder: Path, key: str, index: dict[str, Any]) -> np.ndarray:
    """Pool ``key`` memory-mapped: float16 ``(n_frames, n_channels)`` (empty when it holds nothing)."""
    n = sum(item["n_frames"] for item in index[key])
    if n == 0:
        return np.zeros((0, index["n_channels"]), dtype=np.float16)
    return np.memmap(folder / f"{key}.f16", dtype=np.float16, mode="r", shape=(n, index["n_channels"]))


def heldout_pieces(folder: Path, group: str) -> list[tuple[str, np.ndarray]]:
    """The held-out pieces of ``group`` (``"passages"``: of the training songs, ``"songs"``: of the songs kept
    out): ``(label, audio (n_channels, n) float32 at the model's rate)``."""
    index = read_pools(folder)
    array = pool_array(folder, "heldout", index)
    out = []
    for k in index["heldout_groups"][group]:
        item = index["heldout"][k]
        audio = np.ascontiguousarray(array[item["offset"] : item["offset"] + item["n_frames"]].T, dtype=np.float32)
        out.append((f"{Path(item['song']).name} @ {item['start_seconds']:.0f} s", audio))
    return out


class PoolClips(Dataset):
    """``(a (1, n_samples), c (1, n_samples))`` float32: a clip of the mixture pool and an independent clip of the
    instrument-only pool, one channel each, at the pools' network rate (what the ``semisup`` objective's step
    takes, like :class:`engine.data.unpaired_pairs.UnpairedClips`). Item ``i`` of epoch ``e`` is a pure function of
    ``(seed, e, i)``; passages are drawn in proportion to their length."""

    def __init__(self, folder: Path, n_samples: int, samples_per_epoch: int, seed: int = 0) -> None:
        index = read_pools(folder)
        self.n_samples = int(n_samples)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self.arrays = {key: pool_array(folder, key, index) for key in ("mixtures", "instrumentals")}
        self.spans = {key: [(i["offset"], i["n_frames"]) for i in index[key] if i["n_frames"] >= self.n_samples]
                      for key in self.arrays}
        for key, spans in self.spans.items():
            if not spans:
                raise DatasetError(folder, f"the {key} pool has no passage of {self.n_samples} samples")
        self.weights = {k: np.array([n for _, n in s], dtype=np.float64) / sum(n for _, n in s)
                        for k, s in self.spans.items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _clip(self, key: str, rng: np.random.Generator) -> torch.Tensor:
        offset, n = self.spans[key][int(rng.choice(len(self.spans[key]), p=self.weights[key]))]
        start = offset + int(rng.integers(0, n - self.n_samples + 1))
        channel = int(rng.integers(0, self.arrays[key].shape[1]))
        clip = np.asarray(self.arrays[key][start : start + self.n_samples, channel], dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(clip))[None]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return self._clip("mixtures", rng), self._clip("instrumentals", rng)
