"""``shotoku train NAME --data DIR``: train a model (or a method: the config names its objective) on a corpus.

``NAME`` is a config in ``configs/`` (``configs/NAME.json``: architecture, arguments, objective, settings) or an
architecture trained with its default arguments and the supervised objective. Re-running with the same ``--out``
resumes from the run's ``checkpoint.safetensors``.

Multi-GPU: ``torchrun --nproc_per_node=N -m engine train NAME --data DIR`` (the trainer joins torch's process
group and the objective wraps its networks in DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.train.config import TrainConfig, default_config, load_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a separation model",
        description="Train NAME (a config in configs/, e.g. openunmix, openunmix-long, mmdensenet, waveunet, "
        "deepconvsep, wavenet, or an architecture with its default arguments) on the train split of DIR, "
        "validating uSDR on its valid split each epoch. Architecture, objective and settings come from "
        "configs/NAME.json or --config; the options below override the settings. Re-running with the same --out "
        "resumes.",
    )
    p.add_argument("model", metavar="NAME", help="config or architecture name")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="corpus root ({train,valid}/<track>/)")
    p.add_argument("--config", type=Path, default=None, metavar="FILE", help="config JSON (default: configs/MODEL.json)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="run folder (default: runs/NAME)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--samples-per-epoch", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall-clock time")
    p.add_argument("--max-cpu-minutes", type=float, default=None,
                   help="stop after this much CPU time over the whole run (resumes included; raise it to continue)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has a checkpoint")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    p.add_argument("--export", default=None, metavar="NAME", help="write the best weights to resources/models/NAME")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _apply_overrides(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "samples_per_epoch": args.samples_per_epoch,
        "max_minutes": args.max_minutes,
        "max_cpu_minutes": args.max_cpu_minutes,
        "threads": args.threads,
        "amp": args.amp,
        "compile": args.compile,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config.train, key, value)
    return config


def run(args: argparse.Namespace) -> int:
    from engine.train.run import train
    from engine.train.validation import load_valid_tracks

    config = load_config(args.config) if args.config else default_config(args.model)
    if args.config and args.model not in {config.architecture, config.objective, args.config.stem}:
        print(
            f"shotoku: error: config {args.config} is for {config.architecture!r}, not {args.model!r}", file=sys.stderr
        )
        return 2
    config = _apply_overrides(config, args)
    run_dir = args.out or Path("runs") / args.model
    result = train(config, args.data, run_dir, resume=not args.no_resume, device=args.device,
                   show_progress=not args.no_progress)
    summary = {
        "run_dir": str(result.run_dir),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_valid_usdr": round(result.best_usdr, 3),
        "best_valid_usdr_per_stem": {k: round(v, 3) for k, v in result.best_usdr_per_stem.items()},
        "mixture_valid_usdr_per_stem": {k: round(v, 3) for k, v in result.mixture_usdr_per_stem.items()},
        "minutes": round(result.seconds / 60, 2),
        "stopped": result.stopped,
    }
    print(json.dumps(summary, indent=2))
    if args.export:
        from engine.train.export import export_run

        tracks = load_valid_tracks(args.data, list(result.best_usdr_per_stem) or [], config.train.valid_tracks,
                                   config.train.valid_seconds) if result.best_usdr_per_stem else []
        folder = export_run(run_dir, args.export, {"training": {"valid": summary}}, tracks=tracks)
        print(f"exported {folder}")
    return 0
