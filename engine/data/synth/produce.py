"""Produce a composed song like a record: timbres, recorded drums, sung layers, a mix and a master.

:func:`produce_song` renders each part (FluidSynth with the part's GM bank, or the Hydrogen kit sampler for
recorded drums), applies part and stem effects (:mod:`engine.data.synth.mixing`), sets each stem's loudness
relative to the mix from :class:`~engine.data.synth.loudness.LoudnessStats`, and masters the bus with one gain
envelope applied to every stem. Over a real recording (``accompaniment=``) only the vocals are rendered and the
recording is the second stem. Every stem is float32 ``(2, n_samples)``; the mixture is their float32 sum in a
fixed order, so it is exact.

Random streams, each from ``SeedSequence([song_seed, k])``: k=1 mixing and part levels, 2 timbres, 3 drum
humanisation, 4 singers, 5 loudness and master. Separate streams keep one choice from shifting the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.synth import mixing, timbres
from engine.data.synth import render as rd
from engine.data.synth.compose import Song
from engine.data.synth.drumkit import DrumKit, KitPlayer, load_drumkit
from engine.data.synth.loudness import VOCALS_OVER_ACCOMPANIMENT_LU, LoudnessStats, gain_to, lufs

STEMS = ("drums", "bass", "other", "vocals")
PEAK = 0.98


@dataclass
class Studio:
    """What one worker process renders with: the FluidSynth renderer, timbres, kits (loaded lazily), stats."""

    renderer: rd.PartRenderer
    timbres: timbres.Timbres
    stats: LoudnessStats
    kits: dict[str, DrumKit] = field(default_factory=dict)

    @classmethod
    def create(cls, t: timbres.Timbres, stats: LoudnessStats) -> Studio:
        fonts = dict(t.soundfonts) | dict(t.drum_sf2)
        return cls(rd.PartRenderer(fonts, drum_sf2=frozenset(t.drum_sf2)), t, stats)

    def kit(self, name: str) -> DrumKit:
        if name not in self.kits:
            self.kits[name] = load_drumkit(Path(self.timbres.kits[name]))
        return self.kits[name]


def _rng(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, k]))


def active_rms(x: np.ndarray) -> float:
    """RMS over the 100 ms frames that are not near-silent (``(n_channels, n_samples)``)."""
    mono = x.mean(axis=0)
    hop = 4410
    n = mono.size // hop
    if n == 0:
        return float(np.sqrt(np.mean(mono**2))) if mono.size else 0.0
    frames = np.sqrt(np.mean(mono[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = frames[frames > frames.max() * 0.05]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


def render_stem(song: Song, stem: str, studio: Studio, n_samples: int, rng: np.random.Generator,
                drum_rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The sum of ``song``'s parts of ``stem`` (levelled, panned, with part effects): ``(2, n)`` float32."""
    acc = np.zeros((2, n_samples), dtype=np.float32)
    params: dict = {}
    for part in song.parts:
        if part.stem != stem:
            continue
        if part.kit is not None:
            player = KitPlayer(studio.kit(part.kit), drum_rng, timing_ms=float(drum_rng.uniform(1.5, 7.0)),
                               velocity_jitter=float(drum_rng.uniform(3.0, 10.0)))
            x = player.render(part.notes, n_samples)
        else:
            x = studio.renderer.render(part, n_samples)
        gain_db = float(rng.uniform(-3, 3)) - (0.0 if stem != "vocals" else 9.0)  # FluidSynth backing sits behind
        pan = 0.0 if stem in ("drums", "bass") else float(rng.uniform(-0.8, 0.8))
        x, fx = mixing.part_effects(x, stem, part.program, rng)
        rms = active_rms(x)
        if rms <= 0:
            continue
        acc += rd.apply_pan(x * np.float32(0.1 * 10 ** (gain_db / 20) / rms), pan)
        params[part.name] = {"gain_db": round(gain_db, 2), "pan": round(pan, 3)} | fx
    return acc, params


