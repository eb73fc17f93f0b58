"""Tempo and key detection on generated songs whose tempo and key are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.analysis import SongAnalysis, analyse, analyse_cached, detect_key, transpose_key
from engine.analysis.tempo_key import MAJOR_PROFILE, MINOR_PROFILE

SR = 22050


def note(midi: int, seconds: float) -> np.ndarray:
    """A plucked tone with a few harmonics."""
    t = np.arange(int(seconds * SR)) / SR
    f = 440.0 * 2 ** ((midi - 69) / 12)
    tone = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 5))
    return (tone * np.exp(-3 * t)).astype(np.float32)


def song(bpm: float, chords: list[list[int]], bars: int = 12) -> np.ndarray:
    """Four beats to a bar at ``bpm``: a kick on every beat, one chord per bar (MIDI notes). Stereo."""
    beat = 60.0 / bpm
    n = int(bars * 4 * beat * SR)
    mix = np.zeros(n, dtype=np.float32)
    kick_t = np.arange(int(0.08 * SR)) / SR
    kick = (np.sin(2 * np.pi * 60 * kick_t) * np.exp(-40 * kick_t)).astype(np.float32)
    for b in range(bars * 4):
        start = int(b * beat * SR)
        mix[start:start + kick.size] += kick[: n - start]
    for bar in range(bars):
        start = int(bar * 4 * beat * SR)
        for midi in chords[bar % len(chords)]:
            tone = note(midi, 4 * beat)[: n - start]
            mix[start:start + tone.size] += 0.2 * tone
    return np.stack([mix, mix]) * 0.5


A_MINOR = [[57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64]]  # Am, Dm, E, Am
EB_MAJOR = [[63, 67, 70], [68, 72, 75], [70, 74, 77], [63, 67, 70]]  # Eb, Ab, Bb, Eb


@pytest.mark.parametrize(("bpm", "chords", "key"), [(120.0, A_MINOR, "A minor"), (96.0, EB_MAJOR, "Eb major")])
def test_tempo_and_key_of_a_generated_song(bpm: float, chords: list[list[int]], key: str) -> None:
    result = analyse(song(bpm, chords), SR)
    assert abs(result.bpm - bpm) < 0.03 * bpm or abs(result.bpm - 2 * bpm) < 0.03 * bpm, result
    assert result.key() == key, result


def test_the_transposed_key_follows_the_pitch() -> None:
    result = SongAnalysis(120.0, "A", "minor", 0.2)
    assert result.key(3) == "C minor"
    assert result.key(-12) == "A minor"
    assert result.key(-1) == "Ab minor"
    assert transpose_key("B", 1) == "C"
    assert result.bpm_at(0.5) == 60.0


def test_detect_key_on_the_profiles_themselves() -> None:
    for tonic in range(12):
        assert detect_key(np.roll(MAJOR_PROFILE, tonic)[:, None])[:2] == (transpose_key("C", tonic), "major")
        assert detect_key(np.roll(MINOR_PROFILE, tonic)[:, None])[:2] == (transpose_key("C", tonic), "minor")


def test_the_analysis_is_cached_beside_the_stems(tmp_path, monkeypatch) -> None:
    audio = song(120.0, A_MINOR, bars=6)
    first = analyse_cached(audio, SR, root=tmp_path)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["tonic"] == first.tonic

    def fail(*_args, **_kwargs):
        raise AssertionError("analysed again instead of reading the cache")

    monkeypatch.setattr("engine.analysis.tempo_key.analyse", fail)
    assert analyse_cached(audio, SR, root=tmp_path) == first
    files[0].write_text("{broken")
    monkeypatch.undo()
    assert analyse_cached(audio, SR, root=tmp_path) == first  # a damaged entry is recomputed


def test_silence_gives_no_tempo() -> None:
    assert analyse(np.zeros((2, SR * 3), dtype=np.float32), SR).bpm == 0.0


def test_a_clip_too_short_to_tell_gives_no_tempo_or_key_and_no_warning() -> None:
    import warnings

    t = np.arange(int(SR * 2.5)) / SR
    clip = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa's "n_fft is too large" would raise here
        result = analyse(clip, SR)
    assert result.bpm == 0.0 and result.key_confidence == 0.0
