"""Synthetic multitrack corpus: compose, render and mix songs into the MUSDB18-HQ folder layout.

``make_corpus(out, ...)`` writes ``out/{train,valid,test}/<track>/{mixture,drums,bass,other,vocals}.wav``
(44.1 kHz stereo float32; ``mixture`` is exactly the float32 sum of the four written stems), the unpaired pools
``out/unpaired/{mixtures,vocals,instrumental}/<track>/`` (from disjoint song seeds), and ``out/manifest.json``.
With a fetched real-audio folder (``real_dir``) it also writes songs over real accompaniment
(:mod:`engine.data.synth.realacc`): ``out/{train,valid}_realacc/<track>/{mixture,vocals,accompaniment}.wav`` +
``track.json``, and issue 12's mixtures over real accompaniment ``out/unpaired/real_mixtures/<track>/mixture.wav``
(their references under ``out/refs/``). Version 2 (the default) produces each song with
:mod:`engine.data.synth.produce` (GM banks, recorded kits, singers, pedalboard mix and master); ``classic=True``
is version 1. Each track's seed derives from ``(seed, pool, index)`` only, so results do not depend on worker
scheduling and the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.synth import render as rd
from engine.data.synth.compose import Song, compose
from engine.errors import DatasetError, SeparationCancelled

STEMS = ("drums", "bass", "other", "vocals")  # summation order of the mixture (fixed for exactness)
#: New pools go at the end: a pool's position is part of its tracks' seeds.
POOLS = ("train", "valid", "test", "unpaired/mixtures", "unpaired/vocals", "unpaired/instrumental",
         "train_realacc", "valid_realacc", "unpaired/real_mixtures")
GENERATOR_VERSION = 2

# Mixing ranges (dB / pan / seconds): per-part levels before the stem level, stem levels relative to the mix.
STEM_LEVEL_DB = {"vocals": (-1.0, 3.0), "drums": (-2.0, 3.0), "bass": (-4.0, 3.0), "other": (-3.0, 3.0)}
REVERB_WET = {"vocals": (0.1, 0.45), "drums": (0.0, 0.25), "bass": (0.0, 0.1), "other": (0.05, 0.4)}
MIX_RMS_DB = (-18.0, -14.0)

_WORKER: dict = {}
_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile command (sndfile.h)


def track_seed(seed: int, pool: str, index: int) -> int:
    """The song seed of track ``index`` of ``pool`` (a pure function of its arguments)."""
    return int(np.random.SeedSequence([seed, POOLS.index(pool), index]).generate_state(1)[0])


def _save(path: Path, samples: np.ndarray, samplerate: int) -> None:
    """Write float32 ``(n_channels, n_samples)`` atomically as a FLOAT WAV, byte-reproducibly.

    Not ``engine.audio.save_audio``: libsndfile adds a PEAK chunk to float WAVs that holds the wall-clock time,
    so the same audio written a second later gives different bytes. The chunk is turned off here.
    """
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.wav")
    with sf.SoundFile(str(tmp), "w", samplerate, samples.shape[0], subtype="FLOAT", format="WAV") as f:
        sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)  # 0 = SF_FALSE
        f.write(np.ascontiguousarray(samples.T, dtype=np.float32))
    tmp.replace(path)


def _active_rms(x: np.ndarray) -> float:
    """RMS over the 100 ms frames that are not near-silent (so sparse parts are not over-boosted)."""
    mono = x.mean(axis=0)
    hop = 4410
    n = mono.size // hop
    if n == 0:
        return float(np.sqrt(np.mean(mono**2)))
    frames = np.sqrt(np.mean(mono[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = frames[frames > frames.max() * 0.05]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


def render_song(song: Song, renderer: rd.PartRenderer, rng: np.random.Generator, *, n_samples: int,
                stems: tuple[str, ...] = STEMS, voice: str | None = None,
                levels: dict[str, float] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Render and mix ``song``'s stems (only those in ``stems``): float32 ``(2, n_samples)`` each, and the
    mixing parameters drawn (for the manifest). Stems are NOT yet loudness-normalised as a mix.

    ``voice`` (espeak-ng voice) and ``levels`` (stem level in dB, see :data:`STEM_LEVEL_DB`) override the draws.
    """
    from engine.data.synth.vocals import Singer, choose_voice

    sr = rd.SAMPLERATE
    out: dict[str, np.ndarray] = {}
    params: dict = {"parts": {}, "stems": {}}
    female = song.voice_range[0] >= 53
    drawn_voice = choose_voice(rng, female)
    voice = voice if voice is not None else drawn_voice
    params["voice"] = voice
    for stem in stems:
        acc = np.zeros((2, n_samples), dtype=np.float32)
        for part in song.parts:
            if part.stem != stem:
                continue
            x = renderer.render(part, n_samples)
            rms = _active_rms(x)
            if rms <= 0:
                continue
            gain_db = float(rng.uniform(-3, 3)) - (0.0 if stem != "vocals" else 9.0)  # backing sits behind
            pan = 0.0 if stem in ("drums", "bass") else float(rng.uniform(-0.7, 0.7))
            acc += apply_gain_pan(x, 0.1 * 10 ** (gain_db / 20) / rms, pan)
            params["parts"][part.name] = {"gain_db": round(gain_db, 2), "pan": round(pan, 3)}
        if stem == "vocals" and song.melody:
            singer = Singer(voice, rng)
            lead = singer.sing(song.melody, n_samples, rng)
            lead_rms = _active_rms(lead[None, :])
            pan = float(rng.uniform(-0.1, 0.1))
            acc += apply_gain_pan(np.stack([lead, lead]), 0.1 / max(lead_rms, 1e-9), pan)
            params["lead"] = {"pan": round(pan, 3), "vibrato_hz": round(singer.vibrato_rate, 2),
                              "vibrato_semitones": round(singer.vibrato_depth, 3), "breath": round(singer.breath, 3)}
        rt60 = float(rng.uniform(0.3, 2.5))
        wet = float(rng.uniform(*REVERB_WET[stem]))
        acc = rd.add_reverb(acc, rd.reverb_ir(rng, rt60), wet)
        level_db = float(rng.uniform(*STEM_LEVEL_DB[stem]))
        if levels is not None and stem in levels:
            level_db = float(levels[stem])
        rms = _active_rms(acc)
        if rms > 0:
            acc = acc * np.float32(0.1 * 10 ** (level_db / 20) / rms)
        out[stem] = rd.fade_edges(acc.astype(np.float32), sr)
        params["stems"][stem] = {"level_db": round(level_db, 2), "reverb_rt60": round(rt60, 3),
                                 "reverb_wet": round(wet, 3)}
    return out, params


