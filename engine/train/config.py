"""Training configuration: one JSON file per model in ``configs/`` (paper defaults beside our scaled-down ones).

A config file looks like::

    {
      "architecture": "mmdensenet",
      "model": {...constructor kwargs used for training here...},
      "paper_model": {...the paper's sizes, for reference; not used unless --paper...},
      "objective": "supervised",
      "objective_args": {...the objective's own settings (loss weights, update schedule, ...)...},
      "train": {"epochs": 40, "batch_size": 8, "lr": 1e-3, ...}
    }

``architecture`` and ``model`` describe the separator that is validated and exported; ``objective`` names the
training objective (:mod:`engine.train.objectives`, default ``"supervised"``), which may build further networks
(discriminators, encoders) from ``objective_args``. Unknown keys in ``train`` are an error, so a typo never silently
trains with a default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.errors import DatasetError

#: Repository folder holding one ``<architecture>.json`` per model.
CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class TrainSettings:
    """Optimisation and data settings (everything except the architecture's own arguments)."""

    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-5
    grad_clip: float = 5.0
    segment_seconds: float = 3.0
    samples_per_epoch: int = 256
    patience: int = 5
    lr_decay_patience: int = 3
    lr_decay_gamma: float = 0.3
    valid_tracks: int = 4
    valid_seconds: float = 10.0
    # supervised objective: "auto" (the estimator's domain for a MaskSeparator, else waveform), "magnitude" (MSE on
    # |STFT|), "complex" (L1 on real/imag + L1 on the waveform), "waveform" (L1 on the waveform) or "snr" (the
    # thresholded negative SNR of the waveforms, engine.train.losses.thresholded_snr)
    loss: str = "auto"
    augment: bool = True
    amp: bool = False
    compile: bool = False
    seed: int = 42
    num_workers: int = 0
    max_minutes: float = 0.0  # stop after this wall-clock time (0: no limit); the epoch in progress finishes
    # stop after this much CPU time of the training process (time.process_time(), every thread, validation
    # included, summed over resumes; 0: no limit): the same budget for every model on a shared machine
    max_cpu_minutes: float = 0.0
    threads: int = 0  # torch intra-op threads (0: leave torch's default)


@dataclass
class TrainConfig:
    """A whole training config: architecture name, its constructor kwargs, the objective, the training settings."""

    architecture: str
    model: dict[str, Any] = field(default_factory=dict)
    paper_model: dict[str, Any] = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)
    notes: str = ""
    objective: str = "supervised"
    objective_args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str | Path | None = None) -> TrainConfig:
        known = {f.name for f in fields(TrainSettings)}
        settings = dict(data.get("train", {}))
        unknown = set(settings) - known
        if unknown:
            raise DatasetError(source, f"unknown training settings: {', '.join(sorted(unknown))}")
        if "architecture" not in data:
            raise DatasetError(source, "config has no 'architecture'")
        return cls(
            architecture=str(data["architecture"]),
            model=dict(data.get("model", {})),
            paper_model=dict(data.get("paper_model", {})),
            train=TrainSettings(**settings),
            notes=str(data.get("notes", "")),
            objective=str(data.get("objective", "supervised")),
            objective_args=dict(data.get("objective_args", {})),
        )


def load_config(path: str | Path) -> TrainConfig:
    """Read a config JSON file; DatasetError naming the file when it is missing or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(path, "config file not found") from None
    except json.JSONDecodeError as err:
        raise DatasetError(path, f"config is not valid JSON: {err}") from None
    return TrainConfig.from_json(data, source=path)


def default_config(architecture: str) -> TrainConfig:
    """``configs/<architecture>.json`` if it exists, else the architecture with default arguments."""
    path = CONFIGS_DIR / f"{architecture}.json"
    return load_config(path) if path.is_file() else TrainConfig(architecture=architecture)
