"""The "fast" / "best" separation paths (engine/separation/quality.py): the plan from the cards, the shifted
ensemble separator (alignment, averaging, determinism, streaming, cancel)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import SeparationCancelled, ShotokuError
from engine.models.catalogue import build_model, default_model_name, save_model
from engine.models.identity import IdentityModel
from engine.separation.quality import (
    BEST_SHIFTS,
    QUALITY_CHOICES,
    ShiftedEnsembleSeparator,
    ShiftedView,
    plan_separation,
    shift_offsets,
)
from engine.separation.separator import Separator

RATE = 44100
SOURCES = ["vocals", "drums", "bass", "other"]
TEST_SET = {"data": "corpus", "split": "test", "tracks": 20, "seconds": None}
#: A tiny spectrogram-mask model (as tests/engine/test_models.py's TINY): its output depends on the STFT grid.
MASK_CONFIG = {"sources": SOURCES, "n_fft": 256, "hop_length": 64, "hidden_size": 16, "n_layers": 1,
               "segment_seconds": 0.25}  # fmt: skip


def noise(n_samples: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((2, n_samples))).astype(np.float32)


def card(root: Path, name: str, score: float | None, test_set: dict | None = None, **fields: object) -> None:
    """A test card ``root/name/card.json``: architecture tiny (no weights), kind neural, mean SDR ``score``."""
    data = {"name": name, "architecture": "tiny", "kind": "neural", "config": {"segment_seconds": 0.5, "seed": 0},
            "sources": SOURCES, "samplerate": RATE, "n_channels": 2, "segment_seconds": 0.5,
            "weights_sha256": None, "scores": {}, "speed": {"cpu_realtime_factor": 20.0, "threads": 1}}  # fmt: skip
    if score is not None:
        data["scores"] = {"sdr_median": dict.fromkeys(SOURCES, score), "test_set": test_set or TEST_SET}
    data.update(fields)
    (root / name).mkdir(parents=True)
    (root / name / "card.json").write_text(json.dumps(data))


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """a (default, 3 dB), b (5 dB), c (9 dB, but on another test set), unscored (no scores)."""
    root = tmp_path / "models"
    card(root, "a", 3.0, default=True)
    card(root, "b", 5.0, config={"segment_seconds": 0.5, "seed": 1}, speed={"cpu_realtime_factor": 20.0})
    card(root, "c", 9.0, test_set={**TEST_SET, "tracks": 6})
    card(root, "unscored", None, speed={})
    return root


@pytest.fixture
def mask_model(tmp_path: Path) -> Path:
    """A registry whose default is a saved tiny Open-Unmix-design mask model with Wiener variants on its card."""
    torch.manual_seed(0)
    model = build_model("openunmix", MASK_CONFIG)
    scores = {"sdr_median": dict.fromkeys(SOURCES, 4.0), "sdr_median_wiener2": dict.fromkeys(SOURCES, 6.0),
              "sdr_median_wiener3": dict.fromkeys(SOURCES, 5.5), "test_set": TEST_SET}  # fmt: skip
    fields = {"architecture": "openunmix", "kind": "neural", "config": MASK_CONFIG, "sources": SOURCES,
              "samplerate": RATE, "n_channels": 2, "segment_seconds": 0.25, "default": True, "scores": scores}  # fmt: skip
    root = tmp_path / "models"
    save_model(model, "mask", fields, root=root, dtype=None)
    return root


def test_quality_choices_and_an_unknown_quality_is_refused():
    assert QUALITY_CHOICES == ("fast", "best")
    with pytest.raises(ShotokuError, match="unknown quality 'great'"):
        plan_separation("great", None, 10.0, "cpu")


def test_fast_is_the_default_model_as_shipped():
    plan = plan_separation("fast", None, 240.0, "cpu")
    assert plan.models == (default_model_name(),) and plan.shifts == 0
    assert plan.describe().startswith(f"Fast: {default_model_name()}, no shifts")
    separator = plan.build(1)
    assert type(separator) is Separator  # exactly today's path


def test_best_picks_the_highest_score_on_the_default_cards_test_set(registry):
    plan = plan_separation("best", None, 60.0, "cpu", root=registry)
    assert plan.models == ("b",)  # not c: its 9 dB are on another test set
    assert plan.shifts == BEST_SHIFTS and plan.wiener_iterations == (None,)  # tiny has no Wiener step
    line = plan.describe()
    assert line.startswith(
        f"Best quality: b, {BEST_SHIFTS} random shifts; about 12 s for this 1 min 00 s song"
    )
    assert "20x real time" in line
    assert isinstance(plan.build(1), ShiftedEnsembleSeparator)


def test_best_takes_a_recorded_ensemble_when_it_scored_higher(registry):
    data = json.loads((registry / "a" / "card.json").read_text())
    data["scores"]["ensembles"] = [{"members": ["a", "b"], "sdr_median": dict.fromkeys(SOURCES, 7.0)}]
    (registry / "a" / "card.json").write_text(json.dumps(data))
    plan = plan_separation("best", None, 10.0, "cpu", root=registry)
    assert plan.models == ("a", "b")
    assert "average of a + b" in plan.describe()
    separator = plan.build(1)
    assert len(separator.members) == 2 and len(separator.offsets()) == 2 * BEST_SHIFTS


def test_best_without_scores_is_the_default_and_says_the_time_is_unknown(tmp_path):
    root = tmp_path / "models"
    card(root, "only", None, default=True, speed={})
    plan = plan_separation("best", None, 30.0, "cpu", root=root)
    assert plan.models == ("only",) and plan.shifts == BEST_SHIFTS
    assert "time unknown" in plan.describe() and "only" in plan.describe()


def test_best_uses_the_wiener_iterations_that_scored_best_on_the_card(mask_model):
    plan = plan_separation("best", None, 10.0, "cpu", root=mask_model)
    assert plan.models == ("mask",) and plan.wiener_iterations == (2,)
    assert "2 Wiener EM iterations" in plan.describe()
    separator = plan.build(1)
    assert separator.models[0].wiener_iterations == 2
    fast = plan_separation("fast", None, 10.0, "cpu", root=mask_model)
    assert fast.build(1).model.wiener_iterations == 0 and "no Wiener step" in fast.describe()


def test_shift_offsets_are_seeded_and_within_the_range():
    first = shift_offsets(8, 22050, seed=3)
    assert first == shift_offsets(8, 22050, seed=3) and first != shift_offsets(8, 22050, seed=4)
    assert all(0 <= v < 22050 for v in first) and len(set(first)) > 1
    assert shift_offsets(3, 0) == [0, 0, 0]


def test_shifted_view_reads_like_the_padded_array():
    audio = noise(1000)
    view = ShiftedView(audio, 37)
    padded = np.concatenate([np.zeros((2, 37), np.float32), audio], axis=1)
    assert view.shape == padded.shape
    for start, stop in [(0, 10), (0, 37), (30, 50), (37, 1037), (500, 2000), (1030, 1037)]:
        np.testing.assert_array_equal(view[:, start:stop], padded[:, start:stop])


def test_shifts_are_undone_exactly_identity_gives_back_its_input():
    mix = noise(RATE * 2 + 123)
    separator = ShiftedEnsembleSeparator([IdentityModel(SOURCES)], "cpu", segment_seconds=0.3, shifts=3)
    assert len(set(separator.offsets())) == 3 and max(separator.offsets()) > 0
    stems = separator.separate(mix, RATE)
    for name in SOURCES:
        np.testing.assert_allclose(stems[name], mix, atol=1e-6)


def test_no_shift_and_one_model_is_the_plain_separator_bit_for_bit():
    mix = noise(RATE + 999)
    model = build_model("tiny", {"segment_seconds": 0.4})
    plain = Separator(model, "cpu").separate(mix, RATE)
    shifted = ShiftedEnsembleSeparator([model], "cpu", shifts=0).separate(mix, RATE)
    for name in SOURCES:
        np.testing.assert_array_equal(shifted[name], plain[name])


def test_an_ensemble_averages_its_members_by_stem_name():
    mix = noise(RATE)
    tiny = build_model("tiny", {"sources": SOURCES[::-1], "segment_seconds": 0.4})  # other stem order
    expected = Separator(tiny, "cpu").separate(mix, RATE)
    stems = ShiftedEnsembleSeparator([IdentityModel(SOURCES), tiny], "cpu", shifts=0).separate(mix, RATE)
    for name in SOURCES:
        np.testing.assert_allclose(stems[name], (mix + expected[name]) / 2, atol=1e-6)


def test_members_with_other_stems_are_refused():
    with pytest.raises(ShotokuError, match="share stems"):
        ShiftedEnsembleSeparator([IdentityModel(SOURCES), IdentityModel(["vocals", "accompaniment"])], "cpu")


def test_best_is_deterministic_and_really_differs_from_fast(mask_model):
    mix = noise(RATE, seed=5)
    fast = plan_separation("fast", None, 1.0, "cpu", root=mask_model).build(1).separate(mix, RATE)
    plan = plan_separation("best", "mask", 1.0, "cpu", root=mask_model)
    first, second = plan.build(1).separate(mix, RATE), plan.build(1).separate(mix, RATE)
    for name in SOURCES:
        np.testing.assert_array_equal(first[name], second[name])
    differences = [float(np.abs(first[n] - fast[n]).max()) for n in SOURCES]
    assert max(differences) > 1e-3  # the shifts (and Wiener) change the result on a spectrogram model


def test_blocks_stream_before_the_last_chunk():
    """Output comes while the passes advance: memory is bounded by chunks, not by the song."""
    separator = ShiftedEnsembleSeparator([IdentityModel(SOURCES)], "cpu", segment_seconds=0.2, shifts=2)
    reports: list[tuple[int, int]] = []
    done_at_block: list[int] = []
    lengths = []
    for block, _ in separator.iter_stems(noise(RATE * 3), RATE, progress=lambda p: reports.append(
            (p.done_chunks, p.n_chunks))):  # fmt: skip
        done_at_block.append(reports[-1][0] if reports else 0)
        lengths.append(block.shape[-1])
    n_chunks = reports[-1][1]
    assert reports[-1][0] == n_chunks and sum(lengths) == RATE * 3 and len(lengths) > 5
    assert done_at_block[0] < n_chunks / 4  # the first block left long before the end


class CountingIdentity(IdentityModel):
    """Identity that counts its calls."""

    calls = 0

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        CountingIdentity.calls += 1
        return super().forward(mix)


def test_cancel_between_chunks_stops_every_pass_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOTOKU_CACHE", str(tmp_path / "cache"))
    cancel = threading.Event()
    calls_at_cancel: list[int] = []

    def progress(p: object) -> None:
        if not cancel.is_set():
            cancel.set()
            calls_at_cancel.append(CountingIdentity.calls)

    CountingIdentity.calls = 0
    separator = ShiftedEnsembleSeparator([CountingIdentity(SOURCES)], "cpu", segment_seconds=0.2, shifts=3)
    with pytest.raises(SeparationCancelled):
        separator.separate(noise(RATE * 4), RATE, progress=progress, cancel=cancel)
    assert calls_at_cancel and CountingIdentity.calls == calls_at_cancel[0]  # no chunk after the cancel
    assert CountingIdentity.calls < 10  # far from the ~60 chunks of the whole run
    assert not any((tmp_path / "cache").rglob("*"))  # no scratch file left behind
