"""The adaptation: passages found, pools, the job end to end (a tiny random semisup), resume, bad input, the
user's models in the catalogue."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.adapt.job import AdaptJob, AdaptRequest, jobs_dir, leakage_db, unfinished_jobs
from engine.adapt.passages import FRAME_SECONDS, find_passages, measure_threshold
from engine.adapt.pools import PoolClips, build_pools
from engine.errors import DatasetError, ModelLoadError, SeparationCancelled
from engine.models.catalogue import (
    default_model_name,
    get_card,
    is_user_model,
    list_cards,
    load_model,
    remove_user_model,
)
from engine.paths import user_models_dir
from tests.engine.adapt_fixtures import (
    OVERRIDES,
    RATE,
    high_band_detector,
    make_resources,
    song,
    write_library,
)


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - tiny convolutions on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_resources(tmp_path, monkeypatch)


def request(tmp_path: Path, **kwargs: object) -> AdaptRequest:
    base = {"songs": str(tmp_path / "songs"), "name": "mine", "max_minutes": 30.0, "overrides": OVERRIDES}
    return AdaptRequest(**{**base, **kwargs})  # type: ignore[arg-type]


# --- passages -----------------------------------------------------------------------------------------------------


def test_a_held_no_voice_run_is_instrumental_a_short_break_is_not_and_silence_is_in_no_pool():
    n = int(FRAME_SECONDS * RATE)
    frames = 80  # 20 s: voice 0-4 s, a 1 s break, voice to 8 s, no voice 8-16 s, silence 16-20 s
    mix = np.full((2, frames * n), 0.1, dtype=np.float32)
    mix[:, 64 * n :] = 0
    vocals = np.zeros_like(mix)
    vocals[:, : 16 * n] = 0.08
    vocals[:, 20 * n : 32 * n] = 0.08
    passages = find_passages(mix, vocals, RATE, threshold_db=-18, hold_seconds=4)
    kinds = [(p.kind, p.start // n, p.stop // n) for p in passages]
    assert kinds == [("mixture", 0, 34), ("instrumental", 34, 62)]  # the 0.5 s edge after it: too short, no voice


def test_the_threshold_measured_is_the_most_inclusive_one_that_keeps_precision():
    rng = np.random.default_rng(0)
    n = 10 * RATE
    mix = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
    truth = np.zeros_like(mix)
    truth[:, n // 2 :] = mix[:, n // 2 :]  # a voice in the second half
    estimate = truth.copy()
    estimate[:, : n // 2] = mix[:, : n // 2] * 10 ** (-25 / 20)  # the model leaks -25 dB where there is no voice
    chosen, points = measure_threshold([(mix, estimate, truth, RATE)], candidates=(-30, -26, -24, -10, 2))
    assert chosen == -10  # -30 and -26 find nothing; -10 keeps every frame right; 2 dB calls the voice too
    by = {p.threshold_db: p for p in points}
    assert by[-30].minutes == 0 and by[-10].precision == 1.0 and by[2].precision < 0.98


# --- pools --------------------------------------------------------------------------------------------------------


def test_pools_hold_out_songs_and_pieces_and_clips_come_from_the_pools(tmp_path: Path):
    songs = sorted(write_library(tmp_path / "songs").iterdir())
    summary = build_pools(songs, [], tmp_path / "pools", high_band_detector, RATE, 20480, 496)
    assert [Path(s).name for s in summary.heldout_songs] == ["song2.flac"]
    assert len(summary.songs) == 3
    assert 10 <= summary.minutes["mixtures"] * 60 / 3 <= 11.5  # the 10 s of voice and the passages' edges
    assert 15 < summary.minutes["instrumentals"] * 60 + summary.minutes["heldout"] * 60
    index = json.loads((tmp_path / "pools" / "pools.json").read_text())
    assert index["heldout_groups"]["songs"] and index["heldout_groups"]["passages"]
    trained = {item["song"] for item in index["mixtures"] + index["instrumentals"]}
    assert not any(name.endswith("song2.flac") for name in trained)  # the held-out song never trains
    clips = PoolClips(tmp_path / "pools", 496, 4, seed=1)
    a, c = clips[0]
    assert a.shape == c.shape == (1, 496)
    assert torch.equal(clips[0][0], a) and not torch.equal(clips[1][0], a)


# --- the job ------------------------------------------------------------------------------------------------------


def test_adapt_publishes_a_user_model_with_its_card_listed_loadable_and_removable(tmp_path: Path, resources):
    write_library(tmp_path / "songs")
    events = []
    folder = AdaptJob(request(tmp_path), progress=events.append, detector=high_band_detector).run()
    assert folder == user_models_dir() / "mine"
    card = get_card("mine")
    assert is_user_model(card) and card.kind == "neural"
    assert "mine" in [c.name for c in list_cards()]
    assert default_model_name() == "semisup"  # a user's model never becomes the default
    scores = card.scores
    for when in ("before", "after"):
        assert scores[when]["leakage_db"]["passages"] is not None
        assert scores[when]["leakage_db"]["songs"] is not None
        assert np.isfinite(scores[when]["voice_usdr"]["vocals"])
    assert card.training["train"]["epochs"] == 2 and len(card.training["found"]["songs"]) == 3
    assert "init_from" not in card.training["objective"]["args"]  # the source's weights, not its recipe's start
    model = load_model("mine")
    source = load_model("semisup")
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values(),
                                                     strict=True))  # it trained
    assert {e.phase for e in events} >= {"scan", "score", "train"}
    assert any(e.seconds_left is not None for e in events if e.phase == "train")
    assert not (jobs_dir() / "mine" / "pools").exists()  # the big pool files are gone
    assert unfinished_jobs() == []
    remove_user_model("mine")
    assert "mine" not in [c.name for c in list_cards()]
    with pytest.raises(ModelLoadError, match="comes with Shotoku"):
        remove_user_model("semisup")


def test_a_cancelled_job_resumes_at_the_next_epoch_and_keeps_the_models_as_they_were(tmp_path: Path, resources):
    write_library(tmp_path / "songs")
    cancel = threading.Event()

    def progress(event) -> None:  # noqa: ANN001
        if event.phase == "train" and event.detail.startswith("epoch 2"):
            cancel.set()

    with pytest.raises(SeparationCancelled):
        AdaptJob(request(tmp_path), progress=progress, cancel=cancel, detector=high_band_detector).run()
    assert not (user_models_dir() / "mine").exists()
    assert [s["request"]["name"] for s in unfinished_jobs()] == ["mine"]
    resumed = AdaptJob(request(tmp_path), detector=high_band_detector)
    assert resumed.resuming and resumed.state["phase"] == "training"
    resumed.run()
    rows = (jobs_dir() / "mine" / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]  # epoch 1 was not trained again
    assert get_card("mine").training["train"]["epochs"] == 2


def test_a_failed_publish_leaves_the_previous_model_of_that_name(tmp_path: Path, resources, monkeypatch):
    write_library(tmp_path / "songs")
    AdaptJob(request(tmp_path), detector=high_band_detector).run()
    before = (user_models_dir() / "mine" / "card.json").read_bytes()
    with pytest.raises(ModelLoadError, match="already have a model"):
        AdaptJob(request(tmp_path), detector=high_band_detector).run()

    def full(*args, **kwargs):  # noqa: ANN002, ANN003
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("engine.models.catalogue.save_model", full)
    with pytest.raises(DatasetError, match="your models are unchanged"):
        AdaptJob(request(tmp_path, replace=True), detector=high_band_detector).run()
    assert (user_models_dir() / "mine" / "card.json").read_bytes() == before


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no audio file"),
    ("instrumentals only", "no singing found"),
    ("unreadable", "could be read"),
    ("shipped name", "comes with Shotoku"),
    ("no source", "only trained semi-supervised"),
])
def test_bad_input_gets_one_clear_line(tmp_path: Path, resources, case: str, message: str):
    songs = tmp_path / "songs"
    songs.mkdir()
    kwargs: dict = {}
    if case == "instrumentals only":
        write_library(songs, voice=False)
    elif case == "unreadable":
        (songs / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
        (songs / "empty.mp3").write_bytes(b"")
    elif case == "shipped name":
        write_library(songs, n_songs=1)
        kwargs["name"] = "semisup"
    elif case == "no source":
        write_library(songs, n_songs=1)
        kwargs["source"] = "identity-test"
        (resources / "models" / "identity-test").mkdir()
        (resources / "models" / "identity-test" / "card.json").write_text(json.dumps(
            {"name": "identity-test", "architecture": "identity", "kind": "reference", "sources": ["vocals"]}))
    with pytest.raises((DatasetError, ModelLoadError)) as info:
        AdaptJob(request(tmp_path, **kwargs), detector=high_band_detector).run()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not user_models_dir().exists() or not any(user_models_dir().iterdir())


def test_unreadable_files_among_good_songs_are_skipped_and_named(tmp_path: Path, resources):
    songs = write_library(tmp_path / "songs", n_songs=4)
    (songs / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    job = AdaptJob(request(tmp_path), detector=high_band_detector)
    job.check()
    found = job.scan()
    assert len(found["skipped"]) == 1 and "broken.wav" in found["skipped"][0]


def test_leakage_is_the_vocals_energy_over_the_input_in_db():
    x = np.ones((2, 100), dtype=np.float32)
    assert leakage_db(0.1 * x, x) == pytest.approx(-20.0, abs=1e-6)
    assert song(0, seconds=1.0, voice=None).shape == (2, RATE)
