"""Tables of the two VAE papers from trained runs: UDT (papers/000, Figure 3) and the blind VAE (papers/004, the
MUMS table), plus the blind VAE on songs.

- **Figure 3** (UDT vs its supervised twin): SI-SDR, SIR and SAR of the target (vocals) on 2 s monaural clips,
  as box plots (printed as five-number summaries: min, lower quartile, median, upper quartile, max) and medians,
  on training-side mixtures (clips of the paired ``train`` split: our unpaired mixture pool ships no stems, so the
  paper's "training mixtures" column is scored on songs of the training distribution) and on held-out mixtures
  (the ``test`` split). Rows: the unprocessed mixture as the estimate (what a separator must beat; not in the
  paper), ``udt`` and ``udt-supervised`` (each with the weights validation picked, ``best.safetensors``, and with
  its last epoch's, from ``checkpoint.safetensors``), and the IRM oracle of the same STFT.
- **MUMS table** (slides, p. 14): SI-SDR, SIR, SAR (rows) of AE, VAE, VAEM, NMF, MixIT, IBM, IRM (columns), and
  the mixture itself (``mixture / K`` for every source: what a separator must beat; not in the slides),
  medians over test mixtures of two GM instruments (``engine.data.gm_pairs``, test sources never seen in
  training), estimates matched to the references by the best permutation (MixIT's ``M`` outputs by the best
  many-to-one grouping). NMF: Itakura-Saito NMF (Févotte, Bertin & Durrieu 2009) of each mixture with ``K``
  components, each component a source through its Wiener gain (blind: no training).
- **Songs**: the blind VAE with K = 2..4 on the synthetic ``test`` split at 5512 Hz, against K groupings of the
  stems (2: vocals / the rest; 3: vocals / bass / drums + other; 4: the four stems), with the IRM of the same
  grouping and the unprocessed ``mixture / K``.

SI-SDR: ``engine.evaluate.metrics.si_sdr``; SIR and SAR: ``engine.evaluate.bss_eval.bss_eval_v4`` over the whole
clip. A run is ``RUNS/<name>/{config.json, best.safetensors}`` (``shotoku train udt --data corpus``; configs in
``configs/``); a missing one is printed as such.

Usage::

    .venv/bin/python bench/vae.py --data corpus --runs runs --clips 100 --threads 1
    .venv/bin/python bench/vae.py --tables figure3 --target bass     # Figure 3 for the bass runs
    .venv/bin/python bench/vae.py --smoke          # tiny random models on generated data (seconds)
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _figure3_rows(unpaired: str, supervised: str) -> list[tuple[str, str]]:
    """Figure 3's rows: the mixture floor, each run with validation's pick and its last epoch, the IRM ceiling."""
    rows = [("Mixture", "@mixture")]
    for label, run in (("UDT", unpaired), ("Supervised twin", supervised)):
        rows += [(label, run), (f"{label}, last epoch", f"{run}+last")]
    return rows + [("IRM oracle", "@irm")]

FIGURE3 = _figure3_rows("udt", "udt-supervised")
#: Figure 3 for the second target (``--target bass``): runs of ``configs/udt-bass*.json``.
FIGURE3_BASS = _figure3_rows("udt-bass", "udt-bass-supervised")
TARGET_GROUPS = {"vocals": [("vocals",), ("drums", "bass", "other")], "bass": [("bass",), ("vocals", "drums", "other")]}
MUMS = [("Mixture", "@half"), ("AE", "vaebss-ae"), ("VAE", "vaebss"), ("VAEM", "vaebss+vaem"), ("NMF", "@nmf"), ("MixIT", "mixit"),
        ("IBM", "@ibm"), ("IRM", "@irm")]
SONG_GROUPS = {
    2: [("vocals",), ("drums", "bass", "other")],
    3: [("vocals",), ("bass",), ("drums", "other")],
    4: [("vocals",), ("drums",), ("bass",), ("other",)],
}
METRICS = ("SI-SDR", "SIR", "SAR")
#: BSS Eval distortion-filter taps (museval: 512); the smoke run uses fewer.
FILTERS_LEN = {"value": 512}
Clip = tuple[np.ndarray, np.ndarray]  # mixture (n,), references (n_sources, n)
Estimate = Callable[[np.ndarray, np.ndarray], np.ndarray]  # mixture (n,), references -> (n_outputs, n)


# --- metrics ------------------------------------------------------------------------------------------------------


def scores(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """``(n_sources, n)`` each -> ``(n_sources, 3)``: SI-SDR, SIR, SAR (dB, whole clip)."""
    from engine.evaluate.bss_eval import bss_eval_v4
    from engine.evaluate.metrics import si_sdr

    n = references.shape[-1]
    frames = bss_eval_v4(references[:, None], estimates[:, None], window=n, hop=n, filters_len=FILTERS_LEN["value"])
    return np.stack([si_sdr(references[:, None], estimates[:, None]), frames.sir[:, 0], frames.sar[:, 0]], axis=1)


def match(references: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """The outputs grouped onto the references: ``(n_outputs, n)`` -> ``(n_sources, n)``, by the best assignment
    (a permutation when the counts agree, else each output summed into one reference) of mean SI-SDR."""
    from engine.evaluate.metrics import si_sdr

    k, m = references.shape[0], outputs.shape[0]
    if m < k:
        raise ValueError(f"{m} outputs cannot be matched to {k} references")
    choices = itertools.permutations(range(m), k) if m == k else itertools.product(range(k), repeat=m)
    best, best_value = None, -np.inf
    for choice in choices:
        if m != k and len(set(choice)) < k:  # every reference gets at least one output
            continue
        if m == k:
            grouped = outputs[list(choice)]
        else:
            grouped = np.stack([outputs[[j for j in range(m) if choice[j] == i]].sum(axis=0) for i in range(k)])
        value = float(np.mean(np.nan_to_num(si_sdr(references[:, None], grouped[:, None]), neginf=-100)))
        if value > best_value:
            best, best_value = grouped, value
    assert best is not None
    return best


def median(values: np.ndarray) -> float:
    """The median of the finite values (NaN when there are none)."""
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


def summary(values: np.ndarray) -> str:
    """Five-number summary of a box plot: ``min / q1 / median / q3 / max``."""
    values = values[np.isfinite(values)]
    if not values.size:
        return "-"
    return " / ".join(f"{v:.1f}" for v in np.percentile(values, [0, 25, 50, 75, 100]))


# --- estimators ---------------------------------------------------------------------------------------------------


def oracle(kind: str, n_fft: int, hop: int) -> Estimate:
    """IRM (magnitude ratio) or IBM (the loudest source takes the bin) from the references' STFT."""
    import torch

    from engine.dsp.stft import istft, stft

    def run(mixture: np.ndarray, references: np.ndarray) -> np.ndarray:
        spec = stft(torch.from_numpy(references.astype(np.float32)), n_fft, hop).abs()
        if kind == "ibm":
            masks = (spec == spec.max(dim=0, keepdim=True).values).float()
        else:
            masks = spec / (spec.sum(dim=0, keepdim=True) + 1e-8)
        mix = stft(torch.from_numpy(mixture.astype(np.float32))[None], n_fft, hop)
        return istft(masks * mix, mixture.shape[-1], n_fft, hop).numpy()

    return run


