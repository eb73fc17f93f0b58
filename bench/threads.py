"""How fast one model separates with 1, 2, ... torch threads, on an idle machine and with every core kept busy.

The measurement behind ``engine.separation.runner.default_threads`` (the one thread rule). Each (threads, load)
cell runs in a fresh subprocess through the real path (``Separator.separate``: the chunked engine, STFT, masks,
ISTFT) on a synthetic stereo song at the model's rate. "busy" starts ``--load`` busy-loop processes (default: one
per core, at this script's niceness, so they compete as equals with the model), waits until they spin, measures,
and stops them by PID, whatever happens. The output of every run is hashed: the thread count must not change it.

Usage (on an otherwise idle machine; a few minutes)::

    .venv/bin/python bench/threads.py                          # default model, 60 s song, 1..cores threads
    .venv/bin/python bench/threads.py --model openunmix --seconds 215 --threads 1 2 --out bench/results/threads.json
    .venv/bin/python bench/threads.py --smoke                  # the test model, 3 s song: checks the script runs

Real-time factor = audio seconds / wall seconds (higher is faster); "busy / idle" is how many times slower the same
thread count runs when the cores are busy. Load from other processes changes the idle figures: the script prints
the load average next to them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker(args: argparse.Namespace) -> None:
    """Runs in the subprocess: load the model, separate one synthetic song, print a JSON line."""
    sys.path.insert(0, str(ROOT))
    import hashlib

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from engine.models.catalogue import build_model, load_model
    from engine.separation.separator import Separator

    model = build_model("tiny", {}) if args.worker == "tiny" else load_model(args.worker)
    model.eval()
    rate = int(model.samplerate)
    n = int(args.seconds * rate)
    rng = np.random.default_rng(0)
    song = 0.1 * rng.standard_normal((2, n), dtype=np.float32)
    t = np.arange(n, dtype=np.float32) / rate
    song += 0.3 * np.sin(2 * np.pi * 220 * t, dtype=np.float32)
    separator = Separator(model, device="cpu", n_threads=args.threads)
    separator.separate(song[:, : min(n, 2 * rate)], rate)  # warm-up (allocator, oneDNN kernels)
    start = time.perf_counter()
    stems = separator.separate(song, rate)
    wall = time.perf_counter() - start
    digest = hashlib.sha256()
    for name in sorted(stems):
        digest.update(np.round(np.asarray(stems[name], dtype=np.float32), 5).tobytes())  # ignore float noise
    print(json.dumps({"wall_seconds": wall, "rtf": args.seconds / wall, "output_sha256": digest.hexdigest()[:16]}))


def _measure(model: str, seconds: float, threads: int) -> dict:
    command = [sys.executable, __file__, "--worker", model, "--seconds", str(seconds), "--threads", str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 1.0  # not Linux: assume it spins


@contextlib.contextmanager
def busy(n: int) -> Iterator[list[int]]:
    """``n`` busy-loop processes for the block (stopped by PID at the end, whatever happens); yields their PIDs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        deadline = time.monotonic() + 30
        while any(_cpu_seconds(p.pid) < 0.05 for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a shipped model (default: the default model)")
    parser.add_argument("--seconds", type=float, default=60.0, help="song length (default 60)")
    parser.add_argument("--threads", type=int, nargs="*", default=None, help="thread counts (default: 1 .. cores)")
    parser.add_argument("--load", type=int, default=None, help="busy processes for 'busy' (default: one per core)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--smoke", action="store_true", help="the test model on a 3-s song, 1 and 2 threads")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.threads = args.threads[0]
        _worker(args)
        return 0
    cores = _cores()
    if args.smoke:
        args.model, args.seconds, args.threads = "tiny", 3.0, args.threads or [1, 2]
    if args.model is None:
        sys.path.insert(0, str(ROOT))
        from engine.models.cards import default_model_name

        args.model = default_model_name()
    counts = sorted(set(args.threads or range(1, cores + 1)))
    load = args.load or cores
    sys.path.insert(0, str(ROOT))
    from engine.separation.runner import default_threads

    print(f"model {args.model}, {args.seconds:g} s song, {cores} cores; busy = {load} busy-loop processes; "
          f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    rows = []
    for condition in ("idle", "busy"):
        with busy(load) if condition == "busy" else contextlib.nullcontext():
            for threads in counts:
                row = {"threads": threads, "condition": condition, "load_average": os.getloadavg()[0],
                       **_measure(args.model, args.seconds, threads)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    cell = {(r["condition"], r["threads"]): r for r in rows}
    print(f"| threads | idle: s | idle: x real time | busy: s | busy: x real time | busy / idle |  "
          f"({args.model}, {args.seconds:g} s song, {cores} cores, {load} busy processes)")
    print("| --- | --- | --- | --- | --- | --- |")
    for threads in counts:
        idle, loaded = cell[("idle", threads)], cell[("busy", threads)]
        if "error" in idle or "error" in loaded:
            print(f"| {threads} | error: {idle.get('error') or loaded.get('error')} | | | | |")
            continue
        print(f"| {threads} | {idle['wall_seconds']:.2f} | {idle['rtf']:.1f}x | {loaded['wall_seconds']:.2f} | "
              f"{loaded['rtf']:.1f}x | {loaded['wall_seconds'] / idle['wall_seconds']:.1f} |")
    digests = {r["output_sha256"] for r in rows if "output_sha256" in r}
    print(f"\noutput identical across thread counts and loads: {'yes' if len(digests) == 1 else 'NO ' + str(digests)}")
    best_busy = min((r for r in rows if r["condition"] == "busy" and "rtf" in r), key=lambda r: r["wall_seconds"],
                    default=None)
    if best_busy is not None:
        print(f"fastest when busy: {best_busy['threads']} thread(s); default_threads() here: {default_threads()}")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "bench/threads.py " + " ".join(argv if argv is not None else sys.argv[1:])
        args.out.write_text(json.dumps({"command": command, "model": args.model, "seconds": args.seconds,
                                        "cores": cores, "load": load, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