def master(stems: dict[str, np.ndarray], rng: np.random.Generator, stats: LoudnessStats,
           relative: dict[str, float], bus: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Level each stem to its drawn loudness relative to the others, master the bus (one gain envelope for all),
    keep every peak (stems and mix) below :data:`PEAK`. Returns the stems and the params."""
    style, target = stats.draw_master(rng)
    for name, rel in relative.items():
        if name in stems:
            stems[name] = (stems[name] * np.float32(gain_to(stems[name], -20.0 + rel))).astype(np.float32)
    mix = mixture_of(stems)
    params: dict = {"master_style": style, "stem_relative_lu": {k: round(v, 2) for k, v in relative.items()}}
    if bus:
        env, params["bus"] = mixing.bus_envelope(mix, rng, target)
    else:
        env = np.full(mix.shape[1], gain_to(mix, target), np.float32)
        params["bus"] = {"target_lufs": round(target, 2), "bypassed": True}
    stems = mixing.apply_envelope(stems, env)
    peak = max([float(np.abs(mixture_of(stems)).max())] + [float(np.abs(s).max()) for s in stems.values()])
    if peak > PEAK:
        stems = {k: (v * np.float32(PEAK / peak)).astype(np.float32) for k, v in stems.items()}
    for v in stems.values():
        rd.fade_edges(v, rd.SAMPLERATE)
    params["mix_lufs"] = round(lufs(mixture_of(stems)), 2)
    params["peak_scale"] = round(min(1.0, PEAK / max(peak, 1e-9)), 4)
    return stems, params


def mixture_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The float32 sum of the stems in a fixed order (:data:`STEMS`, then ``accompaniment``)."""
    mix = np.zeros_like(next(iter(stems.values())), dtype=np.float32)
    for name in STEMS + ("accompaniment",):
        if name in stems:
            mix += stems[name]
    return mix


def produce_song(song: Song, studio: Studio, seed: int, n_samples: int, stems: tuple[str, ...] = STEMS,
                 voice: str | None = None, accompaniment: np.ndarray | None = None,
                 bus: bool | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Render, mix and master ``song``: ``({stem: (2, n_samples) float32}, params)``.

    ``stems`` limits what is rendered (the unpaired pools); with ``accompaniment`` (a real recording,
    ``(2, n_samples)``), the stems are ``vocals`` and ``accompaniment``, and the bus processing runs on half of
    the songs (``bus`` forces it on or off; off leaves the recording a scaled copy of itself).
    """
    from engine.data.synth.singers import sing_layers
    from engine.data.synth.vocals import choose_voice

    mix_rng, timbre_rng, drum_rng, voice_rng, master_rng = (_rng(seed, k) for k in (1, 2, 3, 4, 5))
    params: dict = {"timbres": timbres.assign(song, studio.timbres, timbre_rng)}
    female = song.voice_range[0] >= 53
    fest = studio.timbres.festival_voices
    drawn = choose_voice(voice_rng, female, fest)
    voice = voice if voice is not None else drawn
    others = tuple(v for v in (choose_voice(voice_rng, female, fest), choose_voice(voice_rng, not female, fest),
                               choose_voice(voice_rng, female, fest)) if v != voice)
    params["voice"] = voice
    wanted = ("vocals",) if accompaniment is not None else stems
    out: dict[str, np.ndarray] = {}
    params["parts"], params["stems"] = {}, {}
    for stem in STEMS:
        if stem not in wanted:
            continue
        x, params["parts"][stem] = render_stem(song, stem, studio, n_samples, mix_rng, drum_rng)
        if stem == "vocals":
            sung, params["singers"] = sing_layers(song, n_samples, voice_rng, voice, others)
            x = x + sung
        x, params["stems"][stem] = mixing.stem_effects(x, stem, mix_rng, song.tempo)
        out[stem] = x
    if accompaniment is not None:
        out["accompaniment"] = np.ascontiguousarray(accompaniment[:, :n_samples], dtype=np.float32)
        mean, std = VOCALS_OVER_ACCOMPANIMENT_LU
        relative = {"accompaniment": 0.0, "vocals": float(np.clip(master_rng.normal(mean, std), -6.0, 6.0))}
        use_bus = bool(master_rng.random() < 0.5) if bus is None else bus
        out, params["master"] = master(out, master_rng, studio.stats, relative, bus=use_bus)
    else:
        relative = {k: studio.stats.draw_stem(k, master_rng) for k in STEMS if k in out}
        out, params["master"] = master(out, master_rng, studio.stats, relative)
    return out, params
