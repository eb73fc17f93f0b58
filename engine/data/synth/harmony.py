"""Keys, modes, chords and chord progressions for the procedural composer (pure Python, no audio)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Semitone steps of the modes the composer uses (relative to the tonic).
MODES: dict[str, tuple[int, ...]] = {
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
#: How often each mode is drawn (major and minor dominate real songs).
MODE_WEIGHTS: dict[str, float] = {
    "ionian": 0.36, "aeolian": 0.28, "dorian": 0.1, "mixolydian": 0.1,
    "harmonic_minor": 0.07, "lydian": 0.05, "phrygian": 0.04,
}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: Progressions as scale degrees (0 = tonic) of the current mode; each entry is one bar.
PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 4, 3), (0, 3, 0, 4), (1, 4, 0, 0),
    (0, 6, 5, 6), (0, 3, 4, 0), (0, 2, 3, 4), (0, 5, 1, 4), (3, 4, 0, 5), (0, 3, 5, 4),
    (0, 4, 3, 3), (5, 4, 3, 4), (0, 0, 3, 3), (0, 1, 2, 3), (3, 0, 4, 5), (0, 6, 3, 0),
)
#: Extra shapes that suit minor modes (i-VI-III-VII, i-iv-VII-III, i-VII-VI-V, ...).
MINOR_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 4), (0, 3, 4, 0), (0, 5, 3, 4), (0, 6, 5, 6), (0, 3, 0, 4),
)


@dataclass(frozen=True)
class Chord:
    """A chord: MIDI pitch classes relative to C (``root`` 0..11) and its tones as absolute classes."""

    root: int
    tones: tuple[int, ...]  # pitch classes (0..11), root first
    degree: int

    def voicing(self, low: int, n_notes: int, rng: np.random.Generator | None = None) -> list[int]:
        """``n_notes`` MIDI pitches of this chord stacked upward from the first chord tone >= ``low``."""
        inversion = int(rng.integers(0, len(self.tones))) if rng is not None else 0
        order = self.tones[inversion:] + self.tones[:inversion]
        pitches: list[int] = []
        pitch = low
        for i in range(n_notes):
            pc = order[i % len(order)]
            while pitch % 12 != pc:
                pitch += 1
            pitches.append(pitch)
            pitch += 1
        return pitches


@dataclass(frozen=True)
class Key:
    """A tonic (pitch class 0..11) and a mode name from :data:`MODES`."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"

    @property
    def scale(self) -> tuple[int, ...]:
        """The seven pitch classes of the key."""
        return tuple((self.tonic + s) % 12 for s in MODES[self.mode])

    def chord(self, degree: int, seventh: bool = False) -> Chord:
        """The diatonic triad (or seventh chord) built on ``degree`` by stacking scale thirds."""
        scale = self.scale
        n = 4 if seventh else 3
        tones = tuple(scale[(degree + 2 * i) % 7] for i in range(n))
        return Chord(root=tones[0], tones=tones, degree=degree % 7)

    def scale_pitches(self, low: int, high: int) -> list[int]:
        """All MIDI pitches of the key in ``[low, high]``."""
        pcs = set(self.scale)
        return [p for p in range(low, high + 1) if p % 12 in pcs]


def random_key(rng: np.random.Generator) -> Key:
    """A key with a uniformly drawn tonic and a mode drawn by :data:`MODE_WEIGHTS`."""
    modes = list(MODE_WEIGHTS)
    weights = np.array([MODE_WEIGHTS[m] for m in modes])
    mode = modes[int(rng.choice(len(modes), p=weights / weights.sum()))]
    return Key(tonic=int(rng.integers(0, 12)), mode=mode)


def random_progression(rng: np.random.Generator, key: Key, n_bars: int, sevenths: float = 0.2) -> list[Chord]:
    """``n_bars`` chords (one per bar) from a stock progression pattern, repeated to length."""
    pool = PROGRESSIONS
    if key.mode in ("aeolian", "harmonic_minor", "phrygian", "dorian") and rng.random() < 0.6:
        pool = MINOR_PROGRESSIONS
    pattern = pool[int(rng.integers(0, len(pool)))]
    use7 = rng.random() < sevenths
    return [key.chord(pattern[i % len(pattern)], seventh=use7) for i in range(n_bars)]


def midi_to_hz(pitch: float | np.ndarray) -> np.ndarray:
    """Frequency in Hz of a (fractional) MIDI pitch (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)
