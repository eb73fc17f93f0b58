"""What a run writes about itself: one CSV row per epoch, TensorBoard scalars when the package is installed, and
early stopping's bookkeeping."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class RunLog:
    """``log.csv`` in the run folder (appended across resumes) and, if ``tensorboard`` is installed,
    event files in ``tensorboard/``."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.csv_path = run_dir / "log.csv"
        self.writer: Any | None = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the tensorboard package is optional
                pass
            else:
                self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` (its keys are the columns; the header is written with the first row). A row with columns
        the header lacks (a phase that logs more terms, e.g. the generator's after discriminator pretraining)
        rewrites the file once, atomically, with the header widened and the earlier rows' new cells empty."""
        header = self._header()
        if header is not None and set(row) - set(header):
            header = header + [key for key in row if key not in header]
            self._widen(header)
        with open(self.csv_path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header or list(row), restval="")
            if header is None:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            epoch = int(row["epoch"])
            for key, value in row.items():
                if key.startswith(("train_", "valid_", "lr")) and isinstance(value, int | float):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, epoch)

    def _header(self) -> list[str] | None:
        """The columns of ``log.csv``, or None when it does not exist yet (or is empty)."""
        if not self.csv_path.exists():
            return None
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), None)

    def _widen(self, columns: list[str]) -> None:
        import io

        from engine.atomic import atomic_write_text

        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.csv_path, out.getvalue())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class EarlyStopping:
    """Stop when the score (higher is better) has not improved for ``patience`` epochs.

    Attributes:
        best_score, best_epoch, best_per_stem: the best validation so far.
        bad_epochs: epochs since the last improvement.
    """

    patience: int
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_per_stem: dict[str, float] = field(default_factory=dict)

    def update(self, epoch: int, score: float, per_stem: dict[str, float]) -> bool:
        """Record an epoch's score; True when it is the best so far."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.best_per_stem, self.bad_epochs = score, epoch, dict(per_stem), 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def load_json(self, state: dict[str, Any]) -> None:
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.best_per_stem = {k: float(v) for k, v in state["best_per_stem"].items()}