def apply_gain_pan(x: np.ndarray, gain: float, pan: float) -> np.ndarray:
    """``x`` ``(2, n_samples)`` scaled by ``gain`` and balanced by ``pan`` (float32)."""
    return rd.apply_pan(x * np.float32(gain), pan)


def normalise_mix(stems: dict[str, np.ndarray], target_db: float) -> tuple[dict[str, np.ndarray], float]:
    """Scale all stems by one factor so the mix RMS is ``target_db`` dBFS and no stem or mix peak exceeds 0.98.

    Returns the scaled float32 stems and the factor; additivity is kept because every stem gets the same factor.
    """
    mix = sum(stems.values())
    rms = float(np.sqrt(np.mean(np.asarray(mix, dtype=np.float64) ** 2)))
    scale = 10 ** (target_db / 20) / max(rms, 1e-9)
    peak = max([float(np.abs(mix).max())] + [float(np.abs(s).max()) for s in stems.values()])
    scale = min(scale, 0.98 / max(peak, 1e-9))
    return {k: (v * np.float32(scale)).astype(np.float32) for k, v in stems.items()}, float(scale)


def mixture_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The float32 sum of the stems, in the fixed order of :data:`STEMS` (those present)."""
    mix = np.zeros_like(next(iter(stems.values())), dtype=np.float32)
    for name in STEMS:
        if name in stems:
            mix += stems[name]
    return mix


def _init_worker(soundfont: str, config: dict | None = None) -> None:
    if config is None or config.get("classic"):
        _WORKER["renderer"] = rd.PartRenderer(Path(soundfont))
        _WORKER["config"] = {"classic": True}
        return
    from engine.data.synth.loudness import LoudnessStats
    from engine.data.synth.produce import Studio
    from engine.data.synth.timbres import Timbres

    timbres = Timbres(**config["timbres"])
    _WORKER["studio"] = Studio.create(timbres, LoudnessStats(config.get("loudness_stats")))
    _WORKER["config"] = config


def make_track(job: tuple) -> dict:
    """Compose, render and write one track; ``job`` is ``(out_dir, pool, index, seed, seconds)``.

    Returns the track's manifest entry. Runs in a worker (uses the worker's renderer or studio).
    """
    out_dir, pool, index, seed, seconds = job
    if not _WORKER["config"].get("classic"):
        from engine.data.synth.tracks import make_track_v2

        return make_track_v2(_WORKER, Path(out_dir), pool, index, track_seed(seed, pool, index), seconds)
    renderer: rd.PartRenderer = _WORKER["renderer"]
    sr = rd.SAMPLERATE
    n_samples = int(round(seconds * sr))
    s = track_seed(seed, pool, index)
    song = compose(s, seconds)
    rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
    wanted = {"unpaired/vocals": ("vocals",), "unpaired/instrumental": ("drums", "bass", "other")}.get(pool, STEMS)
    stems, params = render_song(song, renderer, rng, n_samples=n_samples, stems=wanted)
    target_db = float(rng.uniform(*MIX_RMS_DB))
    stems, scale = normalise_mix(stems, target_db)
    name = f"{pool.split('/')[-1]}_{index:04d}"
    write_stems(Path(out_dir), pool, name, stems)
    return {"name": name, "pool": pool, "index": index, "seed": s, "n_samples": n_samples, "samplerate": sr,
            "mix_rms_db": round(target_db, 2), "mix_scale": scale, "song": song.summary(), "mixing": params}


def write_stems(out_dir: Path, pool: str, name: str, stems: dict[str, np.ndarray]) -> None:
    """Write one synthetic track's files for its pool (the mixture is the exact sum of what is written)."""
    sr = rd.SAMPLERATE
    folder = Path(out_dir) / pool / name
    if pool == "unpaired/mixtures":
        _save(folder / "mixture.wav", mixture_of(stems), sr)
    elif pool == "unpaired/vocals":
        _save(folder / "vocals.wav", stems["vocals"], sr)
    elif pool == "unpaired/instrumental":
        for k, v in stems.items():
            _save(folder / f"{k}.wav", v, sr)
        _save(folder / "instrumental.wav", mixture_of(stems), sr)
    else:
        for k, v in stems.items():
            _save(folder / f"{k}.wav", v, sr)
        _save(folder / "mixture.wav", mixture_of(stems), sr)


