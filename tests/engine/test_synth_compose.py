"""The procedural composer and the sung vocal line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.synth import drums as dr
from engine.data.synth.compose import BASS_PROGRAMS, OTHER_PROGRAMS, compose
from engine.data.synth.harmony import MODES, Key, random_progression


def test_program_pool_is_wide() -> None:
    others = {p for pool in OTHER_PROGRAMS.values() for p in pool}
    assert len(others) >= 40
    assert not others & {52, 53, 54, 85, 91}  # voice-like patches never go to "other"
    assert set(BASS_PROGRAMS) <= set(range(32, 44))
    assert len({k for kits in dr.KITS.values() for k in kits}) >= 6


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), seconds=st.sampled_from([5.0, 30.0, 90.0]))
def test_compose_is_valid_and_deterministic(seed: int, seconds: float) -> None:
    song = compose(seed, seconds)
    assert 60 <= song.tempo <= 180
    assert song.swing == 0.5 or 0.55 <= song.swing <= 0.7
    assert song.sections[-1][2] >= seconds  # enough music to fill the excerpt
    stems = {p.stem for p in song.parts}
    assert {"drums", "bass", "other"} <= stems and 1 <= sum(p.stem == "other" for p in song.parts) <= 4
    for part in song.parts:
        assert all(0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 and n.end > n.start >= 0 for n in part.notes)
    lo, hi = song.voice_range
    assert song.melody and all(lo <= n.pitch <= hi for n in song.melody)
    starts = [n.start for n in song.melody]
    assert starts == sorted(starts)
    gaps = [b.start - a.end for a, b in zip(song.melody, song.melody[1:], strict=False)]
    assert max(gaps, default=1.0) > 0.3  # phrases are separated by rests
    assert compose(seed, seconds).summary() == song.summary()


def test_keys_modes_and_progressions_are_diatonic() -> None:
    rng = np.random.default_rng(0)
    for tonic in range(12):
        for mode in MODES:
            key = Key(tonic, mode)
            chords = random_progression(rng, key, 8)
            assert all(set(c.tones) <= set(key.scale) for c in chords)
            assert all(p % 12 in key.scale for p in chords[0].voicing(48, 4))


def test_styles_cover_straight_and_swing() -> None:
    songs = [compose(s, 10.0) for s in range(60)]
    assert len({s.drum_style for s in songs}) >= 8
    assert any(s.swing > 0.5 for s in songs) and any(s.swing == 0.5 for s in songs)
    assert len({s.key for s in songs}) >= 20 and {s.beats_per_bar for s in songs} == {3, 4}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt)")
def test_sung_line_follows_the_melody() -> None:
    import pyworld

    from engine.data.synth.vocals import Singer

    song = compose(11, 12.0)
    notes = [n for n in song.melody if n.end < 12.0]
    rng = np.random.default_rng(0)
    y = Singer("en-us+f3", rng).sing(notes, 12 * 44100, rng)
    assert y.dtype == np.float32 and 0.3 < np.abs(y).max() <= 0.51
    f0, _ = pyworld.harvest(y.astype(np.float64), 44100, frame_period=5.0, f0_floor=70.0, f0_ceil=900.0)
    cents, voiced = [], []
    for n in notes:
        a = int((n.start + 0.2 * (n.end - n.start)) / 0.005)
        b = int((n.end - 0.1 * (n.end - n.start)) / 0.005)
        seg = f0[a:b]
        if seg.size:
            voiced.append(np.mean(seg > 0))
            target = 440 * 2 ** ((n.pitch - 69) / 12)
            cents += list(np.abs(1200 * np.log2(seg[seg > 0] / target)))
    assert np.mean(voiced) > 0.85  # the vowels are sung (voiced) through the notes
    assert np.median(cents) < 40  # on pitch, within vibrato
    # Between phrases (rests longer than 0.3 s) the singer is much quieter than on the notes.
    rests = [(a.end + 0.05, b.start - 0.15) for a, b in zip(notes, notes[1:], strict=False) if b.start - a.end > 0.3]
    quiet = np.concatenate([y[int(t0 * 44100): int(t1 * 44100)] for t0, t1 in rests if t1 > t0])
    sung = np.concatenate([y[int(n.start * 44100): int(n.end * 44100)] for n in notes])
    assert rests and np.sqrt(np.mean(quiet**2)) < 0.3 * np.sqrt(np.mean(sung**2))
