"""ChunkRunner: one chunk through the model on its device, with the out-of-memory fallback and thread setting."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from engine.errors import ShotokuError
from engine.models.catalogue import build_model
from engine.separation.runner import ChunkRunner, is_out_of_memory


class OomAbove(nn.Module):
    """Runs out of memory (like a GPU would) for chunks longer than ``limit`` samples."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.sources, self.samplerate, self.n_channels, self.segment_samples = ["a", "b"], 44100, 2, 40_000
        self.limit = limit
        self.lengths: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lengths.append(x.shape[-1])
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.stack([x * 0.25, x * 0.75], dim=1)


def chunk(n_samples: int, n_channels: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n_channels, n_samples)).astype(np.float32)


def test_one_chunk_in_numpy_out_float32():
    model = build_model("tiny", {"segment_seconds": 0.1})
    runner = ChunkRunner(model)
    x = chunk(3000)
    out = runner(x)
    assert out.dtype == np.float32 and out.shape == (4, 2, 3000)
    with torch.inference_mode():
        np.testing.assert_array_equal(out, model(torch.from_numpy(x)[None])[0].numpy())
    assert runner.device == torch.device("cpu") and runner.notes == [] and not model.training


def test_out_of_memory_halves_the_chunk_and_notes_it():
    model = OomAbove(limit=12_000)
    runner = ChunkRunner(model, "cpu")
    x = chunk(40_000)
    out = runner(x)
    np.testing.assert_allclose(out[0], 0.25 * x, atol=1e-6)
    np.testing.assert_allclose(out[1], 0.75 * x, atol=1e-6)
    assert max(model.lengths[1:]) <= 20_000 and min(model.lengths) <= 12_000
    assert runner.notes and all("out of memory" in note for note in runner.notes)


def test_out_of_memory_at_the_smallest_chunk_on_the_cpu_is_a_clear_error():
    with pytest.raises(ShotokuError, match="out of memory even on the CPU"):
        ChunkRunner(OomAbove(limit=10), "cpu")(chunk(9000))


def test_other_errors_are_not_taken_for_out_of_memory():
    class Broken(OomAbove):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("shapes do not match")

    with pytest.raises(RuntimeError, match="shapes"):
        ChunkRunner(Broken(0), "cpu")(chunk(100))
    assert is_out_of_memory(MemoryError("out of memory")) and not is_out_of_memory(RuntimeError("x"))


def test_thread_count_is_set_once_in_the_calling_thread(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append((n, threading.current_thread().name)))
    runner = ChunkRunner(build_model("identity"), n_threads=3)
    assert calls == []  # not at construction: the worker thread sets its own
    worker = threading.Thread(target=lambda: [runner(chunk(100)) for _ in range(3)], name="worker")
    worker.start()
    worker.join()
    assert calls == [(3, "worker")]
