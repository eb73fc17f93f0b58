"""Tables in the shape of the semi-supervised paper's Table 1 and Table 3, from trained runs.

Table 1 (methods): the mixture itself (half to each stem: what a separator must beat; NES starts there),
semi-supervised NMF, GAN-only masking, NES, the semi-supervised masking network (trained on the synthetic pools
and, if run, on the real pools and on the shared-piece pools), its supervised twin, our supervised default model,
the IRM oracle, and the band-limit ceiling (the true vocals through the network's 20480 Hz band and back: what
assigning everything above 10.24 kHz to the accompaniment costs at best). Table 3 (ablation): the method and its runs
without R1, R2, R3, R4, GAN_A, GAN_C and both GANs, each trained with the same budget.

Each row is median SDR and SIR of the vocals (and SDR of the accompaniment) over tracks, BSS Eval v4 with
museval's convention (1 s windows, median over the windows of a track, then median over tracks;
``engine.evaluate.bss_eval``), on two sets: the synthetic ``test`` split and the real-accompaniment check
(``shotoku dataset check``; evaluation only).

SIR is the scale-invariant one (Le Roux et al. 2019, "SDR - half-baked or well done?"): the same windows, with
one-tap projections (``filters_len=1``) instead of museval's 512-tap filters. With 512 taps the projection onto
all references is ill-conditioned when a reference has no energy in part of the band, as the real pieces do
(the first check excerpt's accompaniment is 147 dB down at 20 kHz): ours and museval 0.4.1 agree to 0.01 dB and
both give the IRM oracle a vocals SIR of -4.6 dB beside an SDR of 15.1 dB (SIR below SDR: the interference and
artefact projections cancel). One tap gives 30.1 dB there; 32 taps 1.3, 128 taps -3.3. SDR stays museval's.

A run is ``RUNS/<name>/{config.json, best.safetensors}``
(``shotoku train <name>``; NMF: ``python -m engine.models.nmf fit``); a missing one is printed as such.

Usage::

    .venv/bin/python bench/unpaired.py --data corpus --check /work/data/check --seconds 30 --threads 1
    .venv/bin/python bench/unpaired.py --tables 1 --rows semisup-shared @irm ...   # only those Table 1 rows
    .venv/bin/python bench/unpaired.py --smoke          # tiny random models on generated songs (seconds)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Table 1 rows: (label, run name or a special source).
TABLE1 = [
    ("Mixture, half to each stem", "@half"),
    ("NMF", "nmf"),
    ("GAN", "gan_mask"),
    ("NES", "nes"),
    ("Ours (semi-supervised)", "semisup"),
    ("Ours, real pools", "semisup-real"),
    ("Ours, real pools, discriminators first", "semisup-real-dpre"),
    ("Ours, shared-piece pools", "semisup-shared"),
    ("Supervised twin", "semisup-supervised"),
    ("Our supervised default", "@default"),
    ("IRM oracle", "@irm"),
    ("Band-limit ceiling", "@band"),
]
#: Table 3 rows.
TABLE3 = [
    ("All losses", "semisup"),
    ("w/o R1", "semisup-wo-r1"),
    ("w/o R2", "semisup-wo-r2"),
    ("w/o R3", "semisup-wo-r3"),
    ("w/o R4", "semisup-wo-r4"),
    ("w/o GAN_A", "semisup-wo-gana"),
    ("w/o GAN_C", "semisup-wo-ganc"),
    ("w/o GAN_A & GAN_C", "semisup-wo-gans"),
]
Track = tuple[
    str, np.ndarray, np.ndarray, int
]  # name, mixture (c, n), references (2: vocals, acc; c, n), rate
Estimator = Callable[[np.ndarray, int, np.ndarray], np.ndarray]  # mixture, rate, references -> (2, c, n)


def synthetic_tracks(data: Path, seconds: float, limit: int) -> Iterator[Track]:
    """The ``test`` split: vocals and accompaniment (drums + bass + other)."""
    from engine.data.musdb import iter_tracks

    for index, (name, mixture, stems, rate) in enumerate(iter_tracks(data, "test")):
        if limit and index >= limit:
            return
        n = int(seconds * rate) if seconds else mixture.shape[-1]
        acc = stems["drums"] + stems["bass"] + stems["other"]
        yield name, mixture[:, :n], np.stack([stems["vocals"][:, :n], acc[:, :n]]), rate


def check_tracks(check: Path, seconds: float, limit: int) -> Iterator[Track]:
    """The real-accompaniment check excerpts (``CHECK/check/<piece>_<k>/``)."""
    from engine.data.known import iter_known_tracks

    for index, (name, mixture, stems, rate) in enumerate(iter_known_tracks(check, "check")):
        if limit and index >= limit:
            return
        n = int(seconds * rate) if seconds else mixture.shape[-1]
        yield name, mixture[:, :n], np.stack([stems["vocals"][:, :n], stems["accompaniment"][:, :n]]), rate


def _two_stems(separator: object) -> Estimator:
    def run(mixture: np.ndarray, rate: int, references: np.ndarray) -> np.ndarray:
        out = separator.separate(
            mixture,
            rate,
            two_stems="vocals",  # type: ignore[attr-defined]
            references={"vocals": references[0], "accompaniment": references[1]},
        )
        return np.stack([out["vocals"], out["no_vocals"]])

    return run


def estimator_for(source: str, runs: Path, threads: int) -> tuple[Estimator | None, str]:
    """The estimator of one row and a note (why it is missing, or what it is)."""
    from engine.separation.separator import Separator

    if source == "@half":
        return (lambda mixture, rate, references: np.stack([mixture / 2, mixture / 2])), "no separation"
    if source == "@band":
        import torch

        from engine.models.semisup import NETWORK_RATE, resample

        def band(mixture: np.ndarray, rate: int, references: np.ndarray) -> np.ndarray:
            low = resample(torch.from_numpy(references[0]), rate, NETWORK_RATE)
            vocals = resample(low, NETWORK_RATE, rate).numpy()[..., : mixture.shape[-1]]
            return np.stack([vocals, mixture - vocals])

        return band, "true vocals band-limited to 10.24 kHz"
    if source == "@irm":
        from engine.models.catalogue import build_model

        model = build_model("oracle_mask", {"mask": "irm", "sources": ["vocals", "accompaniment"]})
        return _two_stems(Separator(model, device="cpu", n_threads=threads)), "oracle"
    if source == "@default":
        from engine.models.catalogue import default_model_name, load_model

        name = default_model_name()
        return _two_stems(Separator(load_model(name), device="cpu", n_threads=threads)), f"shipped {name}"
    run_dir = runs / source
    if not (run_dir / "best.safetensors").is_file():
        return None, f"not trained ({run_dir.name}/best.safetensors missing)"
    from engine.train.export import load_run

    _, model = load_run(run_dir)
    return _two_stems(Separator(model, device="cpu", n_threads=threads)), f"run {run_dir.name}"


#: BSS Eval distortion-filter taps (museval: 512); the smoke run uses fewer.
FILTERS_LEN = {"value": 512}


def score(estimate: Estimator, tracks: list[Track]) -> dict[str, float]:
    """Median over tracks of the per-track medians: vocals SDR/SIR, accompaniment SDR; and the seconds it took."""
    from engine.evaluate.bss_eval import bss_eval_v4

    rows = []
    start = time.perf_counter()
    for _, mixture, references, rate in tracks:
        estimated = estimate(mixture, rate, references)
        frames = bss_eval_v4(references, estimated, window=rate, hop=rate, filters_len=FILTERS_LEN["value"])
        one_tap = bss_eval_v4(references, estimated, window=rate, hop=rate, filters_len=1)  # SI-SIR (docstring)
        with np.errstate(all="ignore"):
            rows.append(
                [np.nanmedian(frames.sdr[0]), np.nanmedian(one_tap.sir[0]), np.nanmedian(frames.sdr[1])]
            )
    values = np.nanmedian(np.array(rows, dtype=float), axis=0) if rows else [np.nan] * 3
    return {
        "vocals_SDR": float(values[0]),
        "vocals_SIR": float(values[1]),
        "accompaniment_SDR": float(values[2]),
        "n_tracks": len(rows),
        "seconds": round(time.perf_counter() - start, 1),
    }


def table(
    title: str,
    rows: list[tuple[str, str]],
    sets: dict[str, list[Track]],
    runs: Path,
    threads: int,
    cache: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Score every row on every set and print one markdown table; returns ``{label: {set: scores, note}}``
    (``cache``: results by source, shared between tables)."""
    cache = {} if cache is None else cache
    results: dict[str, dict] = {}
    for label, source in rows:
        if source not in cache:
            estimate, note = estimator_for(source, runs, threads)
            cache[source] = {"source": source, "note": note}
            for set_name, tracks in sets.items():
                cache[source][set_name] = score(estimate, tracks) if estimate is not None else None
        results[label] = cache[source]
    header = " | ".join(f"{s} vocals SDR | {s} vocals SIR | {s} acc. SDR" for s in sets)
    print(f"\n{title}\n\n| approach | {header} | note |\n|---|" + "---|" * (3 * len(sets) + 1))
    for label, result in results.items():
        cells = []
        for set_name in sets:
            scores = result[set_name]
            cells += (
                ["-"] * 3
                if scores is None
                else [f"{scores[k]:.1f}" for k in ("vocals_SDR", "vocals_SIR", "accompaniment_SDR")]
            )
        print(f"| {label} | {' | '.join(cells)} | {result['note']} |")
    return results


