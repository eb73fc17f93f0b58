"""Turn a training run into a shipped model: ``resources/models/<name>/{weights.safetensors, card.json}``.

Weights are stored as float16 only when that costs no validation uSDR (within ``tolerance_db`` on every stem);
otherwise float32. The float16 check evaluates rounded weights inside :func:`swap_state`, which puts the
original weights back even when the evaluation fails.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine.errors import DatasetError
from engine.models.catalogue import build_model, save_model
from engine.train.checkpoint import BEST_FILE
from engine.train.config import TrainConfig
from engine.train.validation import ValidTrack, evaluate_usdr


@contextmanager
def swap_state(model: nn.Module, state: Mapping[str, Tensor]) -> Iterator[nn.Module]:
    """``model`` with ``state`` loaded (``strict=False``: a partial state swaps only those tensors) for the block;
    its own weights are restored in ``finally``, whatever the block raises (Demucs' ``states.swap_state``)."""
    original = {key: value.detach().clone() for key, value in model.state_dict().items()}
    model.load_state_dict(state, strict=False)
    try:
        yield model
    finally:
        model.load_state_dict(original)


def load_run(run_dir: str | Path) -> tuple[TrainConfig, nn.Module]:
    """The config of a run and its model with the best validation weights (float32, eval mode)."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    try:
        config = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
        state = load_file(str(run_dir / BEST_FILE))
    except FileNotFoundError as err:
        raise DatasetError(run_dir, f"not a finished training run ({Path(err.filename).name} is missing)") from None
    model = build_model(config.architecture, config.model)
    model.load_state_dict(state)
    return config, model.eval()


def half_precision_is_free(
    model: nn.Module, tracks: Sequence[ValidTrack], tolerance_db: float = 0.05
) -> tuple[bool, dict[str, float], dict[str, float]]:
    """Whether rounding the weights to float16 (then computing in float32) changes no stem's uSDR by more than
    ``tolerance_db``. Returns ``(ok, usdr_float32, usdr_float16)``."""
    device = torch.device("cpu")
    full = evaluate_usdr(model, tracks, device)
    rounded = {k: v.half().float() for k, v in model.state_dict().items() if v.is_floating_point()}
    with swap_state(model, rounded):
        half = evaluate_usdr(model, tracks, device)
    ok = all(abs(full[s] - half[s]) <= tolerance_db for s in full)
    return ok, full, half


def export_run(
    run_dir: str | Path,
    name: str,
    card_fields: dict[str, Any],
    tracks: Sequence[ValidTrack] = (),
    root: Path | None = None,
) -> Path:
    """Write the run's best weights as model ``name`` with a card; returns the model folder.

    ``card_fields`` adds to (and overrides) what the run knows: summary, paper, training recipe, scores.
    """
    config, model = load_run(run_dir)
    dtype: torch.dtype | None = torch.float16
    precision: dict[str, Any] = {}
    if tracks:
        ok, full, half = half_precision_is_free(model, tracks)
        dtype = torch.float16 if ok else None
        precision = {"valid_usdr_float32": full, "valid_usdr_float16": half, "float16_kept": ok}
    fields: dict[str, Any] = {
        "architecture": config.architecture,
        "kind": "neural",
        "config": config.model,
        "sources": list(model.sources),
        "samplerate": int(model.samplerate),
        "n_channels": int(model.n_channels),
        "segment_seconds": model.segment_samples / model.samplerate,
    }
    fields.update(card_fields)
    training = dict(fields.get("training", {}))
    training.setdefault("settings", config.train.__dict__)
    training.setdefault("objective", {"name": config.objective, "args": config.objective_args})
    training.setdefault("machine", f"{platform.machine()} {platform.processor() or ''}".strip())
    training.setdefault("torch", torch.__version__)
    if precision:
        training["precision_check"] = precision
    fields["training"] = training
    return save_model(model, name, fields, root=root, dtype=dtype)
