"""Separation quality on the synthetic test split: BSS Eval v4 SDR (museval convention: median over 1 s windows,
then median over tracks) and uSDR (whole-track, mean over tracks) per stem, for every shipped model, the "best
quality" path (``engine.separation.quality``), the IRM oracle (upper bound) and the unprocessed mixture (lower
bound), all in one run on the same tracks.

Usage (the whole split: 20 tracks x 60 s; see the README for the duration)::

    .venv/bin/python bench/quality.py --data corpus --wiener 1 --best
    .venv/bin/python bench/quality.py --data corpus --models openunmix mmdensenet --ensemble openunmix mmdensenet
    .venv/bin/python bench/quality.py --data corpus --runs runs/bsrnn     # an unexported training run too
    .venv/bin/python bench/quality.py --data corpus --tracks 2 --seconds 5 --models tiny --best tiny --smoke  # a test

Prints the command, the SDR table in the README's shape, the uSDR table and the card fields each model's scores
go in (``scores.sdr_median``, ``scores.sdr_median_wiener<N>``, ``scores.ensembles``: what
``plan_separation("best", ...)`` chooses from). Writes ``scores.json``, ``scores.md``, ``summary.json`` and
(without ``--no-plots``) ``boxplot_<stem>.png`` into ``--out``. Every method runs through the chunked engine
(``Separator`` or the best path's separator) exactly as the app runs it.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import STEM_NAMES  # noqa: E402


@dataclass
class Method:
    """One row of the table: ``separator`` is None for the mixture itself (the lower bound)."""

    key: str
    label: str
    separator: object | None
    card_key: tuple[str, str] | None = None  # (model, scores key) the row's SDR belongs in, when it is one


def _shipped_neural() -> list[str]:
    from engine.models.catalogue import list_cards

    return [c.name for c in list_cards() if c.kind == "neural"]  # default first


def build_methods(args: argparse.Namespace) -> list[Method]:
    """The rows, in table order: mixture, IRM oracle, the models (and their Wiener variants), ensembles, best."""
    from engine.models.catalogue import default_model_name, load_model
    from engine.separation.quality import ShiftedEnsembleSeparator, plan_separation
    from engine.separation.separator import Separator
    from engine.train.export import load_run

    threads = args.threads
    default = default_model_name()
    methods = [Method("mixture", "mixture (lower bound)", None)]
    if not args.no_oracle:
        methods.append(
            Method("irm", "IRM oracle (upper bound)", Separator(load_model("irm"), "cpu", n_threads=threads))
        )
    models = args.models if args.models is not None else _shipped_neural()
    loaded: list[tuple[str, object]] = [(name, load_model(name)) for name in models]
    loaded += [(Path(run).name, load_run(run)[1]) for run in args.runs or []]
    for name, model in loaded:
        label = f"{name} (default: fast)" if name == default else name
        own = getattr(model, "wiener_iterations", None)
        methods.append(Method(name, label, Separator(model, "cpu", n_threads=threads), (name, "sdr_median")))
        if args.wiener > 0 and own is not None and own != args.wiener:
            filtered = copy.deepcopy(model)
            filtered.wiener_iterations = args.wiener
            iterations = f"{args.wiener} EM iteration{'s' if args.wiener != 1 else ''}"
            methods.append(Method(f"{name}+wiener{args.wiener}", f"{name} + Wiener ({iterations})",
                                  Separator(filtered, "cpu", n_threads=threads),
                                  (name, f"sdr_median_wiener{args.wiener}")))  # fmt: skip
    if args.ensemble:
        members = [load_model(name) for name in args.ensemble]
        for model in members:
            if args.wiener > 0 and hasattr(model, "wiener_iterations"):
                model.wiener_iterations = args.wiener
        wiener = f", Wiener {args.wiener}" if args.wiener > 0 else ""
        methods.append(Method("ensemble", f"average of {' + '.join(args.ensemble)}{wiener}",
                              ShiftedEnsembleSeparator(members, "cpu", n_threads=threads, shifts=0)))  # fmt: skip
    if args.best is not None:
        plan = plan_separation("best", args.best or None, 0.0, "cpu", threads=threads)
        wieners = sorted({w for w in plan.wiener_iterations if w is not None})
        wiener = f", Wiener {'/'.join(map(str, wieners))}" if wieners else ""
        label = f"best quality: {' + '.join(plan.models)}, {plan.shifts} shifts{wiener}"
        methods.append(Method("best", label, plan.build(threads)))
    return methods


def _cut(audio: np.ndarray, n: int) -> np.ndarray:
    return audio[:, :n] if n else audio


def run_methods(
    args: argparse.Namespace, methods: list[Method]
) -> tuple[dict[str, list], dict[str, float], int]:
    """Separate and score every track with every method: ``(results {key: [TrackScores]}, seconds {key}, n)``."""
    from engine.data.musdb import iter_tracks
    from engine.evaluate import evaluate_track

    results: dict[str, list] = {m.key: [] for m in methods}
    seconds: dict[str, float] = {m.key: 0.0 for m in methods}
    n_done = 0
    for name, mixture, stems, samplerate in iter_tracks(args.data, args.split):
        if args.tracks and n_done >= args.tracks:
            break
        n = int(args.seconds * samplerate) if args.seconds > 0 else 0
        mixture = _cut(mixture, n)
        references = {k: _cut(stems[k], n) for k in STEM_NAMES if k in stems}
        for method in methods:
            start = time.perf_counter()
            if method.separator is None:
                estimates = {k: mixture for k in references}
            elif method.separator.needs_references:
                estimates = method.separator.separate(mixture, samplerate, references=references)
            else:
                estimates = method.separator.separate(mixture, samplerate)
            seconds[method.key] += time.perf_counter() - start
            results[method.key].append(
                evaluate_track(references, estimates, samplerate, name=name, filters_len=args.filters_len)
            )
        n_done += 1
        print(f"{name} done ({n_done})", file=sys.stderr)
    return results, seconds, n_done


def table(rows: dict[str, dict[str, float]], labels: dict[str, str], stems: list[str]) -> str:
    """``| method | <stems> | mean |`` in the README's shape, one row per method (``rows[key][stem]`` in dB)."""
    lines = ["| method | " + " | ".join(stems) + " | mean |", "|---|" + "---:|" * (len(stems) + 1)]
    for key, values in rows.items():
        cells = [values.get(s, float("nan")) for s in stems]
        mean = float(np.mean(cells)) if cells and not np.isnan(cells).any() else float("nan")
        lines.append(f"| {labels[key]} | " + " | ".join(f"{v:.2f}" for v in cells) + f" | {mean:.2f} |")
    return "\n".join(lines)