def is_nmf(k: int, n_fft: int, hop: int, iterations: int = 200, seed: int = 0) -> Estimate:
    """Blind IS-NMF of the mixture's power spectrogram with ``k`` components; component ``j`` is a source through
    its Wiener gain ``W_j H_j / (W H)``. Multiplicative updates of Févotte et al. 2009 (a few lines; no dependency
    of the project offers IS-NMF)."""
    import torch

    from engine.dsp.stft import istft, stft

    def run(mixture: np.ndarray, references: np.ndarray) -> np.ndarray:
        spec = stft(torch.from_numpy(mixture.astype(np.float32))[None], n_fft, hop)[0]
        v = spec.abs().double().square() + 1e-10
        g = torch.Generator().manual_seed(seed)
        w = torch.rand(v.shape[0], k, generator=g, dtype=torch.float64) + 0.1
        h = torch.rand(k, v.shape[1], generator=g, dtype=torch.float64) + 0.1
        for _ in range(iterations):
            vh = w @ h
            h *= (w.T @ (v * vh**-2)) / (w.T @ vh**-1)
            vh = w @ h
            w *= ((v * vh**-2) @ h.T) / (vh**-1 @ h.T)
        parts = w[:, :, None] * h[None]  # (bins, k, frames)
        gains = (parts / parts.sum(dim=1, keepdim=True)).permute(1, 0, 2)
        return istft(gains.float() * spec[None], mixture.shape[-1], n_fft, hop).numpy()

    return run


