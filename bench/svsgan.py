"""SVSGAN (papers/003): the report's Table 1 from trained runs, on five test songs and on the whole test split, and
mixture phase against Griffin-Lim.

- **Table 1**: vocal SDR (BSS Eval v4, 1 s windows, median per song; museval's definition) of the mixture itself
  and of the four generators: Encoder (``runs/svsgan-fc``: stage 1 only), Encoder-GAN (``runs/svsgan-fc-gan``: stage
  2 from it), RNN (``runs/svsgan-rnn``), RNN-GAN (``runs/svsgan-rnn-gan``); columns Song1..Song5 (the first five
  test songs, as the report) and the median over every ``--songs`` test song (what the report wanted and could
  not do).
- **Phase**: the same runs, vocal SDR median over the test songs, resynthesised with the mixture's phase and with
  Griffin-Lim (``--griffin-lim-iterations``, zero initial phase as Algorithm 1; ``mixture`` init as a variant).

A run is ``RUNS/<name>/{config.json, best.safetensors}`` (``shotoku train svsgan-fc --data corpus``, then
``svsgan-fc-gan``, which starts from it); a missing one is printed as such. Songs are scored over ``--seconds``
from their start (0: whole songs).

Usage::

    .venv/bin/python bench/svsgan.py --data corpus --runs runs --threads 1          # the lead
    .venv/bin/python bench/svsgan.py --smoke                                        # random models (seconds)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = [("Encoder", "svsgan-fc"), ("Encoder-GAN", "svsgan-fc-gan"), ("RNN", "svsgan-rnn"),
        ("RNN-GAN", "svsgan-rnn-gan")]
N_TABLE_SONGS = 5


def vocal_sdr(vocals: np.ndarray, mixture: np.ndarray, estimate: np.ndarray, rate: int, filters_len: int,
              accompaniment: np.ndarray | None = None) -> float:
    """BSS Eval v4 SDR of the vocals (median over 1 s windows), scored with the accompaniment (default: the mixture
    minus ``estimate``) as the other source."""
    from engine.evaluate.bss_eval import bss_eval_v4

    references = np.stack([vocals, mixture - vocals])
    estimates = np.stack([estimate, mixture - estimate if accompaniment is None else accompaniment])
    return float(bss_eval_v4(references, estimates, rate, rate, filters_len).medians()["SDR"][0])


def test_songs(data: Path, n_songs: int, seconds: float) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    from engine.data.musdb import iter_tracks

    songs = []
    for name, mixture, stems, rate in iter_tracks(data, "test"):
        n = int(seconds * rate) if seconds > 0 else mixture.shape[-1]
        songs.append((name, np.ascontiguousarray(mixture[:, :n]), np.ascontiguousarray(stems["vocals"][:, :n]), rate))
        if len(songs) >= n_songs:
            break
    if not songs:
        raise SystemExit(f"bench/svsgan.py: no test songs in {data / 'test'}")
    return songs


def load_models(runs: Path, smoke: bool) -> dict[str, object]:
    """Each row's model (None when its run is missing)."""
    import torch

    from engine.models.catalogue import build_model
    from engine.train.config import load_config
    from engine.train.export import load_run

    models: dict[str, object] = {}
    for label, name in ROWS:
        if smoke:
            torch.manual_seed(0)
            config = load_config(ROOT / "configs" / f"{name}.json")
            models[label] = build_model(config.architecture, dict(config.model, hidden=32, bottleneck=16)).eval()
            continue
        try:
            models[label] = load_run(runs / name)[1]
        except Exception as err:  # noqa: BLE001 - a missing or broken run is reported, the others still run
            print(f"({label}: {runs / name}: {str(err).splitlines()[0]})", file=sys.stderr)
            models[label] = None
    return models


