"""Weights files: safetensors only (never unpickled), checked against the sha256 the card records."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from engine.atomic import atomic_path
from engine.errors import ModelLoadError


def sha256_file(path: Path, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def load_verified(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """The tensors of safetensors file ``path`` (on the CPU) after checking its sha256.

    Raises:
        ModelLoadError: naming the file: missing, unreadable, corrupt (sha256 mismatch), not a safetensors file,
            or holding NaN or infinite values (a file can match its card's sha256 and still be unusable).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.exists() and not path.is_file():
        raise ModelLoadError(path, "weights are not a regular file (a folder, a pipe or a device?)")
    if not path.is_file():
        raise ModelLoadError(path, "weights file is missing (reinstall Shotoku or retrain the model)")
    try:
        actual = sha256_file(path)
    except OSError as err:
        reason = "permission denied" if isinstance(err, PermissionError) else (err.strerror or str(err))
        raise ModelLoadError(path, f"weights cannot be read ({reason})") from None
    if actual != sha256:
        raise ModelLoadError(
            path, f"weights are corrupt or do not match the card (sha256 {actual[:12]}… != {sha256[:12]}…)"
        )
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(path, f"weights are not a valid safetensors file: {err}") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelLoadError(path, f"weights hold NaN or infinite values (tensor {name!r}): the model would "
                                       "give silence or noise; retrain or reinstall it")  # fmt: skip
    return state


def save_state(state: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None = torch.float16) -> str:
    """Write ``state`` to safetensors file ``path`` atomically and return its sha256.

    Floating-point tensors are stored as ``dtype`` (None keeps their own); everything goes to the CPU, contiguous.
    """
    from safetensors.torch import save_file

    stored = {
        k: (v.detach().to("cpu").to(dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu())
        .contiguous()
        for k, v in state.items()
    }
    with atomic_path(path) as temp:
        save_file(stored, str(temp))
    return sha256_file(path)
