"""Separation quality on the synthetic test split: BSS Eval v4 SDR (median over 1 s windows, then median over
tracks) per stem for every model, the IRM oracle (upper bound) and the unprocessed mixture (lower bound).

Usage::

    .venv/bin/python bench/quality.py --data corpus --models mmdensenet-small openunmix-small ...
    .venv/bin/python bench/quality.py --data corpus --runs runs/waveunet runs/wavenet   # unexported runs too

Writes ``scores.json``, ``scores.md`` and ``boxplot_<stem>.png`` into ``--out`` and prints the SDR table.
Models are run through ``Separator`` (the chunked engine) exactly as the app runs them.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import STEM_NAMES  # noqa: E402
from engine.dsp.stft import istft, stft  # noqa: E402
from engine.dsp.wiener import softmask  # noqa: E402


def irm_oracle(mixture: np.ndarray, stems: dict[str, np.ndarray], n_fft: int = 4096, hop: int = 1024) -> dict:
    """Ideal ratio mask from the reference magnitudes (``|S_j| / sum_k |S_k|``) applied to the mixture STFT."""
    names = list(stems)
    mix = torch.from_numpy(mixture)[None]
    refs = torch.from_numpy(np.stack([stems[n] for n in names]))[None]
    est = istft(softmask(stft(mix, n_fft, hop), stft(refs, n_fft, hop).abs()), mixture.shape[-1], n_fft, hop)
    return {name: est[0, i].numpy() for i, name in enumerate(names)}


def _methods(args: argparse.Namespace) -> dict[str, object]:
    """Method name -> a loaded model (None for the two references)."""
    from engine.models.catalogue import load_model
    from engine.train.export import load_run

    methods: dict[str, object] = {"mixture": None}
    try:  # the registry's oracle (IRM2: power ratio masks) when installed, else our magnitude-ratio IRM
        methods["irm"] = load_model("irm")
    except Exception:  # noqa: BLE001 - any failure falls back to the local oracle
        methods["irm"] = None
    for name in args.models or []:
        methods[name] = load_model(name)
    for run in args.runs or []:
        _, model = load_run(run)
        methods[Path(run).name] = model
    if args.wiener > 0:  # the spectrogram models again, with the multichannel Wiener post-step
        for name in list(methods):
            model = methods[name]
            if model is not None and hasattr(model, "wiener_iterations"):
                filtered = copy.deepcopy(model)
                filtered.wiener_iterations = args.wiener
                methods[f"{name}+wiener{args.wiener}"] = filtered
    return methods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="corpus root (MUSDB18-HQ layout)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--models", nargs="*", default=None, help="shipped model names")
    parser.add_argument("--runs", nargs="*", default=None, help="training run folders (best weights)")
    parser.add_argument("--wiener", type=int, default=0, help="also run spectrogram models with N EM iterations")
    parser.add_argument("--tracks", type=int, default=0, help="evaluate only the first N tracks (0: all)")
    parser.add_argument("--seconds", type=float, default=0.0, help="cut each track to its first S seconds (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from engine.data.musdb import iter_tracks
    from engine.evaluate import evaluate_track, summary, write_reports
    from engine.separation.separator import Separator

    methods = _methods(args)
    separators = {name: Separator(model, device="cpu") for name, model in methods.items() if model is not None}
    results: dict[str, list] = {name: [] for name in methods}
    seconds_used: dict[str, float] = {name: 0.0 for name in methods}
    n_done = 0
    for name, mixture, stems, samplerate in iter_tracks(args.data, args.split):
        if args.tracks and n_done >= args.tracks:
            break
        if args.seconds > 0:
            n = int(args.seconds * samplerate)
            mixture, stems = mixture[:, :n], {k: v[:, :n] for k, v in stems.items()}
        references = {k: stems[k] for k in STEM_NAMES if k in stems}
        for method in methods:
            start = time.perf_counter()
            if method == "mixture":
                estimates = {k: mixture for k in references}
            elif method == "irm" and methods["irm"] is None:
                estimates = irm_oracle(mixture, references)
            elif separators[method].needs_references:
                estimates = separators[method].separate(mixture, samplerate, references=references)
            else:
                estimates = separators[method].separate(mixture, samplerate)
            seconds_used[method] += time.perf_counter() - start
            results[method].append(evaluate_track(references, estimates, samplerate, name=name))
        n_done += 1
        print(f"{name} done ({n_done})", file=sys.stderr)
    if n_done == 0:
        print(f"no tracks in {args.data}/{args.split}", file=sys.stderr)
        return 1
    written = write_reports(results, args.out, metric="SDR")
    sdr = summary(results, metric="SDR", aggregate="median")
    usdr = summary(results, metric="uSDR", aggregate="mean")
    stems = [s for s in STEM_NAMES if any(s in row for row in sdr.values())]
    print(f"SDR (BSS Eval v4, median over windows then tracks), {n_done} tracks of {args.data}/{args.split}")
    print("| method | " + " | ".join(stems) + " | mean | uSDR mean |")
    print("|" + " --- |" * (len(stems) + 3))
    for method in methods:
        values = [sdr[method].get(s, float("nan")) for s in stems]
        mean_usdr = np.nanmean([usdr[method].get(s, float("nan")) for s in stems])
        print(f"| {method} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {np.nanmean(values):.2f} | {mean_usdr:.2f} |")
    (args.out / "summary.json").write_text(json.dumps({
        "tracks": n_done, "split": args.split, "seconds_per_track": args.seconds or None,
        "test_set": {"data": str(args.data), "split": args.split, "tracks": n_done, "seconds": args.seconds or None},
        "command": "bench/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "sdr_median": sdr, "usdr_mean": usdr, "separation_seconds": seconds_used,
    }, indent=2) + "\n")
    print(f"reports: {', '.join(str(p) for p in written.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