def make_corpus(out: Path, *, n_train: int = 180, n_valid: int = 20, n_test: int = 20, n_unpaired: int = 20,
                seconds: float = 60.0, seed: int = 0, soundfont: Path | None = None, workers: int = 2,
                progress: Callable[[float, str], None] | None = None,
                cancel: threading.Event | None = None, real_dir: Path | None = None, n_real_train: int = 0,
                n_real_valid: int = 0, n_unpaired_real: int = 0, loudness_stats: Path | None = None,
                classic: bool = False) -> dict:
    """Generate the whole corpus into ``out``; returns (and writes) the manifest dict.

    ``progress(fraction, track_name)`` is called after each track; ``cancel`` is checked after each track (and
    before the first), raising :class:`SeparationCancelled` and stopping the workers. ``real_dir`` (made by
    ``shotoku dataset fetch``) adds the real-accompaniment pools (``n_real_*``), GM banks and recorded kits.
    """
    sf_path = rd.check_tools(soundfont)
    out = Path(out)
    if (n_real_train or n_real_valid or n_unpaired_real) and (real_dir is None or classic):
        raise DatasetError(None, "songs over real accompaniment need a real-audio folder (shotoku dataset fetch) "
                           "and the version-2 generator")
    config = None if classic else _v2_config(sf_path, real_dir, loudness_stats)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"train": n_train, "valid": n_valid, "test": n_test, "unpaired/mixtures": n_unpaired,
              "unpaired/vocals": n_unpaired, "unpaired/instrumental": n_unpaired, "train_realacc": n_real_train,
              "valid_realacc": n_real_valid, "unpaired/real_mixtures": n_unpaired_real}
    jobs = [(str(out), pool, i, seed, float(seconds)) for pool in POOLS for i in range(counts[pool])]
    entries: list[dict] = []
    # Fork is fast and needs no `if __name__ == "__main__"` guard, but a child forked from a process that has
    # already run a FluidSynth synth hangs on a lock copied mid-use: then (tests, scripts) spawn instead.
    ctx = mp.get_context("spawn" if rd.PartRenderer.used_in_this_process() else "fork")
    pool_obj = ctx.Pool(workers, initializer=_init_worker, initargs=(str(sf_path), config))
    iterator = pool_obj.imap_unordered(make_track, jobs, chunksize=1)
    try:
        if cancel is not None and cancel.is_set():
            raise SeparationCancelled("corpus generation cancelled")
        for done, entry in enumerate(iterator, start=1):
            if cancel is not None and cancel.is_set():
                raise SeparationCancelled("corpus generation cancelled")
            entries.append(entry)
            if progress is not None:
                progress(done / len(jobs), entry["name"])
    except BaseException:  # a failed track or Ctrl-C: stop the workers now rather than finish the queue
        pool_obj.terminate()
        raise
    finally:
        pool_obj.close()
        pool_obj.join()
    entries.sort(key=lambda e: (POOLS.index(e["pool"]), e["index"]))
    manifest = {
        "generator": "shotoku.synth", "version": 1 if classic else GENERATOR_VERSION, "seed": seed,
        "seconds": seconds, "samplerate": rd.SAMPLERATE, "soundfont": sf_path.name,
        "counts": {k: v for k, v in counts.items() if v or k in POOLS[:6]},
        "layout": "MUSDB18-HQ: <split>/<track>/{mixture,drums,bass,other,vocals}.wav, float32 WAV; "
                  "<split>_realacc/<track>/{mixture,vocals,accompaniment}.wav + track.json (known stems)",
    }
    if config is not None:
        manifest["sounds"] = config["timbres"] | {"soundfonts": {k: Path(v).name for k, v in
                                                                 config["timbres"]["soundfonts"].items()},
                                                  "drum_sf2": {k: Path(v).name for k, v in
                                                               config["timbres"]["drum_sf2"].items()},
                                                  "kits": sorted(config["timbres"]["kits"])}
        manifest["loudness"] = config["loudness"]
        manifest["real"] = config.get("real")
    manifest["tracks"] = entries
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=_json_default) + "\n")
    return manifest


