"""Training in one call: :func:`fit` (a config, a dataset, validation tracks) and :func:`train` (a MUSDB-layout
corpus folder), both through the :class:`~engine.train.trainer.Trainer` and the config's objective."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from engine.progress import ProgressCallback
from engine.train.config import TrainConfig
from engine.train.objectives import Objective, build_objective
from engine.train.runtime import seed_everything
from engine.train.trainer import Trainer, TrainResult
from engine.train.validation import ValidTrack


def fit(
    config: TrainConfig,
    train_set: Dataset,
    valid_tracks: Sequence[ValidTrack],
    run_dir: str | Path,
    resume: bool = True,
    device: str | None = None,
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    progress: ProgressCallback | None = None,
    objective: Objective | None = None,
) -> TrainResult:
    """Train ``config``'s objective (default supervised) on ``train_set``, validating on ``valid_tracks``.

    Args:
        config: architecture, its arguments, the objective and the training settings.
        train_set: what the objective's ``training_step`` takes, batched; for the supervised objective
            ``(mixture (n_channels, n_samples), stems (n_stems, n_channels, n_samples))``.
        valid_tracks: excerpts for the per-epoch uSDR; early stopping watches their mean over stems.
        run_dir: folder for the checkpoint, the best weights and the logs.
        resume: continue from ``run_dir/checkpoint.safetensors`` when it exists (same architecture, arguments
            and objective).
        device: torch device name (default: CUDA when present, else MPS, else CPU).
        show_progress: draw a progress line per epoch on stderr (rank 0).
        on_epoch: called with each epoch's log row (rank 0).
        progress: called with ``(fraction of the epoch, detail)`` after every step (rank 0).
        objective: an objective already built from ``config`` (default: :func:`build_objective`, after seeding
            with ``config.train.seed`` so the initial weights depend on the seed only).

    Returns:
        :class:`TrainResult`; the best weights are in ``run_dir/best.safetensors``.
    """
    if objective is None:
        seed_everything(config.train.seed)
        objective = build_objective(config)
    trainer = Trainer(objective, config, run_dir, device=device, resume=resume, show_progress=show_progress,
                      on_epoch=on_epoch, progress=progress)
    return trainer.fit(train_set, valid_tracks)


def train(
    config: TrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    resume: bool = True,
    device: str | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """:func:`fit` on the corpus in ``data_dir``: the objective's :meth:`~Objective.train_dataset` and
    :meth:`~Objective.valid_tracks` (default: the MUSDB-layout ``train`` split, and the ``valid`` split's excerpts)."""
    seed_everything(config.train.seed)
    objective = build_objective(config)
    data_dir = Path(data_dir)
    return fit(config, objective.train_dataset(data_dir), objective.valid_tracks(data_dir), run_dir, resume=resume,
               device=device, show_progress=show_progress, objective=objective)
