""""Learn from my music" (issue 13), measured: the no-voice threshold, and SDR/SIR before and after adapting.

``--threshold``: the passage finder's threshold (``engine/adapt/passages.py``): the vocals model runs over songs with
known vocals (the synthetic ``valid`` split), and for each candidate threshold the precision and recall of its
"no voice" frames are printed; the chosen one is the most inclusive with precision >= 0.98.

Default (the README table): the real-accompaniment check (``shotoku dataset check``: our sung vocals over real
instrumental pieces never used in training) is split by piece into two disjoint halves: the **adapt** half's
mixtures are the user's "library" (the adaptation sees only those mixtures, never their stems), the **score**
half is scored (BSS Eval v4, museval convention: median over 1 s windows then over tracks) before and after, for
the semi-supervised model and for the supervised default (adapted through the same losses, ``--also-default``).

Usage::

    .venv/bin/python bench/adapt.py --threshold --data corpus --tracks 8 --seconds 60
    .venv/bin/python bench/adapt.py --check /work/data/check --from semisup --max-minutes 45
    .venv/bin/python bench/adapt.py --check /work/data/check --tracks 6 --seconds 10 --max-minutes 1  # smoke
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def threshold(args: argparse.Namespace) -> int:
    """Print the precision/recall table of the no-voice threshold and the choice."""
    from engine.adapt.passages import TRUE_SILENT_VOICE_DB, measure_threshold
    from engine.data.musdb import iter_tracks
    from engine.separation.runner import default_threads
    from engine.separation.separator import Separator

    separator = Separator(args.detector or _default(), n_threads=args.threads or default_threads())
    tracks = []
    started = time.monotonic()
    for index, (name, mixture, stems, rate) in enumerate(iter_tracks(args.data, args.split)):
        if index >= (args.tracks or 8):
            break
        n = int(args.seconds * rate)
        mix = np.ascontiguousarray(mixture[:, :n])
        vocals = separator.separate(mix, rate, stems=["vocals"])["vocals"]
        tracks.append((mix, vocals, stems["vocals"][:, :n], rate))
        print(f"{name}: separated", file=sys.stderr, flush=True)
    chosen, points = measure_threshold(tracks, hold_seconds=args.hold)
    print(f"\ncommand: {shlex.join(sys.argv)}  ({time.monotonic() - started:.0f} s)")
    print(f"model: {separator.model.card.name if hasattr(separator.model, 'card') else args.detector}; "
          f"{len(tracks)} tracks of {args.split}, {args.seconds:g} s each; truth: true vocals < "
          f"{TRUE_SILENT_VOICE_DB:g} dB below the mixture\n")
    print(f"hold {args.hold:g} s\n")
    print("| threshold (dB) | precision | recall | minutes found |\n|---:|---:|---:|---:|")
    for p in points:
        print(f"| {p.threshold_db:g} | {p.precision:.3f} | {p.recall:.3f} | {p.minutes:.2f} |")
    print(f"\nchosen: {chosen:g} dB")
    return 0


def split_by_piece(tracks: list[Path]) -> tuple[list[Path], list[Path]]:
    """The check songs in two halves with disjoint pieces: even-numbered pieces (sorted) adapt, odd ones score."""
    pieces = sorted({t.name.rsplit("_", 1)[0] for t in tracks})
    adapt = {p for k, p in enumerate(pieces) if k % 2 == 0}
    return ([t for t in tracks if t.name.rsplit("_", 1)[0] in adapt],
            [t for t in tracks if t.name.rsplit("_", 1)[0] not in adapt])


def score(separator: object, tracks: list[Path], seconds: float) -> dict[str, float]:
    """Median over tracks of the vocals SDR and SIR (BSS Eval v4, museval convention)."""
    from bench.realcheck import KNOWN, two_stems
    from engine.audio import load_audio
    from engine.evaluate import evaluate_track, summary

    scored = []
    for folder in tracks:
        refs = {k: load_audio(folder / f"{k}.wav") for k in ("mixture", *KNOWN)}
        rate = refs["mixture"].samplerate
        n = int(seconds * rate) if seconds else refs["mixture"].samples.shape[-1]
        references = {k: refs[k].samples[:, :n] for k in KNOWN}
        estimates = two_stems(separator, refs["mixture"].samples[:, :n], rate, references)
        scored.append(evaluate_track(references, estimates, rate, name=folder.name))
    return {metric: summary({"m": scored}, metric, "median")["m"]["vocals"] for metric in ("SDR", "SIR")}


def table(args: argparse.Namespace) -> int:
    """Adapt the source model on one half of the check songs' mixtures; score both halves' other half."""
    import os

    from bench.realcheck import check_tracks

    out = Path(args.out or tempfile.mkdtemp(prefix="shotoku-bench-adapt-"))
    os.environ["SHOTOKU_DATA"] = str(out / "data")  # the bench's models never join the user's
    from engine.adapt.job import AdaptJob, AdaptRequest
    from engine.models.catalogue import load_model
    from engine.separation.runner import default_threads
    from engine.separation.separator import Separator

    adapt_half, score_half = split_by_piece(check_tracks(args.check)[: args.tracks or None])
    songs = out / "songs"
    songs.mkdir(parents=True, exist_ok=True)
    for folder in adapt_half:
        link = songs / f"{folder.name}.wav"
        if not link.exists():
            link.symlink_to((folder / "mixture.wav").resolve())
    # the check songs are sung throughout: their own pieces' bare recordings (of the adapt half only) are the
    # "instrumental versions" a user would give with --instrumentals
    instrumentals = out / "instrumentals"
    instrumentals.mkdir(exist_ok=True)
    for piece in sorted({t.name.rsplit("_", 1)[0] for t in adapt_half}):
        bare = args.check / "instrumental" / piece / "mixture.flac"
        link = instrumentals / f"{piece}.flac"
        if bare.is_file() and not link.exists():
            link.symlink_to(bare.resolve())
    threads = args.threads or default_threads()
    started = time.monotonic()
    name = f"bench-{args.source}"
    AdaptJob(AdaptRequest(songs=str(songs), name=name, max_minutes=args.max_minutes, source=args.source,
                          instrumentals=str(instrumentals) if any(instrumentals.iterdir()) else None,
                          replace=True), n_threads=threads).run()
    adapt_seconds = time.monotonic() - started
    rows = [(f"{args.source} (before)", load_model(args.source)), (f"{args.source} adapted", load_model(name))]
    if args.default:
        rows.insert(0, (f"{args.default} (supervised default, not adapted)", load_model(args.default)))
    results = {label: score(Separator(model, n_threads=threads), score_half, args.seconds) for label, model in rows}
    print(f"\ncommand: {shlex.join(sys.argv)}")
    print(f"adapted on {len(adapt_half)} check songs (mixtures only) in {adapt_seconds / 60:.1f} min; scored on "
          f"{len(score_half)} others (disjoint pieces), {args.seconds or 'all'} s each\n")
    print("| model | vocals SDR (dB) | vocals SIR (dB) |\n|---|---:|---:|")
    for label, values in results.items():
        print(f"| {label} | {values['SDR']:.2f} | {values['SIR']:.2f} |")
    (out / "summary.json").write_text(json.dumps({"results": results, "adapt_seconds": adapt_seconds,
                                                 "adapt": [t.name for t in adapt_half],
                                                 "score": [t.name for t in score_half]}, indent=1))
    return 0


def _default() -> str:
    from engine.models.catalogue import default_model_name

    return default_model_name()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", action="store_true", help="measure the passage finder's threshold")
    parser.add_argument("--data", type=Path, default=ROOT / "corpus", help="corpus with a valid split (--threshold)")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--tracks", type=int, default=0, help="tracks used (0: all; --threshold: 8)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--detector", default=None, help="vocals model (default: the default model)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--hold", type=float, default=4.0, help="seconds a no-voice run must last (--threshold)")
    parser.add_argument("--check", type=Path, default=Path("/work/data/check"), help="the real-accompaniment check")
    parser.add_argument("--from", dest="source", default="semisup", help="the semi-supervised model to adapt")
    parser.add_argument("--default", default="openunmix", help="the supervised default, scored as a reference "
                                                                "('' for none)")
    parser.add_argument("--max-minutes", type=float, default=45.0, help="the adaptation's budget")
    parser.add_argument("--out", default=None, help="folder of the run (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.threshold:
        return threshold(args)
    if args.seconds == 60.0:
        args.seconds = 0.0  # the table scores whole check songs unless told otherwise
    return table(args)


if __name__ == "__main__":
    sys.exit(main())
