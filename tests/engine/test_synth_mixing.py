"""The pedalboard mixing chain: per-stem effects, the bus envelope (mixture stays the sum), loudness, voices."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.data.synth import mixing
from engine.data.synth.loudness import MIX_LUFS, STEM_RELATIVE_LU, LoudnessStats, gain_to, lufs
from engine.data.synth.produce import master, mixture_of

pytest.importorskip("pedalboard")
pytest.importorskip("pyloudnorm")
SR = 44100


def _stems(seconds: float = 3.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    env = (np.sin(2 * np.pi * 2 * t) > 0).astype(np.float32)  # bursts, so compressors have work
    out = {}
    for k, (name, f) in enumerate((("drums", 90.0), ("bass", 55.0), ("other", 440.0), ("vocals", 220.0))):
        x = 0.3 * env * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.size)
        out[name] = np.stack([x, np.roll(x, 10 * (k + 1))]).astype(np.float32)
    return out


def test_stem_effects_are_deterministic_and_keep_shape() -> None:
    for name, x in _stems().items():
        a, pa = mixing.stem_effects(x, name, np.random.default_rng(1), 120.0)
        b, pb = mixing.stem_effects(x, name, np.random.default_rng(1), 120.0)
        assert a.dtype == np.float32 and a.shape == x.shape and np.isfinite(a).all()
        assert np.array_equal(a, b) and pa == pb
        assert "eq" in pa and "width" in pa
    _, p = mixing.stem_effects(_stems()["vocals"], "vocals", np.random.default_rng(1), 120.0)
    assert "de_esser" in p


def test_part_effects_drive_guitars() -> None:
    x = _stems()["other"]
    y, p = mixing.part_effects(x, "other", 30, np.random.default_rng(0))  # 30: distortion guitar
    assert "amp" in p and p["amp"]["drive_db"] >= 14 and y.shape == x.shape
    z, q = mixing.part_effects(x, "other", 0, np.random.default_rng(0))  # piano: no amp
    assert "amp" not in q


def test_de_esser_turns_down_sibilance_only() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    vowel = 0.3 * np.sin(2 * np.pi * 300 * t)
    hiss = np.zeros_like(t)
    hiss[SR // 2: SR // 2 + 4410] = rng.standard_normal(4410)
    from pedalboard import HighpassFilter, Pedalboard

    hiss = Pedalboard([HighpassFilter(9000.0)])(hiss[None, :].astype(np.float32), SR)[0]
    x = np.stack([vowel + hiss, vowel + hiss]).astype(np.float32)
    y, p = mixing.de_ess(x, np.random.default_rng(2))
    s = slice(SR // 2 + 441, SR // 2 + 4000)
    assert p["level_db"] < -3
    assert np.sqrt(np.mean((y[:, s] - vowel[s]) ** 2)) < np.sqrt(np.mean(hiss[s] ** 2))
    quiet = slice(1000, SR // 2 - 2000)
    assert np.allclose(y[:, quiet], x[:, quiet], atol=0.02)


def test_bus_envelope_masters_the_mix_and_the_mixture_stays_the_sum() -> None:
    stems = _stems()
    stats = LoudnessStats()
    relative = {k: stats.draw_stem(k, np.random.default_rng(3)) for k in stems}
    out, params = master(dict(stems), np.random.default_rng(4), stats, relative)
    mix = mixture_of(out)
    written = {k: v.astype(np.float32) for k, v in out.items()}
    assert np.max(np.abs(mix - sum(written[k] for k in ("drums", "bass", "other", "vocals")))) <= 1e-6
    assert max(float(np.abs(v).max()) for v in out.values()) <= 0.98 + 1e-6 and np.abs(mix).max() <= 0.98 + 1e-6
    assert params["bus"]["compressor"]["ratio"] >= 1.5 and params["master_style"] in MIX_LUFS
    env, _ = mixing.bus_envelope(mixture_of(stems), np.random.default_rng(4), -10.0)
    assert env.shape == (stems["drums"].shape[1],) and env.dtype == np.float32 and (env > 0).all()
    again, _ = master(dict(stems), np.random.default_rng(4), stats, relative)
    assert all(np.array_equal(again[k], out[k]) for k in out)


def test_loudness_helpers_and_stats() -> None:
    x = _stems()["other"]
    target = -20.0
    assert abs(lufs(x * np.float32(gain_to(x, target))) - target) < 0.1
    assert lufs(np.zeros((2, SR), np.float32)) == -70.0
    stats = LoudnessStats()
    draws = [stats.draw_stem("vocals", np.random.default_rng(i)) for i in range(200)]
    mean, std = STEM_RELATIVE_LU["vocals"]
    assert abs(np.mean(draws) - mean) < 0.5 and max(draws) <= mean + 2.5 * std
    style, value = stats.draw_master(np.random.default_rng(0))
    assert style in MIX_LUFS and -25 < value < -3
    assert "Jeon" in stats.to_json()["source"]


def test_measured_loudness_stats_file_overrides_defaults(tmp_path) -> None:  # noqa: ANN001
    import json

    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"stem_relative_lu": {"vocals": [-1.0, 0.5]}, "source": "measured on X"}))
    stats = LoudnessStats(path)
    assert stats.stems["vocals"] == (-1.0, 0.5) and stats.stems["bass"] == STEM_RELATIVE_LU["bass"]
    assert stats.source == "measured on X"


@pytest.mark.skipif(shutil.which("festival") is None, reason="festival is not installed (apt)")
def test_festival_speaks_deterministically_and_word_by_word() -> None:
    from engine.data.synth import festival

    voices = festival.available_voices()
    assert voices
    voice = voices[0]
    a = festival.synthesise(["golden", "river"], voice)["golden"]
    b = festival.synthesise(["golden"], voice)["golden"]
    assert np.array_equal(a, b) and a.ndim == 1 and a.size > 2000
    assert np.array_equal(festival.speak("golden", voice), a)