def test_set(args: argparse.Namespace, n_tracks: int) -> dict:
    """The ``scores.test_set`` a card records (compared by ``plan_separation`` before it compares scores)."""
    data = args.data.resolve()
    shown = str(data.relative_to(ROOT)) if data.is_relative_to(ROOT) else str(args.data)
    return {"data": shown, "split": args.split, "tracks": n_tracks, "seconds": args.seconds or None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="corpus root (MUSDB18-HQ layout)")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--models", nargs="*", default=None, help="shipped model names (default: every neural card)"
    )
    parser.add_argument("--runs", nargs="*", default=None, help="training run folders (best weights)")
    parser.add_argument(
        "--wiener", type=int, default=0, help="also run spectrogram models with N EM iterations"
    )
    parser.add_argument(
        "--ensemble",
        nargs="+",
        default=None,
        metavar="MODEL",
        help="also an average of these models (no shifts; with --wiener N on their mask models)",
    )
    parser.add_argument(
        "--best",
        nargs="?",
        const="",
        default=None,
        metavar="MODEL",
        help="also the 'best quality' path (plan_separation's choice, or MODEL with best settings)",
    )
    parser.add_argument("--no-oracle", action="store_true", help="leave out the IRM oracle row")
    parser.add_argument("--tracks", type=int, default=0, help="evaluate only the first N tracks (0: all)")
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="cut each track to its first S seconds (0: all)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-plots", action="store_true", help="skip the box plots")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a test run: 32-tap BSS Eval distortion filters (museval's are 512), so the scores "
        "are not comparable to any table",
    )
    args = parser.parse_args(argv)
    args.filters_len = 32 if args.smoke else 512
    if args.tracks < 0 or args.seconds < 0 or args.threads < 1:
        parser.error("--tracks and --seconds must be >= 0 and --threads >= 1")
    torch.set_num_threads(args.threads)
    from engine.atomic import atomic_write_json, atomic_write_text
    from engine.errors import ShotokuError
    from engine.evaluate import summary, write_json, write_reports
    from engine.evaluate.report import markdown_report

    command = "python bench/quality.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        methods = build_methods(args)
        results, seconds, n_done = run_methods(args, methods)
    except ShotokuError as err:
        print(f"bench/quality.py: error: {err}", file=sys.stderr)
        return 1
    if n_done == 0:
        print(f"bench/quality.py: error: no tracks in {args.data}/{args.split}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    if args.no_plots:
        write_json(args.out / "scores.json", results)
        atomic_write_text(args.out / "scores.md", markdown_report(results))
    else:
        write_reports(results, args.out, metric="SDR")
    sdr = summary(results, metric="SDR", aggregate="median")
    usdr = summary(results, metric="uSDR", aggregate="mean")
    stems = [s for s in STEM_NAMES if any(s in row for row in sdr.values())]
    labels = {m.key: m.label for m in methods}
    cut = f"first {args.seconds:g} s of each" if args.seconds else "whole tracks"
    if args.smoke:
        cut += " (SMOKE TEST: 32-tap distortion filters, not comparable to any table)"
    print(f"Command: `{command}`\n")
    print(f"SDR in dB (BSS Eval v4, median over 1 s frames, median over tracks), {n_done} tracks of "
          f"{args.data}/{args.split}, {cut}:\n")  # fmt: skip
    print(table(sdr, labels, stems))
    print("\nuSDR in dB (whole track, mean over tracks):\n")
    print(table(usdr, labels, stems))
    where = test_set(args, n_done)
    cards: dict[str, dict] = {}
    for method in methods:
        if method.card_key is not None:
            model, key = method.card_key
            entry = cards.setdefault(model, {"test_set": where, "command": command})
            entry[key] = {s: round(sdr[method.key][s], 2) for s in stems}
            if key == "sdr_median":
                entry["usdr_mean"] = {s: round(usdr[method.key][s], 2) for s in stems}
    if args.ensemble and "ensemble" in sdr:
        cards.setdefault(args.ensemble[0], {"test_set": where, "command": command})["ensembles"] = [{
            "members": list(args.ensemble), "wiener_iterations": args.wiener,
            "sdr_median": {s: round(sdr["ensemble"][s], 2) for s in stems}, "test_set": where}]  # fmt: skip
    atomic_write_json(args.out / "summary.json", {
        "command": command, "test_set": where, "methods": labels, "sdr_median": sdr, "usdr_mean": usdr,
        "separation_seconds": seconds, "card_scores": {} if args.smoke else cards, "smoke": args.smoke,
    })  # fmt: skip
    print(f"\nseparation seconds: {', '.join(f'{k} {v:.1f}' for k, v in seconds.items())}", file=sys.stderr)
    print(
        f"card scores (fields of each card's `scores`): {args.out / 'summary.json'} -> card_scores",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
