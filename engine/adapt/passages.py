"""Passages with and without singing, found by a vocals model: the instrument-only pool and the mixture pool.

The paper we adapt with (Michelashvili, Benaim & Wolf, papers/001) notes that passages without singing are easy
to find; here a vocals model (the default separator) marks them. Per frame of :data:`FRAME_SECONDS`:

- the mixture's level ``10 log10(mean x^2)`` (dBFS); below :data:`SILENCE_DBFS` the frame is silence and belongs to
  no pool;
- the *vocal ratio* ``10 log10(sum v^2 / sum x^2)`` of the model's vocals ``v`` to the mixture ``x`` (dB); below
  ``threshold_db`` the frame has no voice.

A run of no-voice frames held for at least :data:`HOLD_SECONDS` (a breath or a rest between two lines is not an
instrumental passage) and shrunk by :data:`EDGE_SECONDS` at both ends (a voice fading in or out) is an
**instrumental** passage; every other stretch of sound at least :data:`MIN_MIXTURE_SECONDS` long that holds a
voiced frame is a **mixture** passage. :func:`measure_threshold` measures the threshold on songs with known vocals
(``bench/adapt.py --threshold``); :data:`THRESHOLD_DB` records the measurement.

Hand-written: a frame energy ratio and run-length rules are a few lines of numpy; voice-activity libraries
(webrtcvad, silero) detect speech in clean recordings, not singing under a band, and would add a dependency for a
worse answer than the separator already gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Frame length of the analysis (seconds).
FRAME_SECONDS = 0.25
#: Frames whose vocals are this far below the mixture (dB) have no voice. Measured with ``bench/adapt.py --threshold
#: --tracks 20 --seconds 60`` (the default vocals model, openunmix, on the 20 tracks of the synthetic ``valid``
#: split, 60 s each; truth: a frame whose true vocals are 30 dB or more below the mixture; judged on the frames of the
#: instrumental passages found with the 4 s hold): precision 1.000 / 0.981 / 0.992 / 0.994 / 0.890 at -24 / -22 /
#: -18 / -16 / -14 dB, recall 0.03 / 0.12 / 0.29 / 0.34 / 0.38. The most inclusive threshold with precision >= 0.98
#: is -16 dB; -14 dB falls to 0.89, so we keep 2 dB inside that edge.
THRESHOLD_DB = -18.0
#: What that measurement gave at THRESHOLD_DB (of the frames called "no voice", the share that truly has none).
THRESHOLD_MEASUREMENT = "precision 0.992, recall 0.29 (openunmix, 20 synthetic valid tracks, 4 s hold)"
#: A no-voice run must last this long to be an instrumental passage (seconds).
HOLD_SECONDS = 4.0
#: Seconds cut from both ends of an instrumental passage (the voice fading in or out).
EDGE_SECONDS = 0.5
#: The shortest mixture passage kept (seconds; about one training clip of the semi-supervised network).
MIN_MIXTURE_SECONDS = 1.0
#: Frames quieter than this (dBFS) are silence: in no pool.
SILENCE_DBFS = -50.0
#: A frame truly has no voice when its true vocals are this far below the mixture (dB; threshold measurement).
TRUE_SILENT_VOICE_DB = -30.0
_EPS = 1e-12


@dataclass(frozen=True)
class Passage:
    """``[start, stop)`` in samples of a song at ``samplerate``; ``kind`` ``"instrumental"`` or ``"mixture"``."""

    start: int
    stop: int
    kind: str
    samplerate: int

    @property
    def seconds(self) -> float:
        return (self.stop - self.start) / self.samplerate


def frame_levels(mixture: np.ndarray, vocals: np.ndarray, samplerate: int,
                 frame_seconds: float = FRAME_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the mixture's level (dBFS) and the vocal ratio (dB), both ``(n_frames,)``.

    Args:
        mixture, vocals: ``(n_channels, n_samples)`` at ``samplerate`` (the last partial frame is dropped).
    """
    n = max(1, int(round(frame_seconds * samplerate)))
    n_frames = mixture.shape[-1] // n
    if n_frames == 0:
        return np.zeros(0), np.zeros(0)

    def energy(x: np.ndarray) -> np.ndarray:
        cut = np.asarray(x[:, : n_frames * n], dtype=np.float64)
        return np.square(cut).reshape(cut.shape[0], n_frames, n).sum(axis=(0, 2))

    mix_energy = energy(mixture)
    level = 10 * np.log10(mix_energy / (n * mixture.shape[0]) + _EPS)
    ratio = 10 * np.log10((energy(vocals) + _EPS) / (mix_energy + _EPS))
    return level, ratio


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` frame runs where ``mask`` is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def find_passages(mixture: np.ndarray, vocals: np.ndarray, samplerate: int, threshold_db: float = THRESHOLD_DB,
                  hold_seconds: float = HOLD_SECONDS) -> list[Passage]:
    """The song's instrumental and mixture passages, in time order (see the module docstring).

    Args:
        mixture: the song ``(n_channels, n_samples)`` at ``samplerate``.
        vocals: the vocals model's estimate, same shape.
    """
    level, ratio = frame_levels(mixture, vocals, samplerate)
    n = max(1, int(round(FRAME_SECONDS * samplerate)))
    sound = level >= SILENCE_DBFS
    no_voice = sound & (ratio < threshold_db)
    hold, edge = int(np.ceil(hold_seconds / FRAME_SECONDS)), int(round(EDGE_SECONDS / FRAME_SECONDS))
    instrumental = np.zeros_like(sound)
    passages = []
    for a, b in _runs(no_voice):
        if b - a >= hold and b - a - 2 * edge > 0:
            instrumental[a + edge : b - edge] = True
            passages.append(Passage((a + edge) * n, (b - edge) * n, "instrumental", samplerate))
    min_frames = int(np.ceil(MIN_MIXTURE_SECONDS / FRAME_SECONDS))
    for a, b in _runs(sound & ~instrumental):
        if b - a >= min_frames and not no_voice[a:b].all():
            passages.append(Passage(a * n, b * n, "mixture", samplerate))
    return sorted(passages, key=lambda p: p.start)


@dataclass(frozen=True)
class ThresholdPoint:
    """One candidate threshold, judged on the frames of the instrumental passages :func:`find_passages` finds
    with it (the hold and edge rules included): ``precision``, the share of those frames truly without a voice;
    ``recall``, the share of the sounding frames without a true voice that they cover; ``minutes`` found."""

    threshold_db: float
    precision: float
    recall: float
    minutes: float


def measure_threshold(tracks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
                      candidates: Sequence[float] = tuple(range(-40, -4, 2)),
                      min_precision: float = 0.98,
                      hold_seconds: float = HOLD_SECONDS) -> tuple[float, list[ThresholdPoint]]:
    """Choose the no-voice threshold on songs with known vocals: the highest (most inclusive) candidate whose
    instrumental passages have a precision of at least ``min_precision``.

    A voice frame in the instrumental pool teaches the network that singing is accompaniment, so precision is
    what must hold; recall only decides how many minutes are found.

    Args:
        tracks: ``(mixture, estimated vocals, true vocals, samplerate)``, each ``(n_channels, n_samples)``.

    Returns:
        ``(threshold_db, points)``: the choice (the lowest candidate when none reaches ``min_precision``) and the
        precision/recall of every candidate.
    """
    points = []
    for threshold in candidates:
        hits = called = truly = 0
        for mixture, estimate, reference, rate in tracks:
            n = max(1, int(round(FRAME_SECONDS * rate)))
            level, true_ratio = frame_levels(mixture, reference, rate)
            silent = (level >= SILENCE_DBFS) & (true_ratio < TRUE_SILENT_VOICE_DB)
            found = np.zeros_like(silent)
            for p in find_passages(mixture, estimate, rate, threshold, hold_seconds):
                if p.kind == "instrumental":
                    found[p.start // n : p.stop // n] = True
            hits += int((found & silent).sum())
            called += int(found.sum())
            truly += int(silent.sum())
        points.append(ThresholdPoint(float(threshold), hits / called if called else 1.0, hits / max(1, truly),
                                     called * FRAME_SECONDS / 60))
    good = [p for p in points if p.precision >= min_precision and p.minutes > 0]
    chosen = max(good, key=lambda p: p.threshold_db) if good else points[0]
    return chosen.threshold_db, points
