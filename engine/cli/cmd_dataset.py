"""``shotoku dataset synth``: generate the synthetic multitrack training corpus (issue 3).

FluidSynth, the SoundFont, espeak-ng and pyworld are only needed here; they are imported when the command runs,
so the app starts without them, and their absence is reported with the apt-get command to fix it.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``dataset`` and its ``synth`` sub-command."""
    parser = subparsers.add_parser("dataset", help="make training data (synthetic multitrack corpus)")
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    synth = sub.add_parser(
        "synth", help="compose and render a synthetic corpus in the MUSDB18-HQ layout",
        description="Compose songs procedurally, render each stem with FluidSynth and a sung lead vocal with "
        "espeak-ng + WORLD, and write DIR/{train,valid,test}/<track>/{mixture,drums,bass,other,vocals}.wav, "
        "unpaired pools under DIR/unpaired/ and DIR/manifest.json. The same seed gives the same bytes.",
    )
    synth.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    synth.add_argument("--tracks", type=_count, default=180, metavar="N", help="training tracks (default 180)")
    synth.add_argument("--valid-tracks", type=_count, default=None, metavar="N",
                       help="validation tracks (default: N/9, at least 1)")
    synth.add_argument("--test-tracks", type=_count, default=None, metavar="N", help="test tracks (default: N/9)")
    synth.add_argument("--unpaired-tracks", type=_count, default=None, metavar="N",
                       help="tracks in each unpaired pool: mixtures, vocals-only, instrumental-only (default N/9)")
    synth.add_argument("--seconds", type=_positive, default=60.0, metavar="S", help="length of each track (default 60)")
    synth.add_argument("--seed", type=int, default=0, metavar="K", help="corpus seed (default 0)")
    synth.add_argument("--soundfont", type=Path, default=None, metavar="PATH",
                       help="a .sf2/.sf3 General MIDI SoundFont (default FluidR3_GM)")
    synth.add_argument("--workers", type=lambda t: max(1, _count(t)), default=2, metavar="W", help="worker processes (default 2)")
    synth.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate the corpus; returns 0, or raises DatasetError (exit 1) when a tool is missing."""
    from engine.cli.progress import ProgressBar
    from engine.data.synth.corpus import make_corpus

    other = max(1, math.ceil(args.tracks / 9)) if args.tracks else 0
    n_valid = other if args.valid_tracks is None else args.valid_tracks
    n_test = other if args.test_tracks is None else args.test_tracks
    n_unpaired = other if args.unpaired_tracks is None else args.unpaired_tracks
    bar = ProgressBar("synth")
    started = time.monotonic()
    try:
        manifest = make_corpus(
            args.out, n_train=args.tracks, n_valid=n_valid, n_test=n_test, n_unpaired=n_unpaired,
            seconds=args.seconds, seed=args.seed, soundfont=args.soundfont, workers=args.workers,
            progress=lambda fraction, name: bar.update(fraction, name),
        )
    finally:
        bar.close()
    elapsed = time.monotonic() - started
    audio_seconds = len(manifest["tracks"]) * args.seconds
    print(f"wrote {len(manifest['tracks'])} tracks ({audio_seconds / 60:.1f} min of audio) to {args.out} "
          f"in {elapsed:.1f} s ({audio_seconds / max(elapsed, 1e-9):.1f}x real time)")
    return 0