def from_run(source: str, runs: Path) -> tuple[Estimate | None, str]:
    """The estimator of a run folder (``name+vaem``: the same run with the VAE mask on)."""
    import torch

    from engine.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
    from engine.train.export import load_run

    name, _, option = source.partition("+")
    run_dir = runs / name
    if not (run_dir / "best.safetensors").is_file():
        return None, f"not trained ({name}/best.safetensors missing)"
    if option == "last" and not (run_dir / CHECKPOINT_FILE).is_file():
        return None, f"no last epoch ({name}/{CHECKPOINT_FILE} missing)"
    _, model = load_run(run_dir)
    if option == "last":  # the last epoch's weights instead of the validation's pick
        model.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_FILE).state["modules"]["model"])
    if option == "vaem":
        model.estimator.vaem = True
    elif hasattr(model.estimator, "vaem") and name != "mixit":
        model.estimator.vaem = False

    def run(mixture: np.ndarray, references: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(mixture.astype(np.float32))[None, None])
        return out[0, :, 0].numpy()

    return run, f"run {name}" + {"vaem": " with VAEM", "last": ", last epoch"}.get(option, "")


def estimator(source: str, runs: Path, n_fft: int, hop: int, k: int) -> tuple[Estimate | None, str]:
    if source == "@mixture":  # the unprocessed mixture as the target's estimate: what a separator must beat
        return (lambda mixture, references: np.stack([mixture] * k)), "no separation: the mixture itself"
    if source == "@half":
        return (lambda mixture, references: np.stack([mixture / k] * k)), "no separation: mixture / K for each"
    if source in ("@irm", "@ibm"):
        return oracle(source[1:], n_fft, hop), "oracle"
    if source == "@nmf":
        return is_nmf(k, n_fft, hop), f"IS-NMF, {k} components"
    return from_run(source, runs)


def evaluate(estimate: Estimate, clips: list[Clip], target_only: bool) -> np.ndarray:
    """Scores ``(n_clips, 3)`` of the target (source 0) or ``(n_clips * n_sources, 3)`` of every source."""
    rows = []
    for mixture, references in clips:
        outputs = estimate(mixture, references)
        if not target_only:
            outputs = match(references, outputs)
        values = scores(references, outputs[: references.shape[0]])
        rows.append(values[:1] if target_only else values)
    return np.concatenate(rows) if rows else np.full((0, 3), np.nan)


# --- data ---------------------------------------------------------------------------------------------------------


def song_clips(data: Path, split: str, groups: list[tuple[str, ...]], seconds: float, rate: int, n_clips: int
               ) -> list[Clip]:
    """Monaural clips (channel 0) of ``seconds`` from each track of ``split`` at ``rate``, references the stem
    groups; clips whose first reference is silent are left out; at most ``n_clips``."""
    import soxr

    from engine.data.musdb import iter_tracks

    clips: list[Clip] = []
    for _, _, stems, samplerate in iter_tracks(data, split):
        n = int(seconds * samplerate)
        refs = np.stack([sum(stems[s][0] for s in group) for group in groups]).astype(np.float32)
        for start in range(0, refs.shape[-1] - n + 1, n):
            part = refs[:, start : start + n]
            if rate != samplerate:
                part = soxr.resample(np.ascontiguousarray(part.T), samplerate, rate).T.astype(np.float32)
            if np.sqrt(np.mean(part[0] ** 2)) < 1e-3:
                continue
            clips.append((part.sum(axis=0), part))
            if len(clips) >= n_clips:
                return clips
    return clips