def _v2_config(soundfont: Path, real_dir: Path | None, loudness_stats: Path | None) -> dict:
    """What every worker of a version-2 corpus renders with (decided once, here, so all workers agree)."""
    import hashlib

    from engine.data.synth import festival
    from engine.data.synth.loudness import LoudnessStats
    from engine.data.synth.timbres import discover

    try:
        import pedalboard  # noqa: F401
        import pyloudnorm  # noqa: F401
    except ImportError as err:
        raise DatasetError(None, f"the mixing chain needs pedalboard and pyloudnorm ({err}); "
                           "`pip install pedalboard pyloudnorm` (or use --classic)") from err
    t = discover(Path(soundfont), real_dir, festival.available_voices())
    config = {"classic": False, "loudness_stats": str(loudness_stats) if loudness_stats else None,
              "loudness": LoudnessStats(loudness_stats).to_json(), "real_dir": str(real_dir) if real_dir else None,
              "timbres": {"soundfonts": {k: str(v) for k, v in t.soundfonts.items()},
                          "drum_sf2": {k: str(v) for k, v in t.drum_sf2.items()},
                          "kits": {k: str(v) for k, v in t.kits.items()}, "kit_roles": t.kit_roles,
                          "festival_voices": list(t.festival_voices), "licences": t.licences}}
    if real_dir is not None:
        from engine.data.real.fetch import MANIFEST, load_manifest

        real = load_manifest(real_dir)
        config["real"] = {"manifest_sha256": hashlib.sha256((Path(real_dir) / MANIFEST).read_bytes()).hexdigest(),
                          "splits": real["splits"]}
    return config


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    raise DatasetError(None, f"cannot store {type(obj).__name__} in the manifest")
