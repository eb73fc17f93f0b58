"""The trainer: epochs, data order, validation, checkpoint/resume, early stopping, logging; the objective does the
rest (:mod:`engine.train.objectives`).

Files written in ``run_dir`` (rank 0): ``checkpoint.safetensors`` (after every epoch: everything needed to resume,
see :mod:`engine.train.checkpoint`), ``best.safetensors`` (float32 weights of the separator at the best validation
epoch), ``log.csv`` (one row per epoch), ``config.json`` and, when the ``tensorboard`` package is installed,
TensorBoard event files.

Reproducibility: the shuffling of epoch ``e`` is drawn from a generator seeded with ``seed + e`` and the
checkpoint holds the torch, numpy and python generators, so a run resumed from epoch ``e`` trains epoch ``e + 1``
exactly as the uninterrupted run would (same device and thread count).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from engine.atomic import atomic_write_json
from engine.errors import DatasetError
from engine.progress import ProgressBar, ProgressCallback
from engine.train.batches import make_loader, move_to
from engine.train.checkpoint import (
    BEST_FILE,
    CHECKPOINT_FILE,
    Checkpoint,
    capture_objective,
    check_same_run,
    hardware,
    load_checkpoint,
    restore_objective,
    rng_state,
    save_checkpoint,
    save_weights,
    set_rng_state,
)
from engine.train.config import TrainConfig
from engine.train.objectives.base import Objective, StepContext
from engine.train.runlog import EarlyStopping, RunLog
from engine.train.runtime import Runtime, seed_everything, start_runtime
from engine.train.validation import ValidTrack, evaluate_usdr, mixture_usdr, validation_score

log = logging.getLogger("shotoku.train")


@dataclass
class TrainResult:
    """What a training run achieved (rank 0's view)."""

    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_usdr: float
    best_usdr_per_stem: dict[str, float]
    mixture_usdr_per_stem: dict[str, float]
    seconds: float
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains ``objective`` with ``config.train``'s settings and keeps its run folder.

    Args:
        objective: the method (networks on the CPU, not set up yet).
        config: the run's config (settings, and what the checkpoint records: architecture, arguments).
        run_dir: folder of the checkpoint, the best weights and the logs.
        device: torch device name (default: :func:`engine.separation.device.select_device`'s choice;
            ``cuda:<LOCAL_RANK>`` under torchrun).
        resume: continue from ``run_dir/checkpoint.safetensors`` when it exists.
        show_progress: draw a progress line per epoch on stderr (rank 0).
        on_epoch: called with each epoch's log row (rank 0).
        progress: called with ``(fraction of the epoch, detail)`` after every step (rank 0).
    """

    def __init__(self, objective: Objective, config: TrainConfig, run_dir: str | Path, *,
                 device: str | None = None, resume: bool = True, show_progress: bool = True,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 progress: ProgressCallback | None = None) -> None:
        self.objective = objective
        self.config = config
        self.settings = config.train
        self.run_dir = Path(run_dir)
        self.device_preference = device
        self.resume = resume
        self.show_progress = show_progress
        self.on_epoch = on_epoch
        self.progress = progress
        self.runtime: Runtime | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.epoch = 0  # the last finished epoch
        self.global_step = 0
        self.elapsed_before = 0.0
        self.cpu_before = 0.0
        self.history: list[dict[str, Any]] = []
        self.stopping = EarlyStopping(self.settings.patience)
        self._started = time.monotonic()
        self._cpu_started = time.process_time()

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    # --- set-up ---------------------------------------------------------------------------------------------------

    def setup(self) -> Runtime:
        """Device and process group, seeds, the objective's networks and optimizers, then the checkpoint."""
        if self.runtime is not None:
            return self.runtime
        self.run_dir.mkdir(parents=True, exist_ok=True)
        runtime = self.runtime = start_runtime(self.device_preference, self.settings.amp, self.settings.compile)
        if self.settings.threads > 0:
            torch.set_num_threads(self.settings.threads)
        seed_everything(self.settings.seed + runtime.rank)
        self.objective.setup(runtime)
        self.scaler = runtime.grad_scaler()
        if self.resume and self.checkpoint_path.exists():
            self.restore(load_checkpoint(self.checkpoint_path))
        elif self.resume and (self.run_dir / "checkpoint.pt").exists():
            raise DatasetError(self.run_dir / "checkpoint.pt", "a checkpoint of the old pickle format cannot be "
                               "resumed; start afresh in another folder (--out) or with --no-resume")
        if runtime.is_main:
            atomic_write_json(self.run_dir / "config.json", self.config.to_json())
        return runtime

    def close(self) -> None:
        """Leave the process group (if this trainer joined one)."""
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None

    # --- checkpoint -----------------------------------------------------------------------------------------------

    def save(self) -> None:
        """Write ``checkpoint.safetensors`` (rank 0): networks, optimizers, schedulers, scaler, RNG, trainer state."""
        assert self.runtime is not None and self.scaler is not None
        objective = self.objective
        info = {
            "objective": objective.name,
            "config": self.config.to_json(),
            "trainer": {
                "epoch": self.epoch,
                "global_step": self.global_step,
                "elapsed_seconds": self.elapsed(),
                "cpu_seconds": self.cpu_seconds(),
                "early_stopping": self.stopping.to_json(),
                "history": self.history,
                "world_size": self.runtime.world_size,
            },
            "hardware": hardware(self.runtime.device),
        }
        state = {**capture_objective(objective), "scaler": self.scaler.state_dict(), "rng": rng_state()}
        save_checkpoint(self.checkpoint_path, info, state)

    def restore(self, checkpoint: Checkpoint) -> None:
        """Load ``checkpoint`` into the set-up objective and this trainer; refuses one of another run."""
        assert self.runtime is not None and self.scaler is not None
        path = self.checkpoint_path
        check_same_run(checkpoint, self.config, self.objective.name, path)
        state = checkpoint.state
        restore_objective(self.objective, state, path)
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        trainer = checkpoint.trainer
        self.epoch, self.global_step = int(trainer["epoch"]), int(trainer["global_step"])
        self.elapsed_before = float(trainer["elapsed_seconds"])
        self.cpu_before = float(trainer.get("cpu_seconds", 0.0))
        self.history = list(trainer["history"])
        self.stopping.load_json(trainer["early_stopping"])
        if self.runtime.is_main:
            set_rng_state(state["rng"])
        else:  # the saved generators are rank 0's; other ranks draw on from their own seed
            seed_everything(self.settings.seed + self.runtime.rank + 7919 * self.epoch)
        log.info("resumed %s at epoch %d", path, self.epoch + 1)

    # --- one epoch ------------------------------------------------------------------------------------------------

    def train_epoch(self, train_set: Dataset, epoch: int) -> dict[str, float]:
        """Train one epoch; returns the mean of each of the objective's step logs over the epoch's steps."""
        runtime = self.setup()
        assert self.scaler is not None
        settings = self.settings
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        loader = make_loader(train_set, settings.batch_size, epoch, settings.seed, runtime, settings.num_workers)
        self.objective.train(True)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bar = ProgressBar(f"epoch {epoch}/{settings.epochs}", enabled=self.show_progress and runtime.is_main,
                          callback=self.progress if runtime.is_main else None)
        with bar:
            for index, batch in enumerate(loader):
                step = StepContext(runtime, self.scaler, epoch, self.global_step, settings.grad_clip)
                logs = self.objective.training_step(move_to(batch, runtime.device), step)
                if step.stepped:
                    self.scaler.update()
                self.global_step += 1
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                    counts[key] = counts.get(key, 0) + 1
                shown = "loss" if "loss" in sums else next(iter(sums), None)
                detail = f"{shown} {sums[shown] / counts[shown]:.5f}" if shown else ""
                bar.update((index + 1) / max(1, len(loader)), detail)
        return {key: sums[key] / counts[key] for key in sums}

    def validate(self, valid_tracks: Sequence[ValidTrack], train_logs: dict[str, float]) -> tuple[float,
                                                                                                  dict[str, float]]:
        """``(score, uSDR per stem)`` of the objective's separator; the score is the mean over the stems that
        sounded, or minus the training loss without validation tracks."""
        assert self.runtime is not None
        per_stem = evaluate_usdr(self.objective.separator, valid_tracks, self.runtime.device) if valid_tracks else {}
        score = validation_score(per_stem)
        return (score if score is not None else -train_logs.get("loss", math.nan)), per_stem

    def elapsed(self) -> float:
        """Seconds of training over the whole run, resumes included."""
        return self.elapsed_before + time.monotonic() - self._started

    def cpu_seconds(self) -> float:
        """CPU seconds of this process's training over the whole run (``time.process_time``, resumes included)."""
        return self.cpu_before + time.process_time() - self._cpu_started

    # --- the run --------------------------------------------------------------------------------------------------

    def fit(self, train_set: Dataset, valid_tracks: Sequence[ValidTrack] = ()) -> TrainResult:
        """Train until ``settings.epochs``, early stopping or the time limit; returns rank 0's :class:`TrainResult`."""
        run_log: RunLog | None = None
        lower_bound: dict[str, float] = {}
        stopped = "epochs"
        try:
            runtime = self.setup()
            self._started = time.monotonic()
            self._cpu_started = time.process_time()
            if runtime.is_main:
                run_log = RunLog(self.run_dir)
                if valid_tracks:
                    lower_bound = mixture_usdr(valid_tracks, self.objective.separator.sources)
            for epoch in range(self.epoch + 1, self.settings.epochs + 1):
                reason = self.run_epoch(train_set, valid_tracks, epoch, run_log)
                if runtime.broadcast_value(1.0 if reason else 0.0):
                    stopped = reason or "stopped by rank 0"
                    break
        finally:
            if run_log is not None:
                run_log.close()
            seconds = self.elapsed()
            self.close()
        return TrainResult(
            run_dir=self.run_dir,
            epochs_run=self.epoch,
            best_epoch=self.stopping.best_epoch,
            best_usdr=self.stopping.best_score,
            best_usdr_per_stem=self.stopping.best_per_stem,
            mixture_usdr_per_stem=lower_bound,
            seconds=seconds,
            stopped=stopped,
            history=self.history,
        )

    def run_epoch(self, train_set: Dataset, valid_tracks: Sequence[ValidTrack], epoch: int,
                  run_log: RunLog | None) -> str:
        """Train, validate, log and checkpoint one epoch; returns why to stop (``""``: go on; rank 0 decides)."""
        runtime = self.setup()
        started = time.monotonic()
        train_logs = self.train_epoch(train_set, epoch)
        score, per_stem = self.validate(valid_tracks, train_logs) if runtime.is_main else (math.nan, {})
        score = runtime.broadcast_value(score)  # every rank's plateau scheduler sees the same score
        self.objective.end_epoch(epoch, score)
        self.epoch = epoch
        if not runtime.is_main:
            return ""
        diverged = not math.isfinite(train_logs.get("loss", 0.0))  # then keep the last good checkpoint and best
        improved = not diverged and self.stopping.update(epoch, score, per_stem)
        if improved:
            save_weights(self.objective.separator, self.run_dir / BEST_FILE)
        row = self._row(epoch, train_logs, score, per_stem, time.monotonic() - started, improved)
        self.history.append(row)
        if run_log is not None:
            run_log.write(row)
        if diverged:
            return (f"diverged: the training loss of epoch {epoch} is not finite; the checkpoint of epoch "
                    f"{epoch - 1} and the best weights are kept (lower the learning rate or clip gradients)")
        if self.on_epoch is not None:
            self.on_epoch(row)
        self.save()
        if self.stopping.should_stop:
            return "early stopping"
        if self.settings.max_minutes > 0 and self.elapsed() > 60 * self.settings.max_minutes:
            return "time limit"
        if self.settings.max_cpu_minutes > 0 and self.cpu_seconds() > 60 * self.settings.max_cpu_minutes:
            return "cpu time limit"
        return ""

    def _row(self, epoch: int, train_logs: dict[str, float], score: float, per_stem: dict[str, float],
             epoch_seconds: float, improved: bool) -> dict[str, Any]:
        rates = self.objective.learning_rates()
        return {
            "epoch": epoch,
            **{f"train_{key}": round(value, 6) for key, value in train_logs.items()},
            "valid_usdr": round(score, 3),
            **{f"valid_usdr_{key}": round(value, 3) for key, value in per_stem.items()},
            **({"lr": next(iter(rates.values()))} if len(rates) == 1 else {f"lr_{k}": v for k, v in rates.items()}),
            "epoch_seconds": round(epoch_seconds, 1),
            "elapsed_seconds": round(self.elapsed(), 1),
            "best": int(improved),
            "cpu_seconds": round(self.cpu_seconds(), 1),  # last: a log.csv begun before this column stays aligned
        }