def instrument_clips(instruments: tuple[str, str], n_clips: int, pool_size: int) -> list[Clip]:
    """Test mixtures of two GM instruments (sources from the test seeds only)."""
    from engine.data.gm_pairs import InstrumentMixtures

    data = InstrumentMixtures(instruments, "test", pool_size, n_clips, seed=1)
    return [(mix[0].numpy(), sources[:, 0].numpy()) for mix, sources in (data[i] for i in range(n_clips))]


# --- tables -------------------------------------------------------------------------------------------------------


def figure3(sets: dict[str, list[Clip]], runs: Path, target: str = "vocals") -> dict:
    rows = FIGURE3 if target == "vocals" else FIGURE3_BASS
    print(f"\nFigure 3: UDT and the supervised twin, {target} of 2 s clips (box: min / q1 / median / q3 / max, dB)\n")
    print("| approach | set | n | " + " | ".join(f"{m} box | {m} median" for m in METRICS) + " | note |")
    print("|---|---|---|" + "---|---|" * len(METRICS) + "---|")
    results: dict = {}
    for label, source in rows:
        estimate, note = estimator(source, runs, 1024, 256, 2)
        results[label] = {"note": note}
        for set_name, clips in sets.items():
            values = evaluate(estimate, clips, True) if estimate is not None else None
            results[label][set_name] = None if values is None else {
                m: {"median": median(values[:, i]), "values": values[:, i].tolist()}
                for i, m in enumerate(METRICS)}
            cells = ["-", "-"] * 3 if values is None else [
                c for i in range(3) for c in (summary(values[:, i]), f"{median(values[:, i]):.1f}")]
            print(f"| {label} | {set_name} | {len(clips) if values is not None else 0} | {' | '.join(cells)} | {note} |")
    return results


def metric_table(title: str, rows: list[tuple[str, str]], clips: list[Clip], runs: Path, k: int) -> dict:
    """Medians of SI-SDR / SIR / SAR over every source of every clip; metrics as rows, methods as columns."""
    results: dict = {}
    for label, source in rows:
        estimate, note = estimator(source, runs, 512, 64, k)
        values = evaluate(estimate, clips, False) if estimate is not None else None
        results[label] = {"note": note, **({m: None for m in METRICS} if values is None else
                                           {m: median(values[:, i]) for i, m in enumerate(METRICS)})}
    print(f"\n{title}\n\n| metric | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for m in METRICS:
        print(f"| {m} | " + " | ".join("-" if r[m] is None else f"{r[m]:.2f}" for r in results.values()) + " |")
    print("\n" + "; ".join(f"{label}: {r['note']}" for label, r in results.items()))
    return results


def _smoke_inputs(folder: Path) -> tuple[Path, Path]:
    """A one-song-per-split corpus and tiny random runs (udt, udt-supervised, vaebss, vaebss-ae, vaebss-songs-k2)."""
    import soundfile as sf
    import torch

    from engine.atomic import atomic_write_json
    from engine.models.catalogue import build_model
    from engine.models.weights import save_state
    from engine.train.checkpoint import CHECKPOINT_FILE, save_checkpoint

    rng = np.random.default_rng(0)
    t = np.arange(3 * 44100) / 44100
    for split in ("train", "test"):
        stems = {"vocals": 0.2 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) * (1 + np.sin(3 * t)),
                 "drums": 0.05 * rng.standard_normal(t.size), "bass": 0.2 * np.sin(2 * np.pi * 60 * t),
                 "other": 0.1 * np.sin(2 * np.pi * 1500 * t)}
        track = folder / "corpus" / split / "s0"
        track.mkdir(parents=True)
        for stem, audio in stems.items():
            sf.write(str(track / f"{stem}.wav"), np.stack([audio, audio]).T.astype(np.float32), 44100)
        sf.write(str(track / "mixture.wav"), np.stack([sum(stems.values())] * 2).T.astype(np.float32), 44100)
    udt = {"hidden": 8, "n_fft": 1024, "hop_length": 256}
    vae = {"hidden": [16, 8], "latent_dim": 4}
    runs = folder / "runs"
    torch.manual_seed(0)
    for name, architecture, config in (("udt", "udt", udt), ("udt-supervised", "udt", udt),
                                       ("vaebss", "vaebss", vae), ("vaebss-ae", "vaebss", {**vae, "vaem": False}),
                                       ("vaebss-songs-k2", "vaebss", vae)):
        (runs / name).mkdir(parents=True)
        save_state(build_model(architecture, config).state_dict(), runs / name / "best.safetensors", dtype=None)
        atomic_write_json(runs / name / "config.json", {"architecture": architecture, "model": config})
    last = {"modules": {"model": build_model("udt", udt).state_dict()}}  # a last epoch other than the best
    save_checkpoint(runs / "udt" / CHECKPOINT_FILE, {"objective": "udt"}, last)
    return folder / "corpus", runs


