"""Where training runs: the device, the torchrun process group, seeding, mixed precision, the DDP wrap.

Launched as a plain process a run trains on one device; launched by ``torchrun`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) it joins the process group (NCCL on CUDA, gloo
otherwise) and each objective wraps its networks with :meth:`Runtime.wrap`; rank 0 validates, logs and writes
checkpoints. The device comes from the project's one selector, :func:`engine.separation.device.select_device`.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from engine.separation.device import select_device


def training_device(preference: str | None = None) -> torch.device:
    """The device of this process: :func:`select_device`, with ``cuda:<LOCAL_RANK>`` under torchrun.

    Under torchrun each process takes the GPU of its local rank when CUDA exists and the preference is automatic
    (``None``, ``"auto"``) or a bare ``"cuda"``; an explicit ``"cuda:1"`` or ``"cpu"`` is taken as asked.
    """
    local_rank = os.environ.get("LOCAL_RANK")
    choice = (preference or "auto").lower()
    if local_rank is not None and choice in ("auto", "cuda") and torch.cuda.is_available():
        choice = f"cuda:{int(local_rank)}"
    device = select_device(choice)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@dataclass
class Runtime:
    """The process's place in a run; objectives take their device, DDP wrap and autocast from it.

    Attributes:
        device: where the networks and batches live.
        rank, world_size: this process in the torchrun group (0 and 1 without one).
        amp: mixed precision (float16 with a gradient scaler on CUDA, bfloat16 elsewhere).
        compile: wrap networks in ``torch.compile``.
    """

    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp: bool = False
    compile: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    @property
    def amp_dtype(self) -> torch.dtype:
        return torch.float16 if self.device.type == "cuda" else torch.bfloat16

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision context for forward passes (a no-op when ``amp`` is off)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only for float16 autocast (CUDA)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp and self.amp_dtype == torch.float16)

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``module`` ready to train here: in DistributedDataParallel when a process group is up, then in
        ``torch.compile`` when asked. Objectives call this once per network they optimise (a generator and each
        discriminator separately) and keep the bare module for checkpoints and validation."""
        wrapped = module
        if self.distributed:
            wrapped = nn.parallel.DistributedDataParallel(
                module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
        if self.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    def broadcast_value(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (a validation score, a stop decision)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64,
                              device=self.device if dist.get_backend() == "nccl" else "cpu")
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def close(self) -> None:
        """Leave the process group if this runtime joined it."""
        if self.owns_group and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
        self.owns_group = False


def start_runtime(device: str | None = None, amp: bool = False, compile: bool = False) -> Runtime:
    """Pick the device and join the torchrun process group when the environment asks for one."""
    torch_device = training_device(device)
    owns_group = False
    if dist.is_available() and not dist.is_initialized() and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo")
        owns_group = True
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    else:
        rank, world_size = 0, 1
    return Runtime(torch_device, rank, world_size, amp=amp, compile=compile, owns_group=owns_group)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block, its previous mode restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
