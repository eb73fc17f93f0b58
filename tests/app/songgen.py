"""Synthetic songs for the app tests: four recognisable stems and their sum, written as FLAC/WAV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100


def make_stems(seconds: float = 6.0, samplerate: int = SR, seed: int = 0) -> dict[str, np.ndarray]:
    """``{stem: (2, n) float32}``: a vibrato melody, kick/snare/hats, a bass line, pad chords."""
    rng = np.random.default_rng(seed)
    n = int(seconds * samplerate)
    t = np.arange(n) / samplerate
    beat = 0.5
    melody = np.array([440.0, 494.0, 523.0, 587.0, 659.0, 587.0, 523.0, 494.0])
    f = melody[(t // beat).astype(int) % len(melody)] * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f) / samplerate
    vocals = 0.25 * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase))
    vocals *= 0.6 + 0.4 * np.sin(np.pi * (t % beat) / beat)
    drums = np.zeros(n)
    for k in range(int(seconds / (beat / 2))):
        start = int(k * beat / 2 * samplerate)
        length = min(n - start, int(0.15 * samplerate))
        env = np.exp(-np.arange(length) / (0.03 * samplerate))
        if k % 4 == 0:  # kick
            tt = np.arange(length) / samplerate
            drums[start:start + length] += 0.6 * env * np.sin(2 * np.pi * (60 + 80 * np.exp(-tt * 30)) * tt)
        elif k % 4 == 2:  # snare
            drums[start:start + length] += 0.3 * env * rng.standard_normal(length)
        else:  # hat
            hat = np.diff(rng.standard_normal(length + 1))
            drums[start:start + length] += 0.08 * env * hat
    bass_notes = np.array([55.0, 55.0, 73.4, 82.4])
    fb = bass_notes[(t // (2 * beat)).astype(int) % len(bass_notes)]
    bass = 0.3 * np.tanh(2 * np.sin(2 * np.pi * np.cumsum(fb) / samplerate))
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (293.7, 349.2, 440.0), (246.9, 293.7, 392.0)]
    other = np.zeros(n)
    idx = (t // (4 * beat)).astype(int) % len(chords)
    for j in range(3):
        fc = np.array([c[j] for c in chords])[idx]
        other += 0.07 * np.sign(np.sin(2 * np.pi * np.cumsum(fc) / samplerate))
    pans = {"vocals": (1.0, 1.0), "drums": (0.9, 1.0), "bass": (1.0, 1.0), "other": (1.0, 0.8)}
    out = {}
    for name, mono in (("vocals", vocals), ("drums", drums), ("bass", bass), ("other", other)):
        left, right = pans[name]
        out[name] = np.stack([mono * left, mono * right]).astype(np.float32)
    return out


def write_song(folder: Path, seconds: float = 6.0, with_stems: bool = True, name: str = "mixture",
               ext: str = "flac") -> Path:
    """Write ``folder/<name>.<ext>`` (and, if ``with_stems``, ``<stem>.<ext>`` beside it); returns the mixture."""
    folder.mkdir(parents=True, exist_ok=True)
    stems = make_stems(seconds)
    mix = sum(stems.values())
    path = folder / f"{name}.{ext}"
    sf.write(path, mix.T, SR)
    if with_stems:
        for stem, data in stems.items():
            sf.write(folder / f"{stem}.{ext}", data.T, SR)
    return path


if __name__ == "__main__":
    import sys

    print(write_song(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 30.0))
