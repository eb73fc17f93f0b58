"""PROJET (engine/models/projet.py, papers/002): the slides' simulation, speed and memory, and the synthetic songs.

- **simulation** (the slides' "Simulation Setup"): four objects (the ``drums``, ``bass``, ``other``, ``vocals``
  stems of a test song, each summed to mono, a ``--seconds`` excerpt, 30 s as the paper) placed by the pan-delay
  model ``[cos phi s(t), sin phi s(t - tau)]`` and summed. Set 1: equal angles of 10, 20 and 30 degrees between the
  objects, centred on 45 degrees, no delay. Set 2: 20 degrees, and inter-channel delays of ``-D, -D/3, D/3, D``
  samples for the four objects (D = 3, 6, 12 samples: up to 0.27 ms at 44.1 kHz); PROJET's location grid then
  holds those delays and 0, its projections ``-D, 0, D``. SDR, SIR, ISR (BSS Eval v4, 1 s windows, median per
  object) of the object images, medians over every object of every mixture (the paper: 150 mixtures, 600
  objects; we have ``--songs`` test songs per setting). Objects are scored in PROJET's own order (left to right,
  as the sources were placed): no permutation search.
- **speed**: the shipped card through the chunked engine (``Separator``, 25 % overlap) on a 4-minute song, in a
  subprocess (``--threads``): wall time, real-time factor, peak RSS against RSS after imports.
- **songs**: the synthetic test songs as produced (stereo stems, each mixed with its own pans and widths): PROJET
  with J = 4 objects, each matched to one stem by the best permutation of mean SDR (an oracle assignment: PROJET
  names positions, not instruments), against the IRM oracle and the default model. SDR per stem, median.

Usage::

    .venv/bin/python bench/projet.py --data corpus --songs 20 --threads 1          # every table (the lead)
    .venv/bin/python bench/projet.py --tables simulation --songs 2 --seconds 10    # a few mixtures (minutes)
    .venv/bin/python bench/projet.py --smoke                                       # seconds
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEMS = ("drums", "bass", "other", "vocals")
ANGLES = (10.0, 20.0, 30.0)
DELAYS = (3, 6, 12)  # D in samples: the objects get -D, -D/3, D/3, D
METRICS = ("SDR", "SIR", "ISR")
DITHER = 1e-3


def place(sources: np.ndarray, degrees: float, delays: list[int]) -> np.ndarray:
    """``(n_objects, n)`` mono -> images ``(n_objects, 2, n)`` at equal angles centred on 45 degrees."""
    n_objects = len(sources)
    angles = [45.0 + (j - (n_objects - 1) / 2) * degrees for j in range(n_objects)]
    images = []
    for source, angle, delay in zip(sources, angles, delays, strict=True):
        right = np.zeros_like(source)
        if delay >= 0:
            right[delay:] = source[: source.size - delay]
        else:
            right[:delay] = source[-delay:]
        phi = math.radians(angle)
        images.append(np.stack([math.cos(phi) * source, math.sin(phi) * right]))
    return np.stack(images).astype(np.float32)


def bss_medians(references: np.ndarray, estimates: np.ndarray, samplerate: int, filters_len: int,
                dither: float = DITHER) -> dict:
    """Per-object medians of SDR, SIR, ISR over 1 s windows, ``{metric: (n_objects,)}``.

    A pan/delay image is one signal in both channels (scaled, delayed): its two channels' delayed copies are
    linearly dependent, BSS Eval's least-squares systems are singular and SIR/ISR come out as noise (-90 dB in a
    first run). Independent white noise ``dither`` times each reference channel's RMS (-60 dB) is added to the
    references so the systems are well posed; it moves an SDR by far less than the 0.01 dB printed.
    """
    from engine.evaluate.bss_eval import bss_eval_v4

    if dither > 0:
        rng = np.random.default_rng(0)
        rms = np.sqrt(np.mean(references.astype(np.float64) ** 2, axis=-1, keepdims=True))
        references = (references + dither * rms * rng.standard_normal(references.shape)).astype(np.float32)
    medians = bss_eval_v4(references, estimates, samplerate, samplerate, filters_len).medians()
    return {m: medians[m] for m in METRICS}


def songs(data: Path, n_songs: int) -> list[Path]:
    tracks = sorted(p for p in (data / "test").iterdir() if (p / "mixture.wav").is_file())
    if not tracks:
        raise SystemExit(f"bench/projet.py: no test songs in {data / 'test'}")
    return tracks[:n_songs]


def load_stems(track: Path, seconds: float) -> tuple[dict[str, np.ndarray], int]:
    """The track's stems ``(2, n)`` over a ``seconds`` excerpt from the middle, and the samplerate."""
    from engine.audio import load_audio

    stems, rate = {}, 0
    for stem in STEMS:
        audio = load_audio(track / f"{stem}.wav")
        rate = audio.samplerate
        samples = audio.samples
        n = min(samples.shape[-1], int(seconds * rate))
        start = (samples.shape[-1] - n) // 2
        stems[stem] = np.ascontiguousarray(samples[:, start : start + n], dtype=np.float32)
    return stems, rate


