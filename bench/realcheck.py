"""The real-accompaniment check: how the models do on real recordings they never saw (issue 11, "measure it
honestly").

The check set (``shotoku dataset check --out DIR``, ``engine/data/synth/realacc.py``) holds

- ``DIR/check/<track>/{mixture,vocals,accompaniment}.wav``: our sung vocals over excerpts of real instrumental
  pieces of the real ``check`` split (held out of training and tuning), mixture == vocals + accompaniment;
- ``DIR/instrumental/<piece>/mixture.flac``: the bare pieces.

For every model this reports

- vocals and accompaniment SDR on the check songs (BSS Eval v4 on the two known stems, median over 1 s windows then
  over tracks, museval convention) and uSDR (whole track, mean over tracks); the model's accompaniment is the sum
  of its stems other than vocals;
- the **vocal leakage** on the bare pieces: the energy of the vocals stem relative to the input's,
  ``10 log10(sum vocals^2 / sum input^2)`` in dB, per piece, with the median and the worst (highest) piece. Lower
  is better; a clean karaoke needs below -30 dB. Memory stays bounded: the pieces are streamed block by block.

Also the unprocessed mixture (lower bound of the SDRs) and a two-stem IRM oracle (vocals / accompaniment, the
upper bound) on the check songs. ``asc-music``, ``warzone2100-music`` and the MuseScore General / TimGM6mb
SoundFonts are reserved for an independent check: every track and piece is checked against
``engine.data.real.sources.refuse_reserved`` and refused if it comes from one of them.

Usage (see the README for the duration)::

    .venv/bin/python bench/realcheck.py --data /work/data/check --best
    .venv/bin/python bench/realcheck.py --data DIR --models tiny --tracks 2 --pieces 2 --seconds 3 --smoke  # a test

Prints the command and two markdown tables (summary per model; leakage per piece); writes ``summary.json``
into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KNOWN = ("vocals", "accompaniment")


@dataclass
class Row:
    """One model's results: per-track scores on the check songs and the leakage (dB) per bare piece."""

    key: str
    label: str
    separator: object | None  # None: the mixture itself
    tracks: list = field(default_factory=list)  # TrackScores
    leakage: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _package(name: str) -> str:
    return name.split("__", 1)[0]


def check_tracks(data: Path) -> list[Path]:
    """The check songs' folders (sorted), each refused if it comes from a reserved package."""
    from engine.data.real.sources import refuse_reserved
    from engine.errors import DatasetError

    folder = data / "check"
    if not folder.is_dir():
        raise DatasetError(folder, "no check songs here (make them with `shotoku dataset check --out DIR`)")
    tracks = sorted(p for p in folder.iterdir() if (p / "mixture.wav").is_file())
    for track in tracks:
        refuse_reserved(_package(track.name))
        meta = track / "track.json"
        if meta.is_file():
            source = json.loads(meta.read_text(encoding="utf-8")).get("accompaniment_source", {})
            refuse_reserved(str(source.get("package", "")) or _package(track.name))
    return tracks


def instrumental_pieces(data: Path) -> list[Path]:
    """The bare pieces' files (sorted by piece), each refused if it comes from a reserved package."""
    from engine.data.real.sources import refuse_reserved

    folder = data / "instrumental"
    pieces = sorted(folder.glob("*/mixture.*")) if folder.is_dir() else []
    for piece in pieces:
        refuse_reserved(_package(piece.parent.name))
        refuse_reserved(piece)
    return pieces


def build_rows(args: argparse.Namespace) -> list[Row]:
    """Mixture, the two-stem IRM oracle, the models, and the "best quality" path (with ``--best``)."""
    from engine.models.catalogue import build_model, default_model_name, list_cards, load_model
    from engine.separation.quality import plan_separation
    from engine.separation.separator import Separator

    rows = [Row("mixture", "mixture (lower bound)", None)]
    if not args.no_oracle:
        oracle = build_model("oracle_mask", {"sources": list(KNOWN)})
        rows.append(
            Row("irm", "IRM oracle, 2 stems (upper bound)", Separator(oracle, "cpu", n_threads=args.threads))
        )
    default = default_model_name()
    names = args.models if args.models is not None else [c.name for c in list_cards() if c.kind == "neural"]
    for name in names:
        label = f"{name} (default: fast)" if name == default else name
        rows.append(Row(name, label, Separator(load_model(name), "cpu", n_threads=args.threads)))
    if args.best is not None:
        plan = plan_separation("best", args.best or None, 0.0, "cpu", threads=args.threads)
        wieners = sorted({w for w in plan.wiener_iterations if w is not None})
        wiener = f", Wiener {'/'.join(map(str, wieners))}" if wieners else ""
        rows.append(Row("best", f"best quality: {' + '.join(plan.models)}, {plan.shifts} shifts{wiener}",
                        plan.build(args.threads)))  # fmt: skip
    return rows


