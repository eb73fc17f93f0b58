"""``shotoku evaluate --reference DIR --estimates DIR [...]``: score separated stems against the true stems.

Prints markdown tables (BSS Eval v4 SDR, uSDR and SI-SDR; medians over tracks, each header names its metric) and
writes ``scores.json``, ``scores.md`` and ``boxplot_<stem>.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import STEM_NAMES
from engine.evaluate.folders import evaluate_folders, find_tracks
from engine.evaluate.report import markdown_table, readable, write_reports
from engine.progress import ProgressBar

PRINTED_METRICS = ("SDR", "uSDR", "SI-SDR")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score separated stems against reference stems (BSS Eval v4, uSDR, SI-SDR)",
        description=(
            "Score each folder of estimates against the reference stems. Folders use the MUSDB18-HQ layout "
            "DIR/<track>/<stem>.wav, or hold one track's <stem>.wav (or '<name> - <stem>.wav') directly. "
            "SDR/SIR/SAR/ISR are BSS Eval v4 (museval: median of 1 s frames per track, median over tracks); "
            "uSDR is the whole-track SDR of the MDX challenges; SI-SDR is scale-invariant."
        ),
    )
    p.add_argument("--reference", type=Path, required=True, metavar="DIR", help="folder of true stems")
    p.add_argument(
        "--estimates",
        type=Path,
        action="append",
        required=True,
        metavar="DIR",
        help="folder of separated stems; repeat to compare methods",
    )
    p.add_argument(
        "--name",
        action="append",
        default=None,
        metavar="NAME",
        help="name of each method, in --estimates order (default: the folder names)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("evaluation"),
        metavar="DIR",
        help="report folder (default: ./evaluation)",
    )
    p.add_argument(
        "--stems",
        default=",".join(STEM_NAMES),
        help=f"comma-separated stems to score (default {','.join(STEM_NAMES)})",
    )
    p.add_argument(
        "--window", type=float, default=1.0, metavar="SECONDS", help="BSS Eval window and hop (1 s)"
    )
    p.set_defaults(run=run, parser=p)


def _method_names(args: argparse.Namespace) -> list[str] | None:
    if args.name is not None:
        if len(args.name) != len(args.estimates):
            return None
        return [readable(name) for name in args.name]
    names: list[str] = []
    for folder in args.estimates:
        base = readable(folder.resolve().name or str(folder))
        name, k = base, 2
        while name in names:
            name, k = f"{base} ({k})", k + 1
        names.append(name)
    return names


def _print_text(text: str) -> None:
    """Print ``text`` to stdout whatever its encoding holds (an ASCII terminal gets "?" for "–", "∞", U+FFFD)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, "replace").decode(encoding))
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    names = _method_names(args)
    if names is None:
        parser.error(f"{len(args.name)} --name for {len(args.estimates)} --estimates")
    if len(set(names)) != len(names):
        parser.error("--name values must differ")
    stems = [s.strip() for s in args.stems.split(",") if s.strip()]
    if not stems or args.window <= 0:
        parser.error("--stems must name a stem and --window be positive")

    find_tracks(args.reference, stems)  # fail on a bad folder before any long work
    for folder in args.estimates:
        find_tracks(folder, stems)
    results = {}
    for name, folder in zip(names, args.estimates, strict=True):
        bar = ProgressBar(f"evaluate {name}")
        try:
            results[name] = evaluate_folders(
                args.reference,
                folder,
                stems=stems,
                window_seconds=args.window,
                progress=lambda done, total, track, bar=bar: bar.update(done / total, track),
            )
        finally:
            bar.close()
    written = write_reports(results, args.out)
    _print_text("\n".join(markdown_table(results, metric) for metric in PRINTED_METRICS))
    print(f"shotoku: wrote {', '.join(p.name for p in written.values())} to {args.out}", file=sys.stderr)
    return 0
