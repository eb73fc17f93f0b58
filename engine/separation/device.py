"""One device-selection function for the whole project: user choice, else CUDA, else MPS, else CPU."""

from __future__ import annotations

import os

import torch

from engine.errors import ShotokuError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def select_device(preference: str | torch.device | None = None) -> torch.device:
    """The torch device to run models on.

    Args:
        preference: ``None``/``"auto"`` picks CUDA, then MPS, then CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or
            ``"mps"`` ask for that device and raise :class:`ShotokuError` with a readable reason if it is absent.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    choice = (preference or "auto").lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ShotokuError(
                f"device {choice!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
                "install a CUDA build of torch (see README) or use --device cpu"
            )
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ShotokuError(f"device {choice!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) exist")
        return device
    if choice == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ShotokuError("device 'mps' asked for, but Apple's Metal backend is not available here")
        return torch.device("mps")
    raise ShotokuError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def available_devices() -> list[tuple[str, str]]:
    """``(value, label)`` pairs for a device picker: CPU, then each CUDA GPU by name, then MPS."""
    devices = [("cpu", describe_device(torch.device("cpu")))]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            devices.append((f"cuda:{index}", describe_device(torch.device("cuda", index))))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(("mps", "Apple GPU (MPS)"))
    return devices


def describe_device(device: torch.device, n_threads: int | None = None) -> str:
    """A label for the status bar: ``"CPU (2 cores, 1 thread)"`` or ``"CUDA 0: NVIDIA H100"``.

    ``n_threads``: the inference threads the separation uses (default: the one thread rule,
    :func:`engine.separation.runner.default_threads`), not the calling process's torch setting, which the
    separation (a child process, or the first chunk) sets for itself later.
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA {index}: {torch.cuda.get_device_name(index)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    if n_threads is None:
        from engine.separation.runner import default_threads

        n_threads = default_threads()
    return f"CPU ({os.cpu_count()} cores, {n_threads} thread{'s' if n_threads != 1 else ''})"
