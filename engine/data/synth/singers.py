"""More than one robot: the sung layers of a song's vocals stem.

The lead (espeak-ng or Festival, forced onto the melody by WORLD) may get doubles (the same voice again, a few
cents off and a few ms late, or an artificial-double-tracking copy of the lead, panned apart), a harmony a diatonic third above or a sixth below on the choruses
(the same singer or a second voice), and backing singers (another voice, often the other engine) on the
harmony line. Every layer is placed in the stereo field and levelled relative to the lead; the stem's effects
(compression, de-essing, delay, reverb) come afterwards in :mod:`engine.data.synth.mixing`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.data.synth import render as rd
from engine.data.synth.compose import Song, SungNote
from engine.data.synth.harmony import MODES, NOTE_NAMES, Key


def key_of(song: Song) -> Key:
    """The song's key from its name (``"C ionian"``)."""
    tonic, mode = song.key.split(" ", 1)
    return Key(NOTE_NAMES.index(tonic), mode if mode in MODES else "ionian")


def harmony_line(song: Song, notes: list[SungNote], steps: int, sections: tuple[str, ...] = ("chorus",)
                 ) -> list[SungNote]:
    """The notes of ``notes`` inside ``sections``, moved ``steps`` scale degrees (+2 a third up, -5 a sixth down)."""
    key = key_of(song)
    spans = [(a, b) for name, a, b in song.sections if name in sections]
    scale = key.scale_pitches(20, 100)
    out = []
    for note in notes:
        if not any(a <= note.start < b for a, b in spans):
            continue
        i = int(np.argmin([abs(p - note.pitch) for p in scale]))
        out.append(replace(note, pitch=int(scale[int(np.clip(i + steps, 0, len(scale) - 1))])))
    return out


def _shifted(notes: list[SungNote], rng: np.random.Generator, sd: float) -> list[SungNote]:
    out = []
    for n in notes:
        dt = float(rng.normal(0.0, sd))
        out.append(replace(n, start=max(n.start + dt, 0.0), end=max(n.end + dt, n.start + dt + 0.05)))
    return out


def _stereo(mono: np.ndarray, pan: float, gain: float) -> np.ndarray:
    return rd.apply_pan(np.stack([mono, mono]) * np.float32(gain), pan)


def _active_rms(x: np.ndarray) -> float:
    hop = 4410
    n = x.size // hop
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    frames = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = frames[frames > frames.max() * 0.05]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


def adt(mono: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Artificial double tracking: ``mono`` through a fully wet, slowly modulated 15-35 ms delay (pedalboard)."""
    import pedalboard

    board = pedalboard.Pedalboard([pedalboard.Chorus(rate_hz=float(rng.uniform(0.4, 1.5)),
                                                     depth=float(rng.uniform(0.05, 0.15)),
                                                     centre_delay_ms=float(rng.uniform(15.0, 35.0)),
                                                     feedback=0.0, mix=1.0)])
    y = board(np.ascontiguousarray(mono[None, :], dtype=np.float32), 44100, reset=True)
    return np.ascontiguousarray(y[0, : mono.size], dtype=np.float32)


def _add(out: np.ndarray, params: dict, audio: np.ndarray, kind: str, voice: str, pan: float, gain_db: float,
         **extra: object) -> None:
    """Add one layer, levelled ``gain_db`` against the lead (active RMS 0.1) and panned, and note it."""
    out += _stereo(audio, pan, 0.1 / max(_active_rms(audio), 1e-9) * 10 ** (gain_db / 20))
    params["layers"].append({"kind": kind, "voice": voice, "pan": round(pan, 3), "gain_db": round(gain_db, 2)} | extra)


def sing_layers(song: Song, n_samples: int, rng: np.random.Generator, voice: str,
                other_voices: tuple[str, ...]) -> tuple[np.ndarray, dict]:
    """The sung vocals of ``song``: float32 ``(2, n_samples)`` (lead at active RMS 0.1) and the params drawn.

    ``voice`` sings the lead; ``other_voices`` are candidates for backing singers.
    """
    from engine.data.synth.vocals import Singer

    params: dict = {"layers": []}
    out = np.zeros((2, n_samples), dtype=np.float32)
    if not song.melody:
        return out, params
    lead = Singer(voice, rng)
    lead_audio = lead.sing(song.melody, n_samples, rng)
    ref = max(_active_rms(lead_audio), 1e-9)
    pan = float(rng.uniform(-0.1, 0.1))
    out += _stereo(lead_audio, pan, 0.1 / ref)
    params["lead"] = {"voice": voice, "pan": round(pan, 3), "vibrato_hz": round(lead.vibrato_rate, 2),
                      "vibrato_semitones": round(lead.vibrato_depth, 3), "breath": round(lead.breath, 3)}
    draws = rng.random(4)
    if draws[0] < 0.45:  # a double: an ADT copy of the lead (cheap), or the same singer again (a few cents off)
        pair = draws[1] < 0.5
        if rng.random() < 0.4:
            double = Singer(voice, rng)
            double.formant_shift, double.tilt_hz = lead.formant_shift, lead.tilt_hz
            double._cache = lead._cache  # same voice, same formants: the same word analyses
            double.detune = float(rng.normal(0.0, 0.08))
            audio, kind = double.sing(_shifted(song.melody, rng, 0.012), n_samples, rng), "double"
        else:
            audio, kind = adt(lead_audio, rng), "adt_double"
        side = -1.0 if pair else float(rng.choice([-1.0, 1.0]))
        pan = side * float(rng.uniform(0.3, 0.8) if pair else rng.uniform(0.0, 0.3))
        _add(out, params, audio, kind, voice, pan, float(rng.uniform(-9.0, -4.0)))
        if pair:  # the other side: artificial double tracking of the lead (a modulated 15-35 ms delay)
            _add(out, params, adt(lead_audio, rng), "adt_double", voice, float(rng.uniform(0.3, 0.8)),
                 float(rng.uniform(-10.0, -5.0)))
    if draws[2] < 0.35:  # a harmony on the choruses
        steps = 2 if rng.random() < 0.7 else -5
        line = harmony_line(song, song.melody, steps)
        if line:
            singer_voice = voice if rng.random() < 0.5 or not other_voices else \
                str(other_voices[int(rng.integers(0, len(other_voices)))])
            audio = Singer(singer_voice, rng).sing(_shifted(line, rng, 0.01), n_samples, rng)
            _add(out, params, audio, "harmony", singer_voice,
                 float(rng.choice([-1.0, 1.0])) * float(rng.uniform(0.2, 0.6)), float(rng.uniform(-8.0, -3.0)),
                 steps=steps)
    if draws[3] < 0.2 and other_voices:  # backing singers on a chorus harmony, another voice, both sides
        line = harmony_line(song, song.melody, int(rng.choice([2, 4, -3])))
        if line:
            v = str(other_voices[int(rng.integers(0, len(other_voices)))])
            audio = Singer(v, rng).sing(_shifted(line, rng, 0.015), n_samples, rng)
            gain_db = float(rng.uniform(-12.0, -6.0))
            _add(out, params, audio, "backing", v, -float(rng.uniform(0.5, 0.9)), gain_db)
            _add(out, params, adt(audio, rng), "backing_adt", v, float(rng.uniform(0.5, 0.9)), gain_db - 1.0)
    return out, params
