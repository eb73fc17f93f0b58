"""A mixing and mastering chain with Spotify's pedalboard, randomised per song, that keeps mixture == sum of stems.

- Per part (inside a stem): guitar amp simulation (drive + cabinet low-pass), chorus/phaser on keys and clean
  guitars, bass saturation in parallel, stereo placement (pan) and width (mid/side).
- Per stem: high-pass, EQ (shelves and a peak), compression, for vocals a split-band de-esser, delay and reverb
  sends (the wet signal stays in the stem it came from).
- Bus: the mixture goes through pedalboard's Compressor and Limiter after a gain to the drawn master loudness;
  the output/input level ratio, smoothed over 5.8 ms frames, is ONE gain envelope that is then applied to every
  stem, and the mixture is re-summed from the stems, so the mix stays exactly the sum of the written stems.

Everything is drawn from the generator passed in, so a song's chain is fixed by its seed; pedalboard's effects
are deterministic (same input, same bytes). pedalboard is imported lazily.
"""

from __future__ import annotations

import numpy as np

SAMPLERATE = 44100
FRAME = 256  # bus-envelope frame (5.8 ms)
GUITAR_PROGRAMS = frozenset(range(24, 32))
DRIVEN_GUITARS = frozenset({29, 30, 31})
KEYS_PROGRAMS = frozenset({4, 5, 16, 17, 18, 19, 11})


def _pb():  # noqa: ANN202 (the pedalboard module)
    import pedalboard

    return pedalboard


def run(board, x: np.ndarray, samplerate: int = SAMPLERATE) -> np.ndarray:  # noqa: ANN001 (a Pedalboard)
    """``board`` applied to ``(2, n_samples)``: float32 of the same shape (the effect tails are cut)."""
    y = board(np.ascontiguousarray(x, dtype=np.float32), samplerate, reset=True)
    return np.ascontiguousarray(y[:, : x.shape[1]], dtype=np.float32)