def _smoke_instrument_clips(n_clips: int) -> list[Clip]:
    """Two harmonic tones per clip at 5512 Hz (the smoke needs no FluidSynth)."""
    rng = np.random.default_rng(1)
    t = np.arange(8128) / 5512
    clips = []
    for _ in range(n_clips):
        refs = np.stack([0.3 * sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3))
                         for f in rng.uniform(80, 600, size=2)]).astype(np.float32)
        clips.append((refs.sum(axis=0), refs))
    return clips


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "corpus", help="corpus with train and test splits")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--clips", type=int, default=100, help="clips per set")
    parser.add_argument("--target", choices=sorted(TARGET_GROUPS), default="vocals", help="Figure 3's target")
    parser.add_argument("--instruments", nargs=2, default=["bassoon", "violin"])
    parser.add_argument("--pool-size", type=int, default=500, help="test source clips per instrument")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tables", nargs="+", default=["figure3", "mums", "songs"],
                        choices=["figure3", "mums", "songs"])
    parser.add_argument("--out", type=Path, default=None, help="JSON file of every score")
    parser.add_argument("--smoke", action="store_true", help="tiny random models on generated data")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="vae-smoke-") as scratch:
        if args.smoke:
            args.data, args.runs = _smoke_inputs(Path(scratch))
            args.clips, FILTERS_LEN["value"] = 2, 16  # the smoke checks the shapes, not museval's numbers
        if "figure3" in args.tables:
            groups = TARGET_GROUPS[args.target]
            sets = {"train": song_clips(args.data, "train", groups, 2.0, 44100, args.clips),
                    "test": song_clips(args.data, "test", groups, 2.0, 44100, args.clips)}
            results["figure3"] = figure3(sets, args.runs, args.target)
        if "mums" in args.tables:
            clips = (_smoke_instrument_clips(args.clips) if args.smoke else
                     instrument_clips(tuple(args.instruments), args.clips, args.pool_size))
            results["mums"] = metric_table(f"MUMS table ({' + '.join(args.instruments)}): medians (dB)", MUMS,
                                           clips, args.runs, 2)
        if "songs" in args.tables:
            results["songs"] = {}
            for k, groups in SONG_GROUPS.items():
                clips = song_clips(args.data, "test", groups, 8128 / 5512, 5512, args.clips)
                rows = [("Mixture / K", "@half"), (f"VAEM K={k}", f"vaebss-songs-k{k}+vaem"), ("IRM", "@irm")]
                results["songs"][k] = metric_table(
                    f"Songs, K = {k} ({' / '.join('+'.join(g) for g in groups)}): medians (dB)", rows, clips,
                    args.runs, k)
    if args.out is not None:
        from engine.atomic import atomic_write_json

        atomic_write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
