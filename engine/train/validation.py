"""Per-epoch validation: uSDR per stem of the objective's separator on a few excerpts.

The metric is :func:`engine.evaluate.metrics.usdr` (the project's one uSDR). A stem that is silent in an excerpt
is left out of that stem's mean (see :func:`mean_over_sounding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.errors import DatasetError
from engine.evaluate.metrics import usdr
from engine.train.runtime import eval_mode

#: A validation track: ``(name, mixture (n_channels, n_samples), stems (n_stems, n_channels, n_samples))``.
ValidTrack = tuple[str, np.ndarray, np.ndarray]

#: A reference stem quieter than this (mean square over the excerpt, about -80 dBFS) is silent there.
SILENT_MEAN_SQUARE = 1e-8


def mean_over_sounding(scores: Sequence[np.ndarray], references: Sequence[np.ndarray],
                       sources: Sequence[str]) -> dict[str, float]:
    """Mean per stem of ``scores`` (each ``(n_stems,)``) over the tracks where that reference stem sounds.

    uSDR of a silent reference is meaningless (about -30 dB for any estimate that is not silent too): an excerpt
    whose vocals have not started yet would otherwise drag the stem's mean down and hide real progress. A stem
    silent in every track scores NaN.

    Args:
        scores: one ``(n_stems,)`` array per track.
        references: the tracks' reference stems, each ``(n_stems, n_channels, n_samples)``.
        sources: stem names in the order of the stem axis.
    """
    table = np.stack(scores).astype(np.float64)
    sounding = np.stack([np.mean(np.square(r, dtype=np.float64), axis=(-2, -1)) > SILENT_MEAN_SQUARE
                         for r in references])
    counts = sounding.sum(axis=0)
    totals = np.where(sounding, table, 0.0).sum(axis=0)
    return {source: float(totals[i] / counts[i]) if counts[i] else float("nan") for i, source in enumerate(sources)}


@torch.inference_mode()
def evaluate_usdr(model: nn.Module, tracks: Sequence[ValidTrack], device: torch.device | str) -> dict[str, float]:
    """Mean uSDR (dB) per stem of ``model`` over ``tracks``, each excerpt separated in one forward pass (eval
    mode; the model's mode is restored afterwards)."""
    device = torch.device(device)
    scores: list[np.ndarray] = []
    with eval_mode(model):
        for _, mixture, stems in tracks:
            estimate = model(torch.from_numpy(mixture).to(device)[None])[0].float().cpu().numpy()
            scores.append(usdr(stems, estimate))
    return mean_over_sounding(scores, [stems for _, _, stems in tracks], list(model.sources))


def mixture_usdr(tracks: Sequence[ValidTrack], sources: Sequence[str]) -> dict[str, float]:
    """Mean uSDR per stem of the unprocessed mixture used as every estimate: the lower bound."""
    scores = [usdr(stems, np.broadcast_to(mixture, stems.shape)) for _, mixture, stems in tracks]
    return mean_over_sounding(scores, [stems for _, _, stems in tracks], sources)


def validation_score(per_stem: dict[str, float]) -> float | None:
    """The number early stopping watches: the mean uSDR over the stems that sounded (None if none did)."""
    sounding = [value for value in per_stem.values() if np.isfinite(value)]
    return float(np.mean(sounding)) if sounding else None


def load_valid_tracks(
    data_dir: str | Path, sources: Sequence[str], n_tracks: int, seconds: float, split: str = "valid"
) -> list[ValidTrack]:
    """The first ``n_tracks`` tracks of ``split``, cut to their first ``seconds`` (stems stacked in ``sources`` order;
    ``"accompaniment"``, which the corpus does not store, is ``mixture - vocals``: the mixture is the exact sum of
    the stems)."""
    from engine.data.musdb import iter_tracks

    tracks: list[ValidTrack] = []
    for name, mixture, stems, samplerate in iter_tracks(data_dir, split):
        n = int(seconds * samplerate) if seconds > 0 else mixture.shape[-1]
        if "accompaniment" in sources and "accompaniment" not in stems and "vocals" in stems:
            stems = {**stems, "accompaniment": mixture - stems["vocals"]}
        stacked = np.stack([stems[s][:, :n] for s in sources]).astype(np.float32)
        tracks.append((name, np.ascontiguousarray(mixture[:, :n], dtype=np.float32), stacked))
        if len(tracks) >= n_tracks:
            break
    if not tracks:
        raise DatasetError(Path(data_dir) / split, "no validation tracks")
    return tracks
