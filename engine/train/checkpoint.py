"""Resumable checkpoints in safetensors, without pickle, and the best weights of a run.

``checkpoint.safetensors`` is self-contained (issue 11 commits one to continue a run on another machine):

- tensors: every network's ``state_dict`` (``modules/<name>/<parameter>``), every optimizer's state
  (``optimizers/<name>/state/<index>/<key>``), scheduler, gradient-scaler and RNG tensors (``rng/torch``), each
  named by its path in the state tree;
- metadata ``"format"``: :data:`FORMAT`; ``"checkpoint"``: one JSON document with the config (architecture, its
  arguments, objective and settings), the objective's name, the trainer's state (epoch, global step, elapsed
  seconds, early-stopping state, history), the hardware it ran on, and the rest of every state tree with each
  tensor replaced by ``{"__tensor__": "<name>"}`` (tuples, non-string keys and numpy arrays are tagged too, so
  the trees come back exactly as they were).

Files are written through :func:`engine.atomic.atomic_path`; a failed write (a full disk) keeps the previous
file and raises a :class:`ShotokuError` that names the file and says how to resume.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from engine.atomic import atomic_path
from engine.errors import DatasetError, ShotokuError

if TYPE_CHECKING:
    from engine.train.config import TrainConfig
    from engine.train.objectives.base import Objective

#: Value of the ``"format"`` metadata key of a training checkpoint.
FORMAT = "shotoku-checkpoint/1"
CHECKPOINT_FILE = "checkpoint.safetensors"
BEST_FILE = "best.safetensors"


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` then replace ``path`` with it; on failure (a full disk) the old ``path`` stays and a
    :class:`ShotokuError` names the file and says how to go on."""
    try:
        with atomic_path(path) as temp:
            write(temp)
    except (OSError, RuntimeError, SafetensorError) as err:
        raise ShotokuError(f"{path}: could not be written ({err}); the previous one is kept. Free some disk "
                           "space and run the same command again: training resumes from the last checkpoint") from err


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """``tensors`` as a safetensors file at ``path``, atomically (bytes written by us, so a full disk raises)."""
    data = save(tensors, metadata=metadata)
    write_atomically(path, lambda temp: temp.write_bytes(data))


def save_weights(module: nn.Module, path: Path) -> None:
    """``module``'s ``state_dict`` in float32 (the run's best weights, ``best.safetensors``)."""
    tensors = {k: v.detach().cpu().float().contiguous().clone() if v.is_floating_point() else v.detach().cpu().clone()
               for k, v in module.state_dict().items()}
    write_safetensors(path, tensors)


# --- state trees <-> (JSON, tensors) ------------------------------------------------------------------------------


