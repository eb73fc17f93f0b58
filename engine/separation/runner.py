"""``ChunkRunner``: a loaded model as a numpy chunk function, the one way the engine runs a model on audio.

The :class:`~engine.separation.separator.Separator` and the streaming worker (in a thread or a child process) both
call it once per chunk of :func:`~engine.separation.apply.iter_separated_blocks`. Only the chunk goes to the device.
Out of memory on a GPU halves the chunk (down to :data:`MIN_SEGMENT_SAMPLES`), then moves the model to the CPU;
each step is logged and kept in :attr:`ChunkRunner.notes`.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import torch
from torch import nn

from engine.errors import ShotokuError
from engine.separation.apply import apply_chunked

log = logging.getLogger(__name__)

#: Smallest chunk the out-of-memory fallback halves down to before moving to the CPU.
MIN_SEGMENT_SAMPLES = 4096


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads(n_cores: int | None = None) -> int:
    """The one thread rule: torch CPU threads for a separation when the user does not choose (``--threads``).

    Every default in the project comes from here: ``shotoku separate``, ``shotoku play``, the playback session's
    streaming worker and the app. The rule is **1 thread on machines of up to 4 cores, and ``(cores - 2) // 2``
    above that** (at most half of the cores, two kept for the audio thread, the GUI and whatever else runs), so
    the model's threads never outnumber the cores left free by one other busy program.

    Why: torch's intra-op threads wait for each other at every operation. When another busy process takes a core
    away from one of them, the rest spin at the barrier, and inference collapses instead of slowing down (on the
    development machines, 2 threads on 2 cores with one other busy process slowed 10-20x while 1 thread barely
    slowed). Measured on a 2-core machine (issue 10; the output is identical whatever the count):

    ===========================================  =========  =========
    ``shotoku separate``, busy 2-core machine     1 thread   2 threads
    ===========================================  =========  =========
    3:35 song                                      29.0 s    161.8 s
    20-minute song                                   92 s    26 min
    ===========================================  =========  =========

    ``bench/threads.py`` measures one model with 1, 2, ... cores threads on an idle machine and with every core
    kept busy by one busy-loop process per core (``python bench/threads.py``: openunmix, 60 s song, 2 cores,
    2026-12-01, load average 1.0 before the run; output hash identical in every cell):

    =======  ==================  ==================  ===========
    threads  idle x real time    busy x real time    busy / idle
    =======  ==================  ==================  ===========
    1        25.4x (2.36 s)      19.3x (3.11 s)      1.3
    2        40.0x (1.50 s)       8.8x (6.81 s)      4.5
    =======  ==================  ==================  ===========

    Two threads win by 1.6x on an idle machine and lose by 2.2x once anything else runs; a desktop app is never
    alone on the machine, so the rule takes the figure that does not collapse.

    Args:
        n_cores: cores to plan for (default: :func:`available_cores`).
    Returns:
        The number of threads, at least 1.
    """
    cores = available_cores() if n_cores is None else max(1, int(n_cores))
    return 1 if cores <= 4 else (cores - 2) // 2


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
