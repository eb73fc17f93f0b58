"""The training loop: checkpoints and resume, validation uSDR with early stopping, CSV log, AMP, compile, DDP.

Launched as a plain process it trains on one device; launched by ``torchrun`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) it joins the process group (NCCL on CUDA, gloo on
CPU), wraps the network in :class:`torch.nn.parallel.DistributedDataParallel` and shards the batches with a
:class:`~torch.utils.data.distributed.DistributedSampler`; rank 0 validates, logs and writes checkpoints.

Files written in ``run_dir``: ``checkpoint.pt`` (last epoch: weights, optimiser, scheduler, history; loaded with
``weights_only=True``), ``best.safetensors`` (float32 weights of the best validation epoch), ``log.csv`` (one
row per epoch), ``config.json`` and, when the ``tensorboard`` package is installed, TensorBoard event files.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from engine.cli.progress import ProgressBar
from engine.errors import DatasetError, ShotokuError
from engine.separation.registry import build_model
from engine.train.config import TrainConfig
from engine.train.losses import EstimateWrapper, loss_domain, separation_loss, usdr

log = logging.getLogger("shotoku.train")

#: A validation track: ``(name, mixture (n_channels, n_samples), stems (n_stems, n_channels, n_samples))``.
ValidTrack = tuple[str, np.ndarray, np.ndarray]


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


def _distributed_setup(device: torch.device) -> tuple[int, int]:
    """Join the torchrun process group if the environment asks for one; returns ``(rank, world_size)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and dist.is_available():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@torch.inference_mode()
def evaluate_usdr(model: nn.Module, tracks: Sequence[ValidTrack], device: torch.device) -> dict[str, float]:
    """Mean uSDR (dB) per stem of ``model`` over ``tracks`` (each excerpt separated in one forward pass)."""
    was_training = model.training
    model.eval()
    scores: list[np.ndarray] = []
    for _, mixture, stems in tracks:
        estimate = model(torch.from_numpy(mixture).to(device)[None])[0].float().cpu()
        scores.append(usdr(torch.from_numpy(stems), estimate).numpy())
    model.train(was_training)
    return _mean_over_sounding(scores, [stems for _, _, stems in tracks], model.sources)


#: A reference stem quieter than this (mean square over the excerpt, about -80 dBFS) is silent there.
SILENT_MEAN_SQUARE = 1e-8


def _mean_over_sounding(scores: Sequence[np.ndarray], references: Sequence[np.ndarray],
                        sources: Sequence[str]) -> dict[str, float]:
    """Mean per stem of ``scores`` (each ``(n_stems,)``) over the tracks where that reference stem sounds.

    uSDR of a silent reference is meaningless (about -30 dB for any estimate that is not silent too): an excerpt
    whose vocals have not started yet would otherwise drag the stem's mean down and hide real progress. A stem
    silent in every track scores NaN.
    """
    table = np.stack(scores).astype(np.float64)
    sounding = np.stack([np.mean(np.square(r, dtype=np.float64), axis=(-2, -1)) > SILENT_MEAN_SQUARE
                         for r in references])
    counts = sounding.sum(axis=0)
    totals = np.where(sounding, table, 0.0).sum(axis=0)
    return {source: float(totals[i] / counts[i]) if counts[i] else float("nan") for i, source in enumerate(sources)}


