"""``shotoku dataset synth|fetch|check``: make training and evaluation data (issues 3 and 11).

- ``synth``: the synthetic multitrack corpus; with ``--real DIR`` also songs over real accompaniment, more GM
  banks and recorded drum kits.
- ``fetch``: download the real-audio Debian packages and prepare the pools (``DIR/real_manifest.json``).
- ``check``: the real-accompaniment check set (real ``check`` pieces with sung vocals, and the bare pieces).

FluidSynth, the SoundFont, espeak-ng and pyworld are only needed here; they are imported when a command runs,
so the app starts without them, and their absence is reported with the apt-get command to fix it.
"""

from __future__ import annotations

import argparse
import math
import os
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


def _workers(text: str) -> int:
    return max(1, _count(text))


def _default_real() -> Path | None:
    env = os.environ.get("SHOTOKU_REAL")
    return Path(env) if env else None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``dataset`` and its ``synth``, ``fetch`` and ``check`` sub-commands."""
    parser = subparsers.add_parser("dataset", help="make training data (synthetic corpus, real-audio pools)")
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    synth = sub.add_parser(
        "synth", help="compose and render a synthetic corpus in the MUSDB18-HQ layout",
        description="Compose songs procedurally, render each stem (FluidSynth GM banks, recorded drum kits) and "
        "sung vocals (espeak-ng or Festival + WORLD), mix and master them with pedalboard, and write "
        "DIR/{train,valid,test}/<track>/{mixture,drums,bass,other,vocals}.wav, songs over real accompaniment "
        "in DIR/{train,valid}_realacc/ (with --real), unpaired pools under DIR/unpaired/ and DIR/manifest.json. "
        "mixture == the sum of the written stems; the same seed gives the same bytes.",
    )
    synth.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    synth.add_argument("--tracks", type=_count, default=180, metavar="N", help="training tracks (default 180)")
    synth.add_argument("--valid-tracks", type=_count, default=None, metavar="N",
                       help="validation tracks (default: N/9, at least 1)")
    synth.add_argument("--test-tracks", type=_count, default=None, metavar="N", help="test tracks (default: N/9)")
    synth.add_argument("--unpaired-tracks", type=_count, default=None, metavar="N",
                       help="tracks in each unpaired pool: mixtures, vocals-only, instrumental-only (default N/9)")
    synth.add_argument("--real", type=Path, default=_default_real(), metavar="DIR",
                       help="a folder made by `shotoku dataset fetch` (default $SHOTOKU_REAL): adds songs over real "
                       "accompaniment, more GM banks and recorded drum kits")
    synth.add_argument("--real-tracks", type=_count, default=None, metavar="N",
                       help="training songs over real accompaniment (default N/4 with --real)")
    synth.add_argument("--real-valid-tracks", type=_count, default=None, metavar="N",
                       help="validation songs over real accompaniment (default N/36, at least 1, with --real)")
    synth.add_argument("--unpaired-real-tracks", type=_count, default=None, metavar="N",
                       help="unpaired mixtures over real accompaniment, S_A of issue 12 (default N/9 with --real)")
    synth.add_argument("--loudness-stats", type=Path, default=None, metavar="FILE",
                       help="measured per-stem loudness statistics (JSON, see scripts/musdb_loudness.py)")
    synth.add_argument("--classic", action="store_true",
                       help="the version-1 generator (one SoundFont, no mixing chain), for old corpora")
    synth.add_argument("--seconds", type=_positive, default=60.0, metavar="S", help="length of each track (default 60)")
    synth.add_argument("--seed", type=int, default=0, metavar="K", help="corpus seed (default 0)")
    synth.add_argument("--soundfont", type=Path, default=None, metavar="PATH",
                       help="the default General MIDI SoundFont (default FluidR3_GM)")
    synth.add_argument("--workers", type=_workers, default=2, metavar="W", help="worker processes (default 2)")
    synth.set_defaults(run=run)

    fetch = sub.add_parser(
        "fetch", help="download real-audio Debian packages and prepare the pools",
        description="apt-get download and dpkg -x the real-audio sources (instrumental music, GM banks, drum "
        "kits), decode each instrumental piece to DIR/pools/<split>/<piece>/instrumental.flac and write "
        "DIR/real_manifest.json (every file with package, licence, duration and split). Nothing is installed; "
        "keep DIR outside git. asc-music, warzone2100-music, the MuseScore General and TimGM6mb SoundFonts "
        "are reserved for an independent check and are refused.",
    )
    fetch.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (outside git)")
    fetch.add_argument("--debs", type=Path, default=None, metavar="DIR",
                       help="where .deb files are downloaded or already lie (default DIR/debs)")
    fetch.add_argument("--packages", nargs="+", default=None, metavar="PKG",
                       help="only these catalogue packages (default: all)")
    fetch.add_argument("--workers", type=_workers, default=2, metavar="W", help="decoding processes (default 2)")
    fetch.set_defaults(run=run_fetch)

    check = sub.add_parser(
        "check", help="make the real-accompaniment check set (evaluation only)",
        description="Mix sung vocals over excerpts of the real `check` pieces: DIR/check/<track>/{mixture,"
        "vocals,accompaniment}.wav (+ track.json), and the bare pieces for the vocal-leakage measure: "
        "DIR/instrumental/<piece>/mixture.flac. Never train or tune on it.",
    )
    check.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    check.add_argument("--real", type=Path, default=_default_real(), metavar="DIR",
                       help="a folder made by `shotoku dataset fetch` (default $SHOTOKU_REAL)")
    check.add_argument("--seconds", type=_positive, default=30.0, metavar="S", help="excerpt length (default 30)")
    check.add_argument("--excerpts", type=_workers, default=2, metavar="K", help="excerpts per piece (default 2)")
    check.add_argument("--seed", type=int, default=0, metavar="K", help="seed of the sung vocals (default 0)")
    check.add_argument("--soundfont", type=Path, default=None, metavar="PATH", help="default GM SoundFont")
    check.add_argument("--workers", type=_workers, default=2, metavar="W", help="worker processes (default 2)")
    check.set_defaults(run=run_check)


def _bar(label: str):  # noqa: ANN202 (a progress bar)
    from engine.progress import ProgressBar

    return ProgressBar(label)


def run(args: argparse.Namespace) -> int:
    """Generate the corpus; returns 0, or raises DatasetError (exit 1) when a tool is missing."""
    from engine.data.synth.corpus import make_corpus
    from engine.errors import DatasetError

    if args.real is None and any(v for v in (args.real_tracks, args.real_valid_tracks, args.unpaired_real_tracks)):
        raise DatasetError(None, "--real-tracks and friends need --real DIR (made by `shotoku dataset fetch`)")
    other = max(1, math.ceil(args.tracks / 9)) if args.tracks else 0
    n_valid = other if args.valid_tracks is None else args.valid_tracks
    n_test = other if args.test_tracks is None else args.test_tracks
    n_unpaired = other if args.unpaired_tracks is None else args.unpaired_tracks
    real = {"n_real_train": 0, "n_real_valid": 0, "n_unpaired_real": 0}
    if args.real is not None and not args.classic:
        real = {"n_real_train": math.ceil(args.tracks / 4) if args.real_tracks is None else args.real_tracks,
                "n_real_valid": (max(1, math.ceil(args.tracks / 36)) if args.tracks else 0)
                if args.real_valid_tracks is None else args.real_valid_tracks,
                "n_unpaired_real": n_unpaired if args.unpaired_real_tracks is None else args.unpaired_real_tracks}
    bar = _bar("synth")
    started = time.monotonic()
    try:
        manifest = make_corpus(
            args.out, n_train=args.tracks, n_valid=n_valid, n_test=n_test, n_unpaired=n_unpaired,
            seconds=args.seconds, seed=args.seed, soundfont=args.soundfont, workers=args.workers,
            progress=lambda fraction, name: bar.update(fraction, name), real_dir=args.real,
            loudness_stats=args.loudness_stats, classic=args.classic, **real,
        )
    finally:
        bar.close()
    elapsed = time.monotonic() - started
    audio_seconds = len(manifest["tracks"]) * args.seconds
    print(f"wrote {len(manifest['tracks'])} tracks ({audio_seconds / 60:.1f} min of audio) to {args.out} "
          f"in {elapsed:.1f} s ({audio_seconds / max(elapsed, 1e-9):.1f}x real time)")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch and prepare the real-audio pools; prints the split table."""
    from engine.data.real.fetch import fetch_real_audio

    bar = _bar("fetch")
    try:
        manifest = fetch_real_audio(args.out, packages=args.packages, debs=args.debs, workers=args.workers,
                                    progress=lambda fraction, name: bar.update(fraction, name))
    finally:
        bar.close()
    print(f"wrote {args.out / 'real_manifest.json'}: {len(manifest['pieces'])} pieces, "
          f"{len(manifest['excluded'])} left out, {len(manifest['sounds'])} SoundFonts and kits")
    for name, s in manifest["splits"].items():
        print(f"  {name:11s} {s['n_pieces']:4d} pieces {s['minutes']:7.1f} min")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Write the real-accompaniment check set."""
    from engine.data.synth.realacc import make_check_set
    from engine.errors import DatasetError

    if args.real is None:
        raise DatasetError(None, "--real DIR is needed (made by `shotoku dataset fetch`)")
    bar = _bar("check")
    try:
        manifest = make_check_set(args.out, args.real, seconds=args.seconds, n_excerpts=args.excerpts,
                                  seed=args.seed, soundfont=args.soundfont, workers=args.workers,
                                  progress=lambda fraction, name: bar.update(fraction, name))
    finally:
        bar.close()
    print(f"wrote {len(manifest['tracks'])} check tracks and {len(manifest['instrumentals'])} bare pieces "
          f"to {args.out}")
    return 0