def encode_state(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON, its tensors moved to ``tensors`` under names starting with ``prefix``."""
    if isinstance(value, torch.Tensor):
        key = prefix
        if key in tensors:
            raise ValueError(f"two tensors named {key!r} in a checkpoint")
        tensor = value.detach().cpu()
        tagged: dict[str, Any] = {"__tensor__": key}
        if tensor.is_complex():
            tensor, tagged["complex"] = torch.view_as_real(tensor), True
        tensors[key] = tensor.contiguous().clone()
        return tagged
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode_state(v, f"{prefix}/{k}", tensors) for k, v in value.items()}
        return {"__items__": [[encode_state(k, f"{prefix}/key", {}), encode_state(v, f"{prefix}/{k}", tensors)]
                              for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_state(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_state(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{prefix}: cannot checkpoint a {type(value).__name__} (tensors, numbers, strings, lists, "
                    "tuples and dicts only)")


def decode_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(value, list):
        return [decode_state(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        tensor = tensors[value["__tensor__"]]
        return torch.view_as_complex(tensor) if value.get("complex") else tensor
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(decode_state(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {decode_state(k, tensors): decode_state(v, tensors) for k, v in value["__items__"]}
    return {k: decode_state(v, tensors) for k, v in value.items()}


# --- random number generators -------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """The state of torch's (CPU and CUDA), numpy's global and python's generators."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(legacy=False),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (CUDA generators only when this machine has as many GPUs)."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in cuda])


def hardware(device: torch.device) -> dict[str, Any]:
    """Where a checkpoint was written: machine, CPU, device, torch and python versions."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or "",
        "system": platform.system(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": str(device),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


# --- the checkpoint -----------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A checkpoint's content, state trees decoded (tensors on the CPU).

    Attributes:
        info: the JSON document without the state trees: ``format_version``, ``objective``, ``config``,
            ``trainer``, ``hardware``, ``saved_at``.
        state: ``modules``, ``optimizers``, ``schedulers``, ``scaler``, ``objective_state``, ``rng``.
    """

    info: dict[str, Any]
    state: dict[str, Any]

    @property
    def trainer(self) -> dict[str, Any]:
        return self.info["trainer"]


_STATE_KEYS = ("modules", "optimizers", "schedulers", "scaler", "objective_state", "rng")


def save_checkpoint(path: Path, info: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``info`` (JSON) and ``state`` (trees of tensors and JSON values) to ``path`` atomically."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = {key: encode_state(state[key], key, tensors) for key in _STATE_KEYS if key in state}
    document = {"format_version": 1, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info, "state": encoded}
    write_safetensors(path, tensors, metadata={"format": FORMAT, "checkpoint": json.dumps(document)})


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """The JSON document of a checkpoint (no tensors read): config, objective, trainer state, hardware."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (OSError, SafetensorError) as err:
        raise DatasetError(path, f"not a readable checkpoint ({err})") from None
    if metadata.get("format") != FORMAT or "checkpoint" not in metadata:
        raise DatasetError(path, f"not a Shotoku training checkpoint (format {metadata.get('format')!r})")
    return json.loads(metadata["checkpoint"])


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle is involved)."""
    document = read_checkpoint_info(path)
    tensors = load_file(str(path))
    encoded = document.pop("state")
    return Checkpoint(info=document, state={key: decode_state(value, tensors) for key, value in encoded.items()})


def capture_objective(objective: Objective) -> dict[str, Any]:
    """The objective's part of a checkpoint: ``modules``, ``optimizers``, ``schedulers`` (each by name) and
    ``objective_state``."""
    return {
        "modules": {name: module.state_dict() for name, module in objective.modules().items()},
        "optimizers": {name: opt.state_dict() for name, opt in objective.optimizers().items()},
        "schedulers": {name: s.state_dict() for name, s in objective.schedulers().items()},
        "objective_state": objective.state(),
    }


def restore_objective(objective: Objective, state: dict[str, Any], path: Path) -> None:
    """Load what :func:`capture_objective` saved into a set-up ``objective`` (same names)."""
    for kind, parts in (("modules", objective.modules()), ("optimizers", objective.optimizers()),
                        ("schedulers", objective.schedulers())):
        missing = set(parts) - set(state[kind])
        if missing:
            raise DatasetError(path, f"checkpoint has no {kind} named {', '.join(sorted(missing))}")
        for name, part in parts.items():
            part.load_state_dict(state[kind][name])
    objective.load_state(state["objective_state"])


def check_same_run(checkpoint: Checkpoint, config: TrainConfig, objective_name: str, path: Path) -> None:
    """Refuse (:class:`DatasetError`) a checkpoint of another architecture, other arguments or objective."""
    saved = checkpoint.info["config"]
    if saved["architecture"] != config.architecture or saved["model"] != json.loads(json.dumps(config.model)):
        raise DatasetError(path, "checkpoint was trained with another architecture or arguments")
    if checkpoint.info["objective"] != objective_name:
        raise DatasetError(path, f"checkpoint was trained with the {checkpoint.info['objective']!r} objective, "
                                 f"not {objective_name!r}")
