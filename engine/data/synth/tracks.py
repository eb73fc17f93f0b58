"""One version-2 corpus track: compose, produce (:mod:`engine.data.synth.produce`) and write it for its pool.

Pools and what a track of each holds (all float32 44.1 kHz stereo WAV; every mixture is the exact float32 sum of
the stems written beside it or of its references):

- ``train``, ``valid``, ``test``: ``{mixture,drums,bass,other,vocals}.wav``;
- ``unpaired/mixtures``, ``unpaired/vocals``, ``unpaired/instrumental``: as in version 1;
- ``train_realacc``, ``valid_realacc``: ``{mixture,vocals,accompaniment}.wav`` + ``track.json`` (the known stems;
  the accompaniment is an excerpt of a real piece of the ``train`` / ``valid`` real split);
- ``unpaired/real_mixtures``: ``mixture.wav`` only (issue 12's S_A over ``unpaired_a`` pieces); its vocals and
  accompaniment go to ``refs/unpaired_real_mixtures/<track>/`` for evaluation, outside every training pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.data.synth import render as rd
from engine.data.synth.compose import compose
from engine.data.synth.produce import STEMS, mixture_of, produce_song

#: The real split each real-accompaniment pool draws its pieces from.
REAL_SPLIT = {"train_realacc": "train", "valid_realacc": "valid", "unpaired/real_mixtures": "unpaired_a"}
#: What a real-accompaniment track's ``track.json`` says (the loader's contract, see docs/DATA_API.md).
REALACC_META = {"kind": "real_accompaniment", "known": ["vocals", "accompaniment"],
                "unknown": ["drums", "bass", "other"],
                "note": "accompaniment is a real recording; drums/bass/other inside it are not known"}


def _save(path: Path, x: np.ndarray) -> None:
    from engine.data.synth.corpus import _save as save

    save(path, x, rd.SAMPLERATE)


def _pool(worker: dict, split: str):  # noqa: ANN202 (a RealPool)
    from engine.data.real.pool import RealPool

    key = f"pool:{split}"
    if key not in worker:
        worker[key] = RealPool(worker["config"]["real_dir"], split)
    return worker[key]


def write_realacc(folder: Path, stems: dict[str, np.ndarray], meta: dict) -> None:
    """``folder/{vocals,accompaniment,mixture}.wav`` and ``folder/track.json``."""
    _save(folder / "vocals.wav", stems["vocals"])
    _save(folder / "accompaniment.wav", stems["accompaniment"])
    _save(folder / "mixture.wav", mixture_of(stems))
    (folder / "track.json").write_text(json.dumps(meta, indent=1, default=float) + "\n")


def make_track_v2(worker: dict, out_dir: Path, pool: str, index: int, seed: int, seconds: float) -> dict:
    """Make one track of ``pool`` with song seed ``seed``; returns its manifest entry."""
    from engine.data.synth.corpus import write_stems

    studio = worker["studio"]
    n_samples = int(round(seconds * rd.SAMPLERATE))
    song = compose(seed, seconds)
    name = f"{pool.split('/')[-1]}_{index:04d}"
    entry: dict = {"name": name, "pool": pool, "index": index, "seed": seed, "n_samples": n_samples,
                   "samplerate": rd.SAMPLERATE}
    if pool in REAL_SPLIT:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 6]))
        accompaniment, where = _pool(worker, REAL_SPLIT[pool]).excerpt(rng, n_samples)
        stems, params = produce_song(song, studio, seed, n_samples, accompaniment=accompaniment)
        meta = REALACC_META | {"accompaniment_source": where}
        if pool == "unpaired/real_mixtures":
            _save(out_dir / pool / name / "mixture.wav", mixture_of(stems))
            write_realacc(out_dir / "refs" / "unpaired_real_mixtures" / name, stems, meta)
        else:
            write_realacc(out_dir / pool / name, stems, meta)
        entry |= {"known": REALACC_META["known"], "accompaniment_source": where}
    else:
        wanted = {"unpaired/vocals": ("vocals",), "unpaired/instrumental": ("drums", "bass", "other")}.get(pool, STEMS)
        stems, params = produce_song(song, studio, seed, n_samples, stems=wanted)
        write_stems(out_dir, pool, name, stems)
    return entry | {"song": song.summary(), "mixing": params}
