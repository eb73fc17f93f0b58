"""Excerpts of real instrumental pieces of one split, drawn deterministically from a fetched folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.data.real.fetch import load_manifest
from engine.data.real.sources import refuse_reserved
from engine.data.real.splits import SPLIT_NAMES
from engine.errors import DatasetError

#: Skip this much at both ends of a piece (intros that fade in, reverb tails).
EDGE_SECONDS = 2.0


@dataclass(frozen=True)
class Piece:
    """One real piece in a pool: manifest name, package, licence, file, length."""

    name: str
    package: str
    licence: str
    file: Path
    n_samples: int
    split: str
    title: str = ""
    artist: str = ""


class RealPool:
    """The pieces of one split of a fetched real-audio folder (sorted by name)."""

    def __init__(self, real_dir: str | Path, split: str) -> None:
        if split not in SPLIT_NAMES:
            raise DatasetError(None, f"unknown real split {split!r}; known: {', '.join(SPLIT_NAMES)}")
        self.real_dir = Path(real_dir)
        manifest = load_manifest(self.real_dir)
        self.split = split
        self.pieces = []
        for p in manifest["pieces"]:
            if p["split"] != split:
                continue
            refuse_reserved(p["package"])
            self.pieces.append(Piece(p["name"], p["package"], p["licence"], self.real_dir / p["file"],
                                     int(p["n_samples"]), split, p.get("title", ""), p.get("artist", "")))
        self.pieces.sort(key=lambda p: p.name)
        if not self.pieces:
            raise DatasetError(self.real_dir, f"the real-audio manifest has no piece in split {split!r}")

    def __len__(self) -> int:
        return len(self.pieces)

    def read(self, piece: Piece, start: int, n_samples: int) -> np.ndarray:
        """Samples ``[start, start + n)`` of ``piece``: float32 ``(2, n)`` (zero-padded past its end)."""
        data, _ = sf.read(str(piece.file), start=start, frames=n_samples, dtype="float32", always_2d=True)
        x = data.T
        if x.shape[0] == 1:
            x = np.repeat(x, 2, axis=0)
        if x.shape[1] < n_samples:
            x = np.pad(x, ((0, 0), (0, n_samples - x.shape[1])))
        return np.ascontiguousarray(x[:2], dtype=np.float32)

    def excerpt(self, rng: np.random.Generator, n_samples: int, samplerate: int = 44100,
                tries: int = 6) -> tuple[np.ndarray, dict]:
        """A random excerpt of a random piece: ``((2, n) float32, where)``; near-silent excerpts are redrawn."""
        edge = int(EDGE_SECONDS * samplerate)
        best: tuple[float, np.ndarray, dict] | None = None
        for _ in range(tries):
            piece = self.pieces[int(rng.integers(0, len(self.pieces)))]
            hi = max(piece.n_samples - n_samples - edge, edge)
            start = int(rng.integers(min(edge, hi), hi + 1))
            x = self.read(piece, start, n_samples)
            level = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
            where = {"piece": piece.name, "package": piece.package, "licence": piece.licence, "split": piece.split,
                     "start_seconds": round(start / samplerate, 3), "title": piece.title, "artist": piece.artist}
            if best is None or level > best[0]:
                best = (level, x, where)
            if level > 10 ** (-40 / 20):
                return x, where
        assert best is not None
        return best[1], best[2]