def two_stems(
    separator: object, mixture: np.ndarray, samplerate: int, references: dict
) -> dict[str, np.ndarray]:
    """``{"vocals", "accompaniment"}`` estimates ``(n_channels, n_samples)``: the model's vocals and the sum of
    its other stems."""
    if getattr(separator, "needs_references", False):
        stems = separator.separate(mixture, samplerate, references=references)  # type: ignore[attr-defined]
    else:
        stems = separator.separate(mixture, samplerate)  # type: ignore[attr-defined]
    if "vocals" not in stems:
        raise ValueError("the model has no vocals stem")
    if "accompaniment" in stems:
        return {"vocals": stems["vocals"], "accompaniment": stems["accompaniment"]}
    others = [v for k, v in stems.items() if k != "vocals"]
    return {"vocals": stems["vocals"], "accompaniment": np.sum(others, axis=0, dtype=np.float32)}


def leakage_db(separator: object, audio: np.ndarray, samplerate: int) -> float:
    """Energy of the vocals stem over the input's, in dB, streamed block by block (``audio`` ``(n_channels, n)``)."""
    vocals = list(separator.sources).index("vocals")  # type: ignore[attr-defined]
    out = inp = 0.0
    for stems, mix_block in separator.iter_stems(audio, samplerate):  # type: ignore[attr-defined]
        out += float(np.sum(np.square(stems[vocals], dtype=np.float64)))
        inp += float(np.sum(np.square(mix_block, dtype=np.float64)))
    return 10.0 * np.log10(max(out, 1e-20) / max(inp, 1e-20))


def run_rows(args: argparse.Namespace, rows: list[Row]) -> tuple[list[str], list[str]]:
    """Score every row on the check songs and the bare pieces; returns the names of both, in order."""
    from engine.audio import load_audio
    from engine.evaluate import evaluate_track

    tracks = check_tracks(args.data)[: args.tracks or None]
    pieces = instrumental_pieces(args.data)[: args.pieces or None]
    for folder in tracks:
        refs = {k: load_audio(folder / f"{k}.wav") for k in ("mixture", *KNOWN)}
        rate = refs["mixture"].samplerate
        n = int(args.seconds * rate) if args.seconds else refs["mixture"].samples.shape[-1]
        mixture = refs["mixture"].samples[:, :n]
        references = {k: refs[k].samples[:, :n] for k in KNOWN}
        for row in rows:
            start = time.perf_counter()
            if row.separator is None:
                estimates = {k: mixture for k in KNOWN}
            else:
                estimates = two_stems(row.separator, mixture, rate, references)
            row.seconds += time.perf_counter() - start
            row.tracks.append(
                evaluate_track(references, estimates, rate, name=folder.name, filters_len=args.filters_len)
            )
        print(f"{folder.name} done", file=sys.stderr)
    for path in pieces:
        audio = load_audio(path)
        n = int(args.seconds * audio.samplerate) if args.seconds else audio.samples.shape[-1]
        for row in rows:
            if row.separator is None or getattr(row.separator, "needs_references", False):
                continue
            start = time.perf_counter()
            row.leakage[path.parent.name] = leakage_db(row.separator, audio.samples[:, :n], audio.samplerate)
            row.seconds += time.perf_counter() - start
        print(f"{path.parent.name} done", file=sys.stderr)
    return [t.name for t in tracks], [p.parent.name for p in pieces]


def _cell(value: float) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.2f}"


