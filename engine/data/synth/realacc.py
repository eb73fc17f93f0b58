"""The real-accompaniment check set (``shotoku dataset check``): evaluation only, never training or tuning.

For every piece of the real ``check`` split, ``n_excerpts`` excerpts at evenly spaced positions get sung vocals
(a composed song's melody, its singers and vocal chain, levelled against the recording) and are written as
``out/check/<piece>_<k>/{mixture,vocals,accompaniment}.wav`` + ``track.json`` (mixture == vocals +
accompaniment exactly; the accompaniment is the recording scaled, no bus processing). The bare pieces, for the
vocal-leakage measure (energy of a model's vocals stem relative to its input), are copied byte for byte to
``out/instrumental/<piece>/mixture.flac``. ``out/check_manifest.json`` lists both with packages and licences.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.synth import render as rd

_WORKER: dict = {}


def check_seed(seed: int, piece: str, k: int) -> int:
    """The song seed of excerpt ``k`` of ``piece`` (independent of which other pieces exist)."""
    return int(hashlib.sha256(f"shotoku-check/{seed}/{piece}/{k}".encode()).hexdigest()[:15], 16)


def _init(soundfont: str, config: dict) -> None:
    from engine.data.synth import corpus
    from engine.data.synth.corpus import _init_worker

    _init_worker(soundfont, config)
    _WORKER.update(corpus._WORKER)


def _job(job: tuple[str, str, str, int, int, int, int, float]) -> dict:
    from engine.data.real.pool import RealPool
    from engine.data.synth.compose import compose
    from engine.data.synth.produce import produce_song
    from engine.data.synth.tracks import REALACC_META, write_realacc

    out, real_dir, piece_name, k, n_excerpts, seed, n_samples, seconds = job
    key = "pool:check"
    if key not in _WORKER:
        _WORKER[key] = RealPool(real_dir, "check")
    pool: RealPool = _WORKER[key]
    piece = next(p for p in pool.pieces if p.name == piece_name)
    edge = int(2.0 * rd.SAMPLERATE)
    span = max(piece.n_samples - n_samples - 2 * edge, 0)
    start = edge + int(span * (k + 1) / (n_excerpts + 1)) if span else 0
    accompaniment = pool.read(piece, start, n_samples)
    s = check_seed(seed, piece_name, k)
    song = compose(s, seconds)
    stems, params = produce_song(song, _WORKER["studio"], s, n_samples, accompaniment=accompaniment, bus=False)
    name = f"{piece_name}_{k}"
    where = {"piece": piece.name, "package": piece.package, "licence": piece.licence, "split": "check",
             "start_seconds": round(start / rd.SAMPLERATE, 3), "title": piece.title, "artist": piece.artist}
    write_realacc(Path(out) / "check" / name, stems, REALACC_META | {"accompaniment_source": where})
    return {"name": name, "seed": s, "n_samples": n_samples, "accompaniment_source": where,
            "voice": params["voice"], "singers": params.get("singers", {}), "master": params["master"]}


def make_check_set(out: Path, real_dir: Path, *, seconds: float = 30.0, n_excerpts: int = 2, seed: int = 0,
                   soundfont: Path | None = None, workers: int = 2,
                   progress: Callable[[float, str], None] | None = None) -> dict:
    """Write the check set into ``out``; returns (and writes) ``out/check_manifest.json``."""
    from engine.data.real.pool import RealPool
    from engine.data.synth.corpus import _v2_config

    sf_path = rd.check_tools(soundfont)
    out = Path(out)
    pool = RealPool(real_dir, "check")
    config = _v2_config(sf_path, real_dir, None)
    n_samples = int(round(seconds * rd.SAMPLERATE))
    jobs = [(str(out), str(real_dir), p.name, k, n_excerpts, seed, n_samples, float(seconds))
            for p in pool.pieces for k in range(n_excerpts)]
    out.mkdir(parents=True, exist_ok=True)
    instrumentals = []
    for p in pool.pieces:
        dest = out / "instrumental" / p.name / "mixture.flac"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p.file, dest)
        instrumentals.append({"name": p.name, "package": p.package, "licence": p.licence,
                              "seconds": round(p.n_samples / rd.SAMPLERATE, 3), "title": p.title})
    ctx = mp.get_context("spawn" if rd.PartRenderer.used_in_this_process() else "fork")
    entries = []
    with ctx.Pool(workers, initializer=_init, initargs=(str(sf_path), config)) as workers_pool:
        for done, entry in enumerate(workers_pool.imap_unordered(_job, jobs), start=1):
            entries.append(entry)
            if progress is not None:
                progress(done / max(len(jobs), 1), entry["name"])
    manifest = {"generator": "shotoku.check", "version": 1, "seed": seed, "seconds": seconds,
                "n_excerpts": n_excerpts, "real": config.get("real"),
                "layout": "check/<track>/{mixture,vocals,accompaniment}.wav + track.json; "
                          "instrumental/<piece>/mixture.flac (bare pieces, for vocal leakage)",
                "tracks": sorted(entries, key=lambda e: e["name"]), "instrumentals": instrumentals}
    (out / "check_manifest.json").write_text(json.dumps(manifest, indent=1, default=_json_default) + "\n")
    return manifest


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)