def _smoke_inputs(folder: Path) -> tuple[Path, Path, Path]:
    """A two-song corpus, a one-excerpt check set and tiny random runs (semisup, nmf) under ``folder``."""
    import soundfile as sf
    import torch

    from engine.atomic import atomic_write_json
    from engine.models.catalogue import build_model
    from engine.models.weights import save_state

    rng = np.random.default_rng(0)
    t = np.arange(2 * 44100) / 44100
    for split, names in (("test", ["s0"]), ("check", ["c0"])):
        for name in names:
            stems = {
                "vocals": 0.2 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) * (1 + np.sin(3 * t)),
                "drums": 0.1 * rng.standard_normal(t.size),
                "bass": 0.2 * np.sin(2 * np.pi * 60 * t),
                "other": 0.1 * np.sin(2 * np.pi * 1500 * t),
            }
            root = folder / ("corpus" if split == "test" else "check")
            track = root / split / name
            track.mkdir(parents=True)
            stems = {k: np.stack([v, 0.8 * v]).astype(np.float32) for k, v in stems.items()}
            if split == "check":
                stems = {
                    "vocals": stems["vocals"],
                    "accompaniment": stems["drums"] + stems["bass"] + stems["other"],
                }
                atomic_write_json(
                    track / "track.json", {"kind": "real_accompaniment", "known": ["vocals", "accompaniment"]}
                )
            for stem, audio in stems.items():
                sf.write(str(track / f"{stem}.wav"), audio.T, 44100, subtype="FLOAT")
            sf.write(str(track / "mixture.wav"), sum(stems.values()).T, 44100, subtype="FLOAT")
    runs = folder / "runs"
    tiny = {
        "encoder_channels": [2, 4, 4],
        "upsample_channels": [4, 4],
        "n_residual": 1,
        "style_dim": 2,
        "mlp_dim": 8,
        "segment_seconds": 1.5,
    }
    torch.manual_seed(0)
    for name, architecture, config in (
        ("semisup", "semisup", tiny),
        ("nmf", "nmf-semisup", {"iterations": 10}),
    ):
        (runs / name).mkdir(parents=True)
        save_state(
            build_model(architecture, config).state_dict(), runs / name / "best.safetensors", dtype=None
        )
        atomic_write_json(runs / name / "config.json", {"architecture": architecture, "model": config})
    return folder / "corpus", folder / "check", runs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT / "corpus", help="corpus with the synthetic test split"
    )
    parser.add_argument("--check", type=Path, default=None, help="`shotoku dataset check` folder (optional)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--seconds", type=float, default=30.0, help="first seconds of each track (0: whole)")
    parser.add_argument("--tracks", type=int, default=0, help="at most this many tracks per set (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tables", nargs="+", default=["1", "3"], choices=["1", "3"])
    parser.add_argument("--rows", nargs="+", default=None, metavar="RUN",
                        help="only these Table 1 rows, by run name (e.g. semisup-shared @irm)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file of every score")
    parser.add_argument("--smoke", action="store_true", help="tiny random models on generated songs")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="unpaired-smoke-") as scratch:
        table1 = TABLE1 if args.rows is None else [row for row in TABLE1 if row[1] in args.rows]
        if args.rows is not None and len(table1) != len(set(args.rows)):
            parser.error(f"--rows: not a Table 1 row: {sorted(set(args.rows) - {row[1] for row in TABLE1})}")
        if args.smoke:
            args.data, args.check, args.runs = _smoke_inputs(Path(scratch))
            args.seconds = 0.0
            FILTERS_LEN["value"] = 32  # the smoke checks the shapes, not museval's numbers
            table1 = [
                row for row in table1 if row[1] != "@default"
            ]  # the shipped model is not what is smoked
        sets = {"synthetic test": list(synthetic_tracks(args.data, args.seconds, args.tracks))}
        if args.check is not None:
            sets["real check"] = list(check_tracks(args.check, args.seconds, args.tracks))
        print(
            f"sets: {', '.join(f'{k} ({len(v)} tracks)' for k, v in sets.items())}; first {args.seconds or 'all'} s"
        )
        results: dict = {}
        cache: dict[str, dict] = {}
        if "1" in args.tables:
            results["table1"] = table(
                "Table 1: median SDR (BSS Eval v4) / SI-SIR (dB)", table1, sets, args.runs, args.threads, cache
            )
        if "3" in args.tables:
            results["table3"] = table(
                "Table 3: ablation, median SDR / SI-SIR (dB)", TABLE3, sets, args.runs, args.threads, cache
            )
    if args.out is not None:
        from engine.atomic import atomic_write_json

        atomic_write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