def projet_separator(n_objects: int, delay_grid: list[int] | None, samplerate: int, iterations: int, threads: int):
    from engine.models.catalogue import build_model, get_card
    from engine.separation.separator import Separator

    config = dict(get_card("projet").config, n_objects=n_objects, iterations=iterations, samplerate=samplerate)
    if delay_grid:
        config["delays_ms"] = [1000.0 * d / samplerate for d in delay_grid]
        d = max(abs(x) for x in delay_grid)
        config["projection_delays_ms"] = [1000.0 * x / samplerate for x in (-d, 0, d)]
    return Separator(build_model("projet", config), device="cpu", n_threads=threads)


def table_simulation(args: argparse.Namespace) -> None:
    settings = [(f"{a:g} deg, no delay", a, [0, 0, 0, 0]) for a in ANGLES]
    settings += [(f"20 deg, delays +-{d} samples", 20.0, [-d, -d // 3, d // 3, d]) for d in DELAYS]
    tracks = songs(args.data, args.songs)
    print(f"\n### PROJET simulation ({len(tracks)} mixtures per setting, {len(STEMS)} objects each, "
          f"{args.seconds:g} s, {args.iterations} iterations)\n")
    print("| setting | mixtures | SDR | SIR | ISR | mixture SDR |")
    print("|---|---|---|---|---|---|")
    results = {}
    for label, degrees, delays in settings:
        values: dict[str, list[float]] = {m: [] for m in (*METRICS, "mixture")}
        for track in tracks:
            stems, rate = load_stems(track, args.seconds)
            images = place(np.stack([stems[s].mean(0) for s in STEMS]), degrees, delays)
            mix = images.sum(0)
            grid = sorted(set(delays) | {0}) if any(delays) else None
            separator = projet_separator(len(STEMS), grid, rate, args.iterations, args.threads)
            out = separator.separate(mix, rate)
            estimates = np.stack([out[name] for name in separator.sources])
            medians = bss_medians(images, estimates, rate, args.filters_len)
            for m in METRICS:
                values[m] += list(medians[m])
            values["mixture"] += list(bss_medians(images, np.repeat(mix[None] / 4, 4, 0), rate,
                                                  args.filters_len)["SDR"])
        row = {m: float(np.nanmedian(v)) for m, v in values.items()}
        results[label] = row
        print(f"| {label} | {len(tracks)} | {row['SDR']:.2f} | {row['SIR']:.2f} | {row['ISR']:.2f} | "
              f"{row['mixture']:.2f} |", flush=True)
    write_json(args, "simulation", results)


def _speed_worker(minutes: float, threads: int, data: Path | None) -> None:
    """In a subprocess: separate a ``minutes`` song with the shipped card; print one JSON line."""
    import torch

    from engine.models.catalogue import load_model
    from engine.separation.separator import Separator

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = int(minutes * 60 * 44100)
    tracks = songs(data, 4) if data is not None and (data / "test").is_dir() else []
    if tracks:
        from engine.audio import load_audio

        pieces = [load_audio(t / "mixture.wav").samples for t in tracks]
        song = np.concatenate(pieces * math.ceil(n / sum(p.shape[-1] for p in pieces)), axis=1)[:, :n]
    else:
        song = (0.1 * np.random.default_rng(0).standard_normal((2, n))).astype(np.float32)
    song = np.ascontiguousarray(song, dtype=np.float32)
    torch.set_num_threads(threads)
    separator = Separator(load_model("projet"), device="cpu", n_threads=threads)
    started = time.perf_counter()
    separator.separate(song, 44100)
    wall = time.perf_counter() - started
    print(json.dumps({"seconds": minutes * 60, "wall": wall, "rss_import_mb": rss_import,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def table_speed(args: argparse.Namespace) -> None:
    command = [sys.executable, __file__, "--speed-worker", str(args.minutes), "--threads", str(args.threads),
               "--data", str(args.data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench/projet.py: the speed run failed: {done.stderr.strip().splitlines()[-1:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n### PROJET speed and memory (shipped card, {args.threads} thread(s), load {_load()})\n")
    print("| song | wall s | x real time | peak RSS MB | RSS after imports MB |")
    print("|---|---|---|---|---|")
    print(f"| {row['seconds'] / 60:g} min | {row['wall']:.1f} | {row['seconds'] / row['wall']:.2f} | "
          f"{row['peak_rss_mb']:.0f} | {row['rss_import_mb']:.0f} |")
    write_json(args, "speed", row)


def table_songs(args: argparse.Namespace) -> None:
    from engine.models.catalogue import default_model_name, load_model
    from engine.separation.separator import Separator

    tracks = songs(args.data, args.songs)
    default = args.default or default_model_name()
    methods = ["PROJET (J=4, best permutation)", "IRM oracle", f"default ({default})"]
    per_method: dict[str, dict[str, list[float]]] = {m: {s: [] for s in STEMS} for m in methods}
    irm = Separator(load_model("irm"), device="cpu", n_threads=args.threads)
    neural = Separator(load_model(default), device="cpu", n_threads=args.threads)
    for track in tracks:
        stems, rate = load_stems(track, args.seconds)
        mix = sum(stems.values())
        references = np.stack([stems[s] for s in STEMS])
        separator = projet_separator(len(STEMS), None, rate, args.iterations, args.threads)
        out = separator.separate(mix, rate)
        objects = np.stack([out[name] for name in separator.sources])
        best = max(itertools.permutations(range(len(STEMS))),
                   key=lambda perm: np.nanmean(bss_medians(references, objects[list(perm)], rate, 32)["SDR"]))
        estimates = {methods[0]: objects[list(best)],
                     methods[1]: _stack(irm.separate(mix, rate, references=stems)),
                     methods[2]: _stack(neural.separate(mix, rate))}
        for method, estimate in estimates.items():
            sdr = bss_medians(references, estimate, rate, args.filters_len)["SDR"]
            for stem, value in zip(STEMS, sdr, strict=True):
                per_method[method][stem].append(float(value))
    print(f"\n### Synthetic test songs, their own stereo mix ({len(tracks)} songs, {args.seconds:g} s): SDR, median\n")
    print("| method | " + " | ".join(STEMS) + " |")
    print("|---|" + "---|" * len(STEMS))
    results = {}
    for method in methods:
        row = {s: float(np.nanmedian(v)) for s, v in per_method[method].items()}
        results[method] = row
        print(f"| {method} | " + " | ".join(f"{row[s]:.2f}" for s in STEMS) + " |", flush=True)
    write_json(args, "songs", results)


def _stack(stems: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([stems[s] for s in STEMS])


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def write_json(args: argparse.Namespace, table: str, results: dict) -> None:
    if args.out is not None:
        path = args.out / f"projet_{table}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        from engine.atomic import atomic_write_json

        atomic_write_json(path, {"table": table, "songs": args.songs, "seconds": args.seconds,
                                 "iterations": args.iterations, "results": results})


def smoke_corpus(folder: Path) -> Path:
    """Two tiny generated 'test songs' (noise bursts in distinct bands, one per stem) for ``--smoke``."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    for k in range(2):
        track = folder / "test" / f"smoke_{k}"
        track.mkdir(parents=True, exist_ok=True)
        n = 44100 * 3
        total = np.zeros((2, n), np.float32)
        for j, stem in enumerate(STEMS):
            tone = np.sin(2 * np.pi * (110 * 2**j + 37 * k) * np.arange(n) / 44100) * (rng.random(n) > 0.5)
            phi = math.radians(20 + 17 * j)
            image = np.stack([math.cos(phi) * tone, math.sin(phi) * tone]).astype(np.float32) * 0.2
            sf.write(track / f"{stem}.wav", image.T, 44100, subtype="FLOAT")
            total += image
        sf.write(track / "mixture.wav", total.T, 44100, subtype="FLOAT")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "corpus")
    parser.add_argument("--tables", nargs="*", default=["simulation", "speed", "songs"],
                        choices=["simulation", "speed", "songs"])
    parser.add_argument("--songs", type=int, default=20, help="test songs per setting (paper: 50 x 3 settings)")
    parser.add_argument("--seconds", type=float, default=30.0, help="excerpt length (paper: 30 s)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=4.0, help="song length of the speed table")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--filters-len", type=int, default=512, help="BSS Eval filter taps (museval: 512)")
    parser.add_argument("--default", default=None, help="the neural model of the songs table (default: the default)")
    parser.add_argument("--out", type=Path, default=None, help="write each table as JSON into this folder")
    parser.add_argument("--smoke", action="store_true", help="tiny generated songs, few iterations (seconds)")
    parser.add_argument("--speed-worker", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.speed_worker is not None:
        _speed_worker(args.speed_worker, args.threads, args.data)
        return 0
    if args.smoke:
        import tempfile

        args.data = smoke_corpus(Path(tempfile.mkdtemp(prefix="projet-smoke-")))
        args.songs, args.seconds, args.iterations, args.filters_len, args.minutes = 1, 3.0, 5, 32, 0.1
        args.tables = [t for t in args.tables if t != "songs"] if "--tables" not in (argv or sys.argv) else args.tables
    for table in args.tables:
        {"simulation": table_simulation, "speed": table_speed, "songs": table_songs}[table](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
