"""The trainer's parts alone: progress line, device choice, seeding, state trees, RNG, early stopping, weight swap."""

from __future__ import annotations

import io
import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from engine.progress import ProgressBar
from engine.train.checkpoint import (
    FORMAT,
    decode_state,
    encode_state,
    load_checkpoint,
    read_checkpoint_info,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from engine.train.runlog import EarlyStopping, RunLog
from engine.train.runtime import Runtime, seed_everything, start_runtime, training_device


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_logs_one_line_per_tenth_off_a_terminal_and_calls_back_every_update():
    stream = io.StringIO()
    seen = []
    with ProgressBar("epoch 2/2", stream=stream, callback=lambda f, d: seen.append((f, d))) as bar:
        for i in range(1, 41):
            bar.update(i / 40, f"loss {i}")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and all(line.startswith("epoch 2/2 [") for line in lines)
    assert lines[-1].startswith("epoch 2/2 [" + "#" * 30 + "] 100.0%") and lines[-1].endswith("loss 40")
    assert len(seen) == 40 and seen[-1] == (1.0, "loss 40")


def test_progress_redraws_one_line_on_a_terminal_and_draws_nothing_when_disabled():
    tty = _Tty()
    bar = ProgressBar("synth", stream=tty)
    bar.update(0.5, "track 1")
    bar.update(1.0, "track 2")
    bar.close()
    bar.close()  # idempotent
    text = tty.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and "\rsynth [" in text and "track 2" in text
    quiet = io.StringIO()
    seen = []
    ProgressBar("x", stream=quiet, enabled=False, callback=lambda f, d: seen.append(f)).update(2.0)
    assert quiet.getvalue() == "" and seen == [1.0]  # clipped to 0..1


def test_the_training_device_comes_from_the_one_selector(monkeypatch):
    assert training_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "1")
    if not torch.cuda.is_available():  # no CUDA: the local rank does not invent a GPU
        assert training_device(None) == torch.device("cpu")
        from engine.errors import ShotokuError

        with pytest.raises(ShotokuError, match="no CUDA"):
            training_device("cuda")


def test_a_plain_process_has_no_process_group_and_wrap_is_the_module():
    runtime = start_runtime("cpu")
    module = nn.Linear(2, 2)
    assert (runtime.rank, runtime.world_size, runtime.is_main, runtime.distributed) == (0, 1, True, False)
    assert runtime.wrap(module) is module
    assert runtime.broadcast_value(2.5) == 2.5
    assert not runtime.grad_scaler().is_enabled()  # no float16 on the CPU: bfloat16 needs no scaler
    with Runtime(torch.device("cpu"), amp=True).autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    runtime.close()


def test_seed_everything_seeds_torch_numpy_and_python():
    seed_everything(11)
    first = (torch.rand(1).item(), np.random.rand(), random.random())
    seed_everything(11)
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == first


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    seed_everything(4)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"objective": "x"}, {"rng": rng_state()})
    expected = (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])
    seed_everything(5)
    set_rng_state(load_checkpoint(path).state["rng"])
    assert (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]) == expected


def test_state_trees_keep_tensors_tuples_integer_keys_and_special_floats():
    tree = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.arange(4.0)}, 7: {"momentum": None}},
        "param_groups": [{"params": [0, 7], "betas": (0.9, 0.999), "lr": 1e-3}],
        "best": -math.inf,
        "spectrum": torch.tensor([1 + 2j, 3 - 1j]),
        "numpy": np.arange(3, dtype=np.uint32),
        "flags": torch.tensor([True, False]),
        "__odd": 1,
    }
    tensors: dict[str, torch.Tensor] = {}
    encoded = encode_state(tree, "optimizers/g", tensors)
    assert "optimizers/g/state/0/exp_avg" in tensors
    back = decode_state(json.loads(json.dumps(encoded)), tensors)
    assert set(back["state"]) == {0, 7} and back["state"][7] == {"momentum": None}
    assert torch.equal(back["state"][0]["exp_avg"], torch.arange(4.0))
    assert back["param_groups"][0]["betas"] == (0.9, 0.999) and back["best"] == -math.inf
    assert torch.equal(back["spectrum"], tree["spectrum"]) and back["numpy"].dtype == np.uint32
    assert back["__odd"] == 1 and torch.equal(back["flags"], tree["flags"])
    with pytest.raises(TypeError, match="optimizers/g/bad"):
        encode_state({"bad": object()}, "optimizers/g", {})


def test_a_foreign_safetensors_file_is_not_taken_for_a_checkpoint(tmp_path):
    from safetensors.torch import save_file

    from engine.errors import DatasetError

    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(DatasetError, match="not a Shotoku training checkpoint"):
        read_checkpoint_info(path)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a readable checkpoint"):
        read_checkpoint_info(tmp_path / "junk.safetensors")
    assert FORMAT.startswith("shotoku-checkpoint/")


def test_early_stopping_counts_epochs_without_improvement_and_round_trips():
    stopping = EarlyStopping(patience=2)
    assert stopping.update(1, 3.0, {"vocals": 3.0})
    assert not stopping.update(2, 2.0, {}) and not stopping.should_stop
    assert not stopping.update(3, math.nan, {}) and stopping.should_stop
    again = EarlyStopping(patience=2)
    again.load_json(json.loads(json.dumps(stopping.to_json())))
    assert (again.best_epoch, again.best_score, again.bad_epochs, again.best_per_stem) == (1, 3.0, 2, {"vocals": 3.0})


def test_run_log_appends_rows_under_one_header(tmp_path):
    log = RunLog(tmp_path, tensorboard=False)
    log.write({"epoch": 1, "train_loss": 0.5})
    log.write({"epoch": 2, "train_loss": 0.25})
    log.close()
    assert (tmp_path / "log.csv").read_text().splitlines() == ["epoch,train_loss", "1,0.5", "2,0.25"]


def test_run_log_widens_its_header_when_a_later_phase_logs_more_columns(tmp_path):
    log = RunLog(tmp_path, tensorboard=False)
    log.write({"epoch": 1, "train_d_C": 1.5, "valid_usdr": 3.0})  # discriminator pretraining: no generator terms
    log.write({"epoch": 2, "train_d_C": 1.2, "train_R1": 0.03, "valid_usdr": 2.0})
    log.write({"epoch": 3, "train_d_C": 1.1, "valid_usdr": 2.5})
    log.close()
    import csv

    with open(tmp_path / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["valid_usdr"] for r in rows] == ["3.0", "2.0", "2.5"]  # every value under its own column
    assert [r["train_R1"] for r in rows] == ["", "0.03", ""]
    assert list(rows[0]) == ["epoch", "train_d_C", "valid_usdr", "train_R1"]


def test_swap_state_restores_the_weights_even_when_the_block_raises():
    from engine.train.export import swap_state

    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zeros = {k: torch.zeros_like(v) for k, v in model.state_dict().items() if v.is_floating_point()}
    with pytest.raises(RuntimeError, match="evaluation failed"):
        with swap_state(model, zeros):
            assert torch.count_nonzero(model[0].weight) == 0
            raise RuntimeError("evaluation failed")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with swap_state(model, {"0.bias": torch.ones(3)}):  # a partial state swaps only those tensors
        assert torch.equal(model[0].bias, torch.ones(3)) and torch.equal(model[0].weight, before["0.weight"])
    assert torch.equal(model[0].bias, before["0.bias"])