def set_width(x: np.ndarray, width: float) -> np.ndarray:
    """Mid/side width: 0 mono, 1 unchanged, >1 wider. ``(2, n)`` float32."""
    mid = 0.5 * (x[0] + x[1])
    side = 0.5 * (x[0] - x[1]) * np.float32(width)
    return np.stack([mid + side, mid - side]).astype(np.float32)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def part_effects(x: np.ndarray, stem: str, program: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Effects on one rendered part ``(2, n)`` before it joins its stem; returns the audio and the params."""
    pb = _pb()
    params: dict = {}
    chain = []
    if stem == "other" and program in GUITAR_PROGRAMS:
        driven = program in DRIVEN_GUITARS or rng.random() < 0.25
        drive = _u(rng, 14.0, 30.0) if driven else _u(rng, 0.0, 6.0)
        cab = _u(rng, 3500.0, 6500.0)
        chain += [pb.HighpassFilter(_u(rng, 70.0, 120.0)), pb.Distortion(drive_db=drive),
                  pb.LowpassFilter(cab), pb.PeakFilter(_u(rng, 1500.0, 3000.0), _u(rng, -2.0, 4.0), 0.8)]
        params["amp"] = {"drive_db": round(drive, 2), "cabinet_hz": round(cab, 1)}
    if stem == "other" and (program in KEYS_PROGRAMS or program in GUITAR_PROGRAMS) and rng.random() < 0.35:
        if rng.random() < 0.75:
            chain.append(pb.Chorus(rate_hz=_u(rng, 0.3, 1.5), depth=_u(rng, 0.1, 0.35), mix=_u(rng, 0.2, 0.5)))
            params["chorus"] = True
        else:
            chain.append(pb.Phaser(rate_hz=_u(rng, 0.2, 1.0), depth=_u(rng, 0.3, 0.7), mix=_u(rng, 0.2, 0.5)))
            params["phaser"] = True
    if chain:
        x = run(pb.Pedalboard(chain), x)
    if stem == "bass" and rng.random() < 0.5:
        drive = _u(rng, 6.0, 20.0)
        wet = _u(rng, 0.15, 0.5)
        dist = run(pb.Pedalboard([pb.Distortion(drive_db=drive), pb.LowpassFilter(_u(rng, 2000.0, 5000.0))]), x)
        x = ((1 - wet) * x + wet * dist * np.float32(10 ** (-drive / 40))).astype(np.float32)
        params["saturation"] = {"drive_db": round(drive, 2), "wet": round(wet, 3)}
    return x, params


def de_ess(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A split-band de-esser: the band above ~5-8 kHz (pedalboard high-pass) is turned down where its level
    exceeds a threshold relative to its own peak; the rest passes. Returns audio and params (``level_db``: the
    largest reduction)."""
    pb = _pb()
    split = _u(rng, 5000.0, 8000.0)
    high = run(pb.Pedalboard([pb.HighpassFilter(split), pb.HighpassFilter(split)]), x)
    low = x - high
    n = x.shape[1] // FRAME
    if n == 0:
        return x, {"split_hz": round(split, 1), "level_db": 0.0}
    env = np.sqrt(np.mean(high[:, : n * FRAME].reshape(2, n, FRAME) ** 2, axis=(0, 2)) + 1e-12)
    threshold = float(env.max()) * 10 ** (_u(rng, -14.0, -6.0) / 20)
    ratio = _u(rng, 2.0, 6.0)
    gain = np.minimum(1.0, (threshold / env) ** (1 - 1 / ratio))
    gain = np.convolve(gain, np.ones(3) / 3, mode="same")
    g = np.interp(np.arange(x.shape[1]), np.arange(n) * FRAME + FRAME / 2, gain).astype(np.float32)
    level = float(20 * np.log10(max(float(gain.min()), 1e-6)))
    return (low + high * g).astype(np.float32), {"split_hz": round(split, 1), "ratio": round(ratio, 2),
                                                 "level_db": round(level, 2)}


def stem_effects(x: np.ndarray, stem: str, rng: np.random.Generator, tempo: float) -> tuple[np.ndarray, dict]:
    """The stem's channel strip and its effect sends: ``(2, n)`` float32 and the params drawn."""
    pb = _pb()
    p: dict = {}
    hpf = {"vocals": (80.0, 160.0), "drums": (25.0, 45.0), "bass": (25.0, 40.0), "other": (60.0, 160.0)}[stem]
    chain = [pb.HighpassFilter(_u(rng, *hpf))]
    low_shelf, high_shelf = _u(rng, -3.0, 3.0), _u(rng, -3.0, 4.0)
    peak_hz = _u(rng, 200.0, 5000.0)
    peak_db = _u(rng, -4.0, 4.0)
    chain += [pb.LowShelfFilter(_u(rng, 100.0, 250.0), low_shelf), pb.HighShelfFilter(_u(rng, 6000.0, 10000.0),
              high_shelf), pb.PeakFilter(peak_hz, peak_db, _u(rng, 0.7, 2.0))]
    p["eq"] = {"low_shelf_db": round(low_shelf, 2), "high_shelf_db": round(high_shelf, 2),
               "peak_hz": round(peak_hz, 1), "peak_db": round(peak_db, 2)}
    if rng.random() < {"vocals": 0.95, "drums": 0.8, "bass": 0.85, "other": 0.6}[stem]:
        ratio = _u(rng, 2.0, 6.0) if stem != "other" else _u(rng, 1.5, 3.0)
        thr = _u(rng, -26.0, -12.0)
        attack = _u(rng, 1.0, 8.0) if stem == "vocals" else _u(rng, 3.0, 30.0)
        chain.append(pb.Compressor(threshold_db=thr, ratio=ratio, attack_ms=attack, release_ms=_u(rng, 50.0, 250.0)))
        p["compressor"] = {"threshold_db": round(thr, 2), "ratio": round(ratio, 2), "attack_ms": round(attack, 2)}
    peak = float(np.abs(x).max())
    if peak > 0:  # compressor thresholds are relative to a stem peaking near 0 dBFS
        x = x * np.float32(0.7 / peak)
    x = run(pb.Pedalboard(chain), x)
    if peak > 0:
        x = x * np.float32(peak / 0.7)
    if stem == "vocals":
        x, p["de_esser"] = de_ess(x, rng)
    if stem in ("vocals", "other") and rng.random() < (0.45 if stem == "vocals" else 0.2):
        beat = 60.0 / max(tempo, 40.0)
        delay = beat * float(rng.choice([0.5, 0.75, 1.0]))
        fb, mix = _u(rng, 0.1, 0.4), _u(rng, 0.06, 0.2)
        x = run(pb.Pedalboard([pb.Delay(delay_seconds=delay, feedback=fb, mix=mix)]), x)
        p["delay"] = {"seconds": round(delay, 4), "feedback": round(fb, 3), "mix": round(mix, 3)}
    wet_range = {"vocals": (0.08, 0.35), "drums": (0.0, 0.18), "bass": (0.0, 0.06), "other": (0.05, 0.35)}[stem]
    wet = _u(rng, *wet_range)
    if wet > 0.01:
        room, damp, width = _u(rng, 0.25, 0.9), _u(rng, 0.2, 0.7), _u(rng, 0.6, 1.0)
        send = run(pb.Pedalboard([pb.Reverb(room_size=room, damping=damp, wet_level=1.0, dry_level=0.0,
                                            width=width)]), x)
        x = (x + np.float32(wet) * send).astype(np.float32)
        p["reverb"] = {"room_size": round(room, 3), "damping": round(damp, 3), "wet": round(wet, 3)}
    width = {"vocals": _u(rng, 0.7, 1.1), "drums": _u(rng, 0.8, 1.2), "bass": _u(rng, 0.0, 0.4),
             "other": _u(rng, 0.8, 1.4)}[stem]
    p["width"] = round(width, 3)
    return set_width(x, width), p


def bus_envelope(mix: np.ndarray, rng: np.random.Generator, target_lufs: float,
                 samplerate: int = SAMPLERATE) -> tuple[np.ndarray, dict]:
    """The bus compressor + limiter as one gain envelope ``(n_samples,)`` float32 derived from the mixture.

    The mixture is brought to ``target_lufs``, run through pedalboard's Compressor and Limiter, and the
    output/input RMS ratio per 5.8 ms frame (frames near silence take their neighbours' value), smoothed over
    three frames, is interpolated to every sample. Multiplying every stem by it and re-summing gives a mixture
    that follows the processed one.
    """
    from engine.data.synth.loudness import gain_to

    pb = _pb()
    pre = gain_to(mix, target_lufs, samplerate)
    x = (mix * np.float32(pre)).astype(np.float32)
    thr = _u(rng, -22.0, -10.0)
    ratio = _u(rng, 1.5, 4.0)
    ceiling = _u(rng, -1.5, -0.1)
    board = pb.Pedalboard([pb.Compressor(threshold_db=thr, ratio=ratio, attack_ms=_u(rng, 5.0, 30.0),
                                         release_ms=_u(rng, 80.0, 300.0)),
                           pb.Limiter(threshold_db=ceiling, release_ms=_u(rng, 30.0, 200.0)),
                           pb.Gain(gain_db=ceiling)])  # the limiter's make-up gain brings peaks to 0 dBFS
    y = run(board, x, samplerate)
    n = mix.shape[1] // FRAME
    if n < 2:
        return np.full(mix.shape[1], pre, np.float32), {"pre_gain": pre}
    def rms(a: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean(a[:, : n * FRAME].reshape(a.shape[0], n, FRAME).astype(np.float64) ** 2, axis=(0, 2)))
    r_in, r_out = rms(x), rms(y)
    ok = r_in > max(float(r_in.max()) * 1e-3, 1e-7)
    ratio_frames = np.where(ok, r_out / np.maximum(r_in, 1e-12), np.nan)
    idx = np.arange(n)
    if ok.any():
        ratio_frames = np.interp(idx, idx[ok], ratio_frames[ok])
    else:
        ratio_frames = np.ones(n)
    ratio_frames = np.convolve(np.pad(ratio_frames, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    env = np.interp(np.arange(mix.shape[1]), idx * FRAME + FRAME / 2, ratio_frames) * pre
    params = {"target_lufs": round(target_lufs, 2), "pre_gain_db": round(20 * np.log10(pre), 2),
              "compressor": {"threshold_db": round(thr, 2), "ratio": round(ratio, 2)},
              "limiter_ceiling_db": round(ceiling, 2),
              "gain_reduction_db_p95": round(float(-20 * np.log10(np.percentile(ratio_frames, 5) + 1e-12)), 2)}
    return env.astype(np.float32), params


def apply_envelope(stems: dict[str, np.ndarray], env: np.ndarray) -> dict[str, np.ndarray]:
    """Every stem times the same gain envelope (float32)."""
    return {k: (v * env[None, :]).astype(np.float32) for k, v in stems.items()}