def separate(model: object, mixture: np.ndarray, rate: int, threads: int, phase: str, gl_iterations: int,
             gl_init: str = "zero") -> np.ndarray:
    """The vocals ``(2, n)`` of ``model`` through the chunked engine, resynthesised with the mixture's phase, or by
    Griffin-Lim from a zero (Algorithm 1) or the mixture's initial phase."""
    import torch

    from engine.dsp.griffin_lim import synthesize_griffin_lim
    from engine.separation.separator import Separator

    class GriffinLim(torch.nn.Module):
        """``model``'s magnitudes, Griffin-Lim phases from ``gl_init`` (the pipeline itself starts from zero)."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            self.sources, self.samplerate = model.sources, model.samplerate  # type: ignore[attr-defined]
            self.n_channels, self.segment_samples = model.n_channels, model.segment_samples  # type: ignore[attr-defined]

        def forward(self, mix: torch.Tensor) -> torch.Tensor:
            m = self.inner
            spec = m.spectrogram(mix)
            return synthesize_griffin_lim(spec, m.estimator(spec.abs()), mix.shape[-1], m.n_fft, m.hop_length,
                                          m.wiener_iterations, gl_iterations, gl_init)

    runner = GriffinLim() if phase == "griffin_lim" else model
    return Separator(runner, device="cpu", n_threads=threads).separate(mixture, rate)["vocals"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "corpus")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--songs", type=int, default=1000, help="test songs of the whole-split column (default all)")
    parser.add_argument("--seconds", type=float, default=0.0, help="score this much of each song (0: all of it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--griffin-lim-iterations", type=int, default=32)
    parser.add_argument("--filters-len", type=int, default=512)
    parser.add_argument("--smoke", action="store_true", help="random-init generators on generated songs (seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        from bench.projet import smoke_corpus

        args.data = smoke_corpus(Path(tempfile.mkdtemp(prefix="svsgan-smoke-")))
        args.seconds, args.filters_len, args.griffin_lim_iterations = 3.0, 32, 4
    songs = test_songs(args.data, args.songs, args.seconds)
    models = load_models(args.runs, args.smoke)
    table: dict[str, list[float]] = {"Mixture": []}
    phase_rows: dict[str, dict[str, list[float]]] = {}
    for label, _ in ROWS:
        table[label] = []
        phase_rows[label] = {"mixture phase": [], "Griffin-Lim (zero init)": [], "Griffin-Lim (mixture init)": []}
    for _, mixture, vocals, rate in songs:
        table["Mixture"].append(vocal_sdr(vocals, mixture, mixture, rate, args.filters_len, accompaniment=mixture))
        for label, _ in ROWS:
            model = models[label]
            if model is None:
                continue
            estimate = separate(model, mixture, rate, args.threads, "mixture", args.griffin_lim_iterations)
            sdr = vocal_sdr(vocals, mixture, estimate, rate, args.filters_len)
            table[label].append(sdr)
            phase_rows[label]["mixture phase"].append(sdr)
            for init, key in (("zero", "Griffin-Lim (zero init)"), ("mixture", "Griffin-Lim (mixture init)")):
                estimate = separate(model, mixture, rate, args.threads, "griffin_lim", args.griffin_lim_iterations,
                                    init)
                phase_rows[label][key].append(vocal_sdr(vocals, mixture, estimate, rate, args.filters_len))
    n_table = min(N_TABLE_SONGS, len(songs))
    print(f"\n### SVSGAN Table 1: vocal SDR (dB), first {n_table} test songs and the median over all {len(songs)}\n")
    print("| | " + " | ".join(f"Song{k + 1}" for k in range(n_table)) + f" | median, {len(songs)} songs |")
    print("|---|" + "---|" * (n_table + 1))
    for label, values in table.items():
        if not values:
            print(f"| {label} | " + " | ".join("no run" for _ in range(n_table + 1)) + " |")
            continue
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values[:n_table]) + f" | {np.median(values):.2f} |")
    print(f"\n### Mixture phase vs Griffin-Lim ({args.griffin_lim_iterations} iterations): vocal SDR median, "
          f"{len(songs)} songs\n")
    columns = list(next(iter(phase_rows.values())))
    print("| | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label, row in phase_rows.items():
        cells = [f"{np.median(row[c]):.2f}" if row[c] else "no run" for c in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
