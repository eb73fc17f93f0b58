"""``ChunkRunner``: a loaded model as a numpy chunk function, the one way the engine runs a model on audio.

The :class:`~engine.separation.separator.Separator` and the streaming worker (in a thread or a child process) both
call it once per chunk of :func:`~engine.separation.apply.iter_separated_blocks`. Only the chunk goes to the device.
Out of memory on a GPU halves the chunk (down to :data:`MIN_SEGMENT_SAMPLES`), then moves the model to the CPU;
each step is logged and kept in :attr:`ChunkRunner.notes`.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch
from torch import nn

from engine.errors import ShotokuError
from engine.separation.apply import apply_chunked

log = logging.getLogger(__name__)

#: Smallest chunk the out-of-memory fallback halves down to before moving to the CPU.
MIN_SEGMENT_SAMPLES = 4096


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch's (or the allocator's) out-of-memory errors, whatever the backend."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(err, oom) or "out of memory" in str(err).lower()


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class ChunkRunner:
    """Runs a loaded model on one chunk: numpy ``(n_in_channels, n)`` float32 -> ``(n_stems, n_channels, n)`` float32.

    Runs under ``torch.inference_mode`` on :attr:`device`; out of memory halves the chunk, then falls back to the
    CPU (noted in :attr:`notes`). ``n_in_channels`` is the model's channel count, or more for a model whose
    :func:`~engine.models.base.prepare_input` stacks extra channels (the oracles' reference stems).

    Args:
        model: a :class:`~engine.models.base.SeparationModel` (put in eval mode here).
        device: where to run it (moved there now); None keeps the device its parameters are on. Resolve a user's
            choice with :func:`~engine.separation.device.select_device` first.
        n_threads: torch intra-op CPU threads, set once, in the thread that makes the first call (a worker thread
            sets its own); None leaves torch's setting.
        overlap: overlap of the smaller chunks the out-of-memory fallback blends.
    """

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | str | None = None,
        n_threads: int | None = None,
        overlap: float = 0.25,
    ) -> None:
        self.model = model
        self.model.eval()
        self.device: torch.device = model_device(model) if device is None else torch.device(device)
        self.model.to(self.device)
        self.n_stems = len(model.sources)
        self.n_channels = int(model.n_channels)
        self.n_threads = None if n_threads is None else max(1, int(n_threads))
        self.overlap = overlap
        self.notes: list[str] = []
        self._threads_set = threading.Event()

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """``(n_in_channels, n)`` -> ``(n_stems, n_channels, n)`` float32, with the out-of-memory fallback."""
        if self.n_threads is not None and not self._threads_set.is_set():
            torch.set_num_threads(self.n_threads)
            self._threads_set.set()
        try:
            return self.forward(chunk)
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            length = chunk.shape[-1]
            if length // 2 >= MIN_SEGMENT_SAMPLES:
                self._note(f"out of memory on {self.device} with {length}-sample chunks; retrying with {length // 2}")
                return apply_chunked(self, chunk, self.n_stems, length // 2, self.overlap, n_out_channels=self.n_channels)
            if self.device.type == "cpu":
                raise ShotokuError("out of memory even on the CPU with the smallest chunk size") from None
            self._note(f"out of memory on {self.device} even with small chunks; continuing on the CPU")
            self.device = torch.device("cpu")
            self.model.to(self.device)
            return self(chunk)

    def forward(self, chunk: np.ndarray) -> np.ndarray:
        """One chunk on :attr:`device`, without the fallback."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)).unsqueeze(0).to(self.device)
            return self.model(x)[0].to("cpu", torch.float32).numpy()

    def _note(self, message: str) -> None:
        self.notes.append(message)
        log.warning(message)
