"""Is a trained complex-domain model still at a trivial solution? Its supervised loss on training excerpts beside
the same loss of trivial outputs: silence and ``scale x mixture`` on every stem (issue 11: why ``bsrnn`` and
``tfctdf`` lose to ``openunmix`` at the same CPU budget).

Usage::

    .venv/bin/python bench/loss_floor.py runs/tfctdf-budget runs/bsrnn-budget --data corpus

Prints one markdown row per run and per trivial output: the loss of each stem (``engine.train.losses.term_losses``,
the loss the trainer minimises, in the model's own domain) on ``--excerpts`` excerpts of ``--seconds`` from the
train split (fixed seed, no augmentation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class ScaledMixture(nn.Module):
    """A trivial estimator: every stem = ``scale`` x the mixture spectrogram ``(b, c, f, t)`` -> ``(b, s, c, f, t)``."""

    def __init__(self, n_stems: int, scale: float) -> None:
        super().__init__()
        self.n_stems, self.scale = n_stems, scale

    def forward(self, spec: Tensor) -> Tensor:
        return spec[:, None].expand(-1, self.n_stems, -1, -1, -1) * self.scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (shotoku train --out)")
    parser.add_argument("--data", type=Path, default=ROOT / "corpus")
    parser.add_argument("--excerpts", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from engine.data.known import KnownStemsDataset
    from engine.train.export import load_run
    from engine.train.losses import loss_domain, term_losses

    print(f"command: python bench/loss_floor.py {' '.join(map(str, args.runs))} --data {args.data}")
    header = False
    for run in args.runs:
        _, model = load_run(run)
        model.eval()
        domain = loss_domain(model)
        data = KnownStemsDataset(args.data, ("train",), sources=tuple(model.sources), segment_seconds=args.seconds,
                                 samples_per_epoch=args.excerpts, augment=False, seed=1)
        items = [data[i] for i in range(args.excerpts)]
        mixture, stems = torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items])
        if not header:
            print(f"| run | output | {' | '.join(model.sources)} |\n|---|---|{'---:|' * len(model.sources)}")
            header = True
        rows = [("trained model", None)] + [(f"{s:g} x mixture", ScaledMixture(len(model.sources), s))
                                            for s in (0.0, 0.25, 1.0)]
        with torch.no_grad():
            for label, network in rows:
                losses = term_losses(model, mixture, stems, domain, network=network).mean(dim=0)
                print(f"| {run.name} | {label} | {' | '.join(f'{v:.3f}' for v in losses.tolist())} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