def mixture_usdr(tracks: Sequence[ValidTrack], sources: Sequence[str]) -> dict[str, float]:
    """Mean uSDR per stem of the unprocessed mixture used as every estimate: the lower bound."""
    scores = [usdr(torch.from_numpy(s), torch.from_numpy(m)[None].expand_as(torch.from_numpy(s))).numpy()
              for _, m, s in tracks]
    return _mean_over_sounding(scores, [s for _, _, s in tracks], sources)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename over ``path``; on failure (a full disk) the old ``path`` stays and a
    :class:`ShotokuError` names the file and says how to go on."""
    tmp = path.with_suffix(".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch reports a short write as RuntimeError
        tmp.unlink(missing_ok=True)
        raise ShotokuError(f"{path}: could not be written ({err}); the previous one is kept. Free some disk "
                           "space and run the same command again: training resumes from the last checkpoint") from err


def _torch_save(state: dict[str, Any], path: Path) -> None:
    torch.save(state, path)


def _save_safetensors(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()}
    _write_atomically(path, lambda tmp: save_file(tensors, str(tmp)))


def _write_log_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _tensorboard(run_dir: Path) -> Any | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the tensorboard package is optional
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def fit(
    config: TrainConfig,
    train_set: Dataset,
    valid_tracks: Sequence[ValidTrack],
    run_dir: str | Path,
    resume: bool = True,
    device: str | None = None,
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``config.architecture`` on ``train_set`` and validate on ``valid_tracks`` each epoch.

    Args:
        config: architecture, its arguments and the training settings.
        train_set: yields ``(mixture (n_channels, n_samples), stems (n_stems, n_channels, n_samples))``.
        valid_tracks: excerpts for the per-epoch uSDR; early stopping watches their mean over stems.
        run_dir: folder for the checkpoint, the best weights and the logs.
        resume: continue from ``run_dir/checkpoint.pt`` when it exists (same architecture and arguments).
        device: torch device name (default: CUDA when present, else CPU).
        show_progress: draw a progress bar per epoch on stderr (rank 0).
        on_epoch: called with each epoch's log row (rank 0).

    Returns:
        :class:`TrainResult`; the best weights are in ``run_dir/best.safetensors``.
    """
    settings = config.train
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch_device = _pick_device(device)
    rank, world_size = _distributed_setup(torch_device)
    is_main = rank == 0
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed + rank)

    model = build_model(config.architecture, config.model).to(torch_device)
    domain = loss_domain(model, settings.loss)
    forward: nn.Module = EstimateWrapper(model) if domain == "magnitude" else model
    if world_size > 1 or dist.is_initialized():
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[torch_device.index] if torch_device.type == "cuda" else None
        )
    if settings.compile:
        forward = torch.compile(forward)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=settings.lr_decay_gamma, patience=settings.lr_decay_patience
    )
    use_amp = settings.amp
    amp_dtype = torch.float16 if torch_device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(torch_device.type, enabled=use_amp and amp_dtype == torch.float16)

    checkpoint_path = run_dir / "checkpoint.pt"
    start_epoch, best_score, best_epoch, bad_epochs = 1, -math.inf, 0, 0
    best_per_stem: dict[str, float] = {}
    history: list[dict[str, Any]] = []
    elapsed_before = 0.0
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=torch_device, weights_only=True)
        if state["architecture"] != config.architecture or json.loads(state["model_config"]) != config.model:
            raise DatasetError(checkpoint_path, "checkpoint was trained with another architecture or arguments")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        best_score, best_epoch, bad_epochs = float(state["best_score"]), int(state["best_epoch"]), int(state["bad_epochs"])
        best_per_stem = json.loads(state["best_per_stem"])
        history = json.loads(state["history"])
        elapsed_before = float(state["elapsed"])
        log.info("resumed %s at epoch %d", checkpoint_path, start_epoch)
    if is_main:
        (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")

    sampler = DistributedSampler(train_set, shuffle=True, seed=settings.seed) if world_size > 1 else None
    loader = DataLoader(
        train_set,
        batch_size=settings.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=settings.num_workers,
        drop_last=len(train_set) >= settings.batch_size * world_size,
    )
    lower_bound = mixture_usdr(valid_tracks, model.sources) if is_main and valid_tracks else {}
    writer = _tensorboard(run_dir) if is_main else None
    started = time.monotonic()
    stopped = "epochs"
    epoch = start_epoch - 1
    for epoch in range(start_epoch, settings.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        model.train()
        bar = ProgressBar(f"epoch {epoch}/{settings.epochs}") if is_main and show_progress else None
        epoch_start = time.monotonic()
        losses = []
        for step, (mixture, stems) in enumerate(loader):
            mixture, stems = mixture.to(torch_device), stems.to(torch_device)
            with torch.autocast(torch_device.type, dtype=amp_dtype, enabled=use_amp):
                loss = separation_loss(forward, model, mixture, stems, domain)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if settings.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update((step + 1) / max(1, len(loader)), f"loss {np.mean(losses):.5f}")
        if bar is not None:
            bar.close()
        train_loss = float(np.mean(losses)) if losses else float("nan")
        stop_now = torch.zeros(1)
        if is_main:
            per_stem = evaluate_usdr(model, valid_tracks, torch_device) if valid_tracks else {}
            sounding = [v for v in per_stem.values() if np.isfinite(v)]
            score = float(np.mean(sounding)) if sounding else -train_loss
            scheduler.step(score)
            improved = score > best_score
            if improved:
                best_score, best_epoch, best_per_stem, bad_epochs = score, epoch, per_stem, 0
                _save_safetensors(model, run_dir / "best.safetensors")
            else:
                bad_epochs += 1
            total_elapsed = elapsed_before + time.monotonic() - started
            row = {
                "epoch": epoch,
                "train_loss": round(train_loss, 6),
                "valid_usdr": round(score, 3),
                **{f"valid_usdr_{k}": round(v, 3) for k, v in per_stem.items()},
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": round(time.monotonic() - epoch_start, 1),
                "elapsed_seconds": round(total_elapsed, 1),
                "best": int(improved),
            }
            history.append(row)
            _write_log_row(run_dir / "log.csv", row)
            if writer is not None:
                writer.add_scalar("train/loss", train_loss, epoch)
                for key, value in per_stem.items():
                    writer.add_scalar(f"valid/usdr_{key}", value, epoch)
            if on_epoch is not None:
                on_epoch(row)
            state = {
                "architecture": config.architecture,
                "model_config": json.dumps(config.model),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_score": best_score,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "best_per_stem": json.dumps(best_per_stem),
                "history": json.dumps(history),
                "elapsed": total_elapsed,
            }
            _write_atomically(checkpoint_path, functools.partial(_torch_save, state))
            if bad_epochs >= settings.patience:
                stop_now[0], stopped = 1, "early stopping"
            elif settings.max_minutes > 0 and total_elapsed > 60 * settings.max_minutes:
                stop_now[0], stopped = 1, "time limit"
        if dist.is_initialized():
            dist.broadcast(stop_now, src=0)
        if stop_now.item():
            break
    if writer is not None:
        writer.close()
    seconds = elapsed_before + time.monotonic() - started
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(
        run_dir=run_dir,
        epochs_run=epoch,
        best_epoch=best_epoch,
        best_usdr=best_score,
        best_usdr_per_stem=best_per_stem,
        mixture_usdr_per_stem=lower_bound,
        seconds=seconds,
        stopped=stopped,
        history=history,
    )


def load_valid_tracks(
    data_dir: str | Path, sources: Sequence[str], n_tracks: int, seconds: float, split: str = "valid"
) -> list[ValidTrack]:
    """The first ``n_tracks`` tracks of ``split``, cut to their first ``seconds`` (stems stacked in ``sources`` order)."""
    from engine.data.musdb import iter_tracks

    tracks: list[ValidTrack] = []
    for name, mixture, stems, samplerate in iter_tracks(data_dir, split):
        n = int(seconds * samplerate) if seconds > 0 else mixture.shape[-1]
        stacked = np.stack([stems[s][:, :n] for s in sources]).astype(np.float32)
        tracks.append((name, np.ascontiguousarray(mixture[:, :n], dtype=np.float32), stacked))
        if len(tracks) >= n_tracks:
            break
    if not tracks:
        raise DatasetError(Path(data_dir) / split, "no validation tracks")
    return tracks


def train(
    config: TrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    resume: bool = True,
    device: str | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """:func:`fit` on the MUSDB-layout corpus in ``data_dir`` (``train`` split for training, ``valid`` for uSDR)."""
    from engine.data.musdb import MusdbDataset

    settings = config.train
    probe = build_model(config.architecture, config.model)
    sources = list(probe.sources)
    train_set = MusdbDataset(
        data_dir,
        "train",
        sources=tuple(sources),
        segment_seconds=settings.segment_seconds,
        samples_per_epoch=settings.samples_per_epoch,
        augment=settings.augment,
        seed=settings.seed,
    )
    valid = load_valid_tracks(data_dir, sources, settings.valid_tracks, settings.valid_seconds)
    return fit(config, train_set, valid, run_dir, resume=resume, device=device, show_progress=show_progress)
