"""Separation speed of every model, side by side in one run: real-time factor and peak memory.

Each (model, song length) is measured in a fresh subprocess through the real path (``Separator.separate``: the
chunked engine, STFT, masks, ISTFT), on a synthetic stereo song at the model's rate, with a fixed number of torch
threads. Real-time factor = audio seconds / wall seconds (higher is faster; best of ``--repeats``); peak memory is
the subprocess's peak resident set size (``ru_maxrss``), which includes torch itself (reported separately as the
``import`` row). The Open-Unmix-design baseline is the reference ratio.

Usage::

    .venv/bin/python bench/speed.py                       # configs/*.json, random weights, 30 s and 240 s
    .venv/bin/python bench/speed.py --models mmdensenet openunmix --lengths 30 240 600 --threads 2
    .venv/bin/python bench/speed.py --shipped             # the shipped models in resources/models/
    .venv/bin/python bench/speed.py --shipped --models openunmix --quality best   # the "best quality" path

Load from other processes changes the figures: the script prints ``uptime``'s load next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "openunmix"


def _worker(args: argparse.Namespace) -> None:
    """Runs in the subprocess: build the model, separate one synthetic song, print a JSON line."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from engine.models.catalogue import build_model, load_model
    from engine.separation.separator import Separator
    from engine.train.config import default_config

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plan = None
    if args.quality:  # the path `shotoku separate --quality` runs (engine.separation.quality)
        from engine.separation.quality import plan_separation

        plan = plan_separation(args.quality, args.worker, args.seconds, "cpu", threads=args.threads)
        separator = plan.build(args.threads)
        model = separator.model
    elif args.shipped:
        model = load_model(args.worker)
    else:
        config = default_config(args.worker)
        model = build_model(config.architecture, config.model)
    model.eval()
    rate = int(model.samplerate)
    rng = np.random.default_rng(0)
    n = int(args.seconds * rate)
    song = 0.1 * rng.standard_normal((2, n), dtype=np.float32)  # float32 throughout: the song is not the peak
    for start in range(0, n, rate * 10):
        t = np.arange(start, min(n, start + rate * 10), dtype=np.float32) / rate
        song[:, start : start + t.size] += 0.3 * np.sin(2 * np.pi * 220 * t)
    if plan is None:
        separator = Separator(model, device="cpu", n_threads=args.threads)
    separator.separate(song[:, : min(n, 5 * rate)], rate)  # warm-up (allocator, oneDNN kernels)
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        stems = separator.separate(song, rate)
        best = min(best, time.perf_counter() - start)
    assert len(stems) == len(model.sources)
    print(
        json.dumps(
            {
                "model": args.worker,
                "seconds": args.seconds,
                "wall_seconds": best,
                "rtf": args.seconds / best,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "import_rss_mb": rss_import,
                "parameters": sum(p.numel() for p in model.parameters()),
                **(
                    {
                        "quality": args.quality,
                        "plan": plan.describe(),
                        "shifts": plan.shifts,
                        "wiener_iterations": list(plan.wiener_iterations),
                    }
                    if plan is not None
                    else {}
                ),
            }
        )
    )


def _measure(
    model: str, seconds: float, threads: int, repeats: int, shipped: bool, quality: str | None = None
) -> dict:
    command = (
        [
            sys.executable,
            __file__,
            "--worker",
            model,
            "--seconds",
            str(seconds),
            "--threads",
            str(threads),
            "--repeats",
            str(repeats),
        ]
        + (["--shipped"] if shipped else [])
        + (["--quality", quality] if quality else [])
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        return {"model": model, "seconds": seconds, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    return os.getloadavg().__repr__()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="*", default=None, help="architectures (default: every configs/*.json)"
    )
    parser.add_argument(
        "--shipped", action="store_true", help="measure shipped models (names) instead of configs"
    )
    parser.add_argument(
        "--lengths", nargs="*", type=float, default=[30.0, 240.0], help="song lengths in seconds"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument(
        "--quality",
        choices=("fast", "best"),
        default=None,
        help="measure the shipped models through plan_separation(QUALITY, model) (implies --shipped)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quality:
        args.shipped = True
    if args.worker:
        _worker(args)
        return 0
    if args.models:
        models = args.models
    elif args.shipped:
        models = sorted(p.parent.name for p in (ROOT / "resources" / "models").glob("*/weights.safetensors"))
    else:
        models = sorted(
            p.stem
            for p in (ROOT / "configs").glob("*.json")
            if json.loads(p.read_text())["architecture"] == p.stem
        )  # not recipe variants (<arch>-<name>)
    if BASELINE in models:  # the reference first
        models = [BASELINE] + [m for m in models if m != BASELINE]
    print(f"load average before: {_load()}  threads: {args.threads}", file=sys.stderr)
    rows = []
    for model in models:
        for seconds in args.lengths:
            row = _measure(model, seconds, args.threads, args.repeats, args.shipped, args.quality)
            row["load_average"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    reference = {r["seconds"]: r["rtf"] for r in rows if r["model"] == BASELINE and "rtf" in r}
    header = (
        "| model | params | "
        + " | ".join(f"RTF {s:g} s | x {BASELINE} | peak MB {s:g} s" for s in args.lengths)
        + " |"
    )
    print(header)
    print("|" + " --- |" * (2 + 3 * len(args.lengths)))
    for model in models:
        cells = [model]
        mine = {r["seconds"]: r for r in rows if r["model"] == model}
        first = next(iter(mine.values()))
        cells.append(f"{first.get('parameters', 0) / 1e6:.2f} M" if "parameters" in first else "-")
        for seconds in args.lengths:
            r = mine[seconds]
            if "rtf" not in r:
                cells += ["error", "-", "-"]
                continue
            ratio = r["rtf"] / reference[seconds] if seconds in reference else float("nan")
            cells += [f"{r['rtf']:.1f}x", f"{ratio:.2f}", f"{r['peak_rss_mb']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    imports = [r["import_rss_mb"] for r in rows if "import_rss_mb" in r]
    if imports:
        print(f"\n(peak MB includes the Python + torch process itself: ~{min(imports):.0f} MB after imports)")
    print(f"load average after: {_load()}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "bench/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
        args.out.write_text(
            json.dumps({"threads": args.threads, "command": command, "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
