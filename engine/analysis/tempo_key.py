"""Tempo and key of a song: librosa's beat tracker for the BPM, chroma against key profiles for the key.

The BPM is librosa's (``librosa.feature.tempo`` over the onset strength envelope). librosa has no key estimator,
so the key is the classic Krumhansl-Schmuckler procedure written out here (a dozen lines): the song's mean
chroma (``librosa.feature.chroma_cqt`` on the harmonic part) correlated with the 24 rotations of the
Krumhansl-Kessler major and minor profiles; the best correlation names the key, and the margin over the
runner-up is the confidence. Results are cached as JSON beside the stem store (``cache_dir()/analysis``), keyed by
a hash of the samples, so a song opened again shows its tempo and key at once.

Audio is ``(n_channels, n_samples)`` float32; analysis runs on a mono downmix at 22050 Hz, at most
:data:`MAX_SECONDS` from the middle of the song.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.analysis import jit_cache
from engine.atomic import atomic_write_text
from engine.errors import SeparationCancelled
from engine.paths import cache_dir

log = logging.getLogger(__name__)

#: Bumped when the analysis changes, so old cached results are recomputed.
ANALYSIS_VERSION = 1
#: Rate the analysis runs at.
ANALYSIS_RATE = 22050
#: The longest excerpt analysed (seconds, from the middle of the song).
MAX_SECONDS = 120.0
#: The shortest input analysed (seconds): below it there are too few beats for a tempo, and the chroma's lowest
#: octave (C1, analysed 64x downsampled with a 1024-point window) would be shorter than its window.
MIN_SECONDS = 4.0

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
#: Krumhansl-Kessler probe-tone profiles (Krumhansl 1990), tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class SongAnalysis:
    """What the analysis found: ``bpm`` (beats per minute as recorded), the key's ``tonic`` (one of
    :data:`PITCH_CLASSES`) and ``mode`` ("major"/"minor"), and ``key_confidence`` (0..1, the correlation margin)."""

    bpm: float
    tonic: str
    mode: str
    key_confidence: float

    def key(self, semitones: float = 0.0) -> str:
        """The key name, transposed by ``semitones`` (rounded to the nearest semitone): "A minor"."""
        return f"{transpose_key(self.tonic, semitones)} {self.mode}"

    def bpm_at(self, tempo: float) -> float:
        """The BPM heard at playback speed ``tempo`` (a ratio)."""
        return self.bpm * float(tempo)

    def to_json(self) -> dict:
        return {"version": ANALYSIS_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> SongAnalysis:
        if data.get("version") != ANALYSIS_VERSION:
            raise ValueError("another analysis version")
        tonic, mode = str(data["tonic"]), str(data["mode"])
        if tonic not in PITCH_CLASSES or mode not in ("major", "minor"):
            raise ValueError(f"unknown key {tonic} {mode}")
        return cls(float(data["bpm"]), tonic, mode, float(data["key_confidence"]))


def transpose_key(tonic: str, semitones: float) -> str:
    """``tonic`` moved by ``semitones`` (rounded): ``transpose_key("A", 3) == "C"``."""
    index = PITCH_CLASSES.index(tonic)
    return PITCH_CLASSES[(index + int(round(semitones))) % 12]


def _mono(samples: np.ndarray, samplerate: int) -> np.ndarray:
    """Mono float32 at :data:`ANALYSIS_RATE`, at most :data:`MAX_SECONDS` from the middle."""
    import soxr

    mono = np.asarray(samples, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    longest = int(MAX_SECONDS * samplerate)
    if mono.shape[0] > longest:
        start = (mono.shape[0] - longest) // 2
        mono = mono[start:start + longest]
    if samplerate != ANALYSIS_RATE:
        mono = soxr.resample(mono, samplerate, ANALYSIS_RATE)
    return np.ascontiguousarray(mono, dtype=np.float32)


def detect_key(chroma: np.ndarray) -> tuple[str, str, float]:
    """Key of a chroma ``(12, n_frames)`` (C first): ``(tonic, mode, confidence)`` by Krumhansl-Schmuckler."""
    profile = np.asarray(chroma, dtype=np.float64).mean(axis=1)
    scores = []
    for mode, template in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            rotated = np.roll(template, tonic)  # the profile with its tonic on pitch class ``tonic``
            r = np.corrcoef(profile, rotated)[0, 1] if profile.std() > 0 else 0.0
            scores.append((float(np.nan_to_num(r)), PITCH_CLASSES[tonic], mode))
    scores.sort(reverse=True)
    best, second = scores[0], scores[1]
    return best[1], best[2], float(np.clip(best[0] - second[0], 0.0, 1.0))


def analyse(samples: np.ndarray, samplerate: int, cancel: threading.Event | None = None) -> SongAnalysis:
    """BPM and key of ``samples`` ``(n_channels, n_samples)`` (a few seconds of CPU for a whole song; the first
    analysis of a process also compiles librosa's kernels, one process at a time: :mod:`engine.analysis.jit_cache`)."""

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise SeparationCancelled()

    y = _mono(samples, samplerate)
    check()
    if y.size < MIN_SECONDS * ANALYSIS_RATE or not np.any(y):  # unknown: shown as "— BPM"
        return SongAnalysis(0.0, "C", "major", 0.0)
    librosa = jit_cache.import_librosa()
    with jit_cache.compiling(cancel):
        return _bpm_and_key(librosa, y, check)


def _bpm_and_key(librosa, y: np.ndarray, check) -> SongAnalysis:
    """:func:`analyse`'s librosa part on the mono excerpt ``y`` ``(n_samples,)`` at :data:`ANALYSIS_RATE`."""
    onset = librosa.onset.onset_strength(y=y, sr=ANALYSIS_RATE)
    bpm = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=ANALYSIS_RATE))[0])
    check()
    harmonic = librosa.effects.harmonic(y)
    check()
    chroma = librosa.feature.chroma_cqt(y=harmonic, sr=ANALYSIS_RATE)
    tonic, mode, confidence = detect_key(chroma)
    return SongAnalysis(round(bpm, 1), tonic, mode, round(confidence, 3))


def analysis_cache_dir() -> Path:
    """Where analyses are cached: beside the stem store, ``cache_dir()/analysis``."""
    return cache_dir() / "analysis"


def _key(samples: np.ndarray, samplerate: int) -> str:
    digest = hashlib.sha256(f"shotoku-analysis-v{ANALYSIS_VERSION}|{samplerate}|{samples.shape}|".encode())
    data = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1).view(np.uint8)
    for offset in range(0, data.size, 1 << 22):
        digest.update(data[offset:offset + (1 << 22)].data)
    return digest.hexdigest()[:40]


def analyse_cached(samples: np.ndarray, samplerate: int, root: Path | None = None,
                   cancel: threading.Event | None = None) -> SongAnalysis:
    """:func:`analyse`, from the cache in ``root`` (default :func:`analysis_cache_dir`) when this song was
    analysed before; a fresh result is written there atomically (a cache that cannot be written is skipped)."""
    folder = Path(root) if root is not None else analysis_cache_dir()
    path = folder / f"{_key(samples, samplerate)}.json"
    try:
        return SongAnalysis.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.info("analysis cache %s unreadable (%s): analysing again", path, err)
    result = analyse(samples, samplerate, cancel)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(result.to_json()))
    except OSError as err:
        log.info("analysis cache not written (%s)", err)
    return result