def summary_table(rows: list[Row]) -> tuple[str, dict]:
    """The per-model markdown table and the same numbers as a dict."""
    from engine.evaluate import summary

    lines = ["| method | vocals SDR | accompaniment SDR | vocals uSDR | accompaniment uSDR | leakage median (dB) "
             "| leakage worst (dB) |", "|---|" + "---:|" * 6]  # fmt: skip
    numbers: dict[str, dict] = {}
    scored = {r.key: r.tracks for r in rows if r.tracks}
    sdr = summary(scored, "SDR", "median") if scored else {}
    usdr = summary(scored, "uSDR", "mean") if scored else {}
    for row in rows:
        leak = np.array(list(row.leakage.values()), dtype=np.float64)
        entry = {
            "sdr_median": sdr.get(row.key, {}),
            "usdr_mean": usdr.get(row.key, {}),
            "leakage_median_db": float(np.median(leak)) if leak.size else None,
            "leakage_worst_db": float(np.max(leak)) if leak.size else None,
            "leakage_db": row.leakage,
            "seconds": row.seconds,
        }
        numbers[row.key] = entry
        cells = [entry["sdr_median"].get(k, float("nan")) for k in KNOWN]
        cells += [entry["usdr_mean"].get(k, float("nan")) for k in KNOWN]
        cells += [
            float("nan") if entry[k] is None else entry[k] for k in ("leakage_median_db", "leakage_worst_db")
        ]
        lines.append(f"| {row.label} | " + " | ".join(_cell(v) for v in cells) + " |")
    return "\n".join(lines), numbers


def leakage_table(rows: list[Row], pieces: list[str]) -> str:
    """Leakage in dB, one row per bare piece, one column per model."""
    shown = [r for r in rows if r.leakage]
    lines = ["| piece | " + " | ".join(r.key for r in shown) + " |", "|---|" + "---:|" * len(shown)]
    for piece in pieces:
        lines.append(
            f"| {piece} | " + " | ".join(_cell(r.leakage.get(piece, float("nan"))) for r in shown) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="the check set (shotoku dataset check --out DIR)"
    )
    parser.add_argument(
        "--models", nargs="*", default=None, help="shipped model names (default: every neural card)"
    )
    parser.add_argument(
        "--best",
        nargs="?",
        const="",
        default=None,
        metavar="MODEL",
        help="also the 'best quality' path (plan_separation's choice, or MODEL with best settings)",
    )
    parser.add_argument("--no-oracle", action="store_true", help="leave out the two-stem IRM oracle row")
    parser.add_argument("--tracks", type=int, default=0, help="only the first N check songs (0: all)")
    parser.add_argument("--pieces", type=int, default=0, help="only the first N bare pieces (0: all)")
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="cut songs and pieces to S seconds (0: all)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "realcheck")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a test run: 32-tap BSS Eval distortion filters (museval's are 512), so the scores "
        "are not comparable to any table",
    )
    args = parser.parse_args(argv)
    args.filters_len = 32 if args.smoke else 512
    if args.tracks < 0 or args.pieces < 0 or args.seconds < 0 or args.threads < 1:
        parser.error("--tracks, --pieces and --seconds must be >= 0 and --threads >= 1")
    torch.set_num_threads(args.threads)
    from engine.atomic import atomic_write_json
    from engine.errors import ShotokuError

    command = "python bench/realcheck.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        rows = build_rows(args)
        tracks, pieces = run_rows(args, rows)
    except (ShotokuError, ValueError) as err:
        print(f"bench/realcheck.py: error: {err}", file=sys.stderr)
        return 1
    if not tracks and not pieces:
        print(f"bench/realcheck.py: error: no check songs or bare pieces in {args.data}", file=sys.stderr)
        return 1
    table, numbers = summary_table(rows)
    cut = f", first {args.seconds:g} s of each" if args.seconds else ""
    if args.smoke:
        cut += " (SMOKE TEST: 32-tap distortion filters, SDRs not comparable to any table)"
    print(f"Command: `{command}`\n")
    print(f"{len(tracks)} check songs (SDR: BSS Eval v4 on vocals/accompaniment, median over 1 s frames then tracks; "
          f"uSDR: mean over tracks) and {len(pieces)} bare pieces (vocal leakage: vocals-stem energy over the "
          f"input's; lower is better){cut}:\n")  # fmt: skip
    print(table)
    if pieces:
        print("\nVocal leakage per bare piece (dB):\n")
        print(leakage_table(rows, pieces))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "summary.json", {
        "command": command, "data": str(args.data), "tracks": tracks, "pieces": pieces,
        "seconds": args.seconds or None, "smoke": args.smoke, "methods": {r.key: r.label for r in rows}, "results": numbers,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
