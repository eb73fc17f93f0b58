"""Batches of an epoch: the order depends on the seed and the epoch only (so a resumed run sees the same batches),
sharded across ranks under DDP; every tensor of a batch moved to the device."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from engine.train.runtime import Runtime


def make_loader(dataset: Dataset, batch_size: int, epoch: int, seed: int, runtime: Runtime,
                num_workers: int = 0) -> DataLoader:
    """The loader of epoch ``epoch``: its order depends only on ``seed`` and ``epoch`` (sharded under DDP)."""
    sampler = None
    if runtime.world_size > 1:
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=len(dataset) >= batch_size * runtime.world_size,
        generator=torch.Generator().manual_seed(seed + epoch),
    )


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (tuples, lists, dicts) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(v, device) for v in batch)
    return batch
