"""The "Learn from my music" dialog: bad input answered at once, the job in a child process with progress, cancel
and resume, the user's model listed and removable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtWidgets import QMessageBox

from app.adapt_dialog import AdaptDialog
from engine.adapt.job import AdaptRequest
from engine.models.catalogue import get_card, is_user_model
from tests.engine.adapt_fixtures import OVERRIDES, RATE, REPO, make_resources, song, write_library

#: A hang guard only: the child imports torch and trains a tiny model for two epochs.
HANG_MS = 300_000


@pytest.fixture
def resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny semisup, and the identity model as the detector (every frame voiced: the instrument-only pool
    comes from the instrumentals folder)."""
    root = make_resources(tmp_path, monkeypatch)
    shutil.copytree(REPO / "resources" / "models" / "identity", root / "models" / "identity")
    return root


def get_card_exists(name: str) -> bool:
    from engine.paths import user_models_dir

    return (user_models_dir() / name).exists()


def test_bad_input_is_answered_in_the_dialog_without_starting_a_job(qtbot, tmp_path: Path, resources: Path):
    dialog = AdaptDialog()
    qtbot.addWidget(dialog)
    (tmp_path / "empty").mkdir()
    dialog.songs_edit.setText(str(tmp_path / "empty"))
    dialog.start_button.click()
    assert "holds no audio file" in dialog.status.text()
    assert not dialog.running


def test_a_job_runs_in_a_child_is_cancelled_resumed_and_its_model_removed(qtbot, tmp_path: Path, resources: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    write_library(tmp_path / "songs", n_songs=2)
    (tmp_path / "instrumentals").mkdir()
    for k in range(2):
        sf.write(tmp_path / "instrumentals" / f"backing{k}.flac", song(10 + k, voice=None).T, RATE)
    request = AdaptRequest(songs=str(tmp_path / "songs"), name="mine", instrumentals=str(tmp_path / "instrumentals"),
                           detector="identity", max_minutes=30, overrides=OVERRIDES)
    dialog = AdaptDialog()
    qtbot.addWidget(dialog)
    try:
        dialog.launch(request.to_json())
        assert dialog.running and not dialog.start_button.isEnabled()
        qtbot.waitUntil(lambda: dialog.bar.value() > 0 or not dialog.running, timeout=HANG_MS)
        dialog.cancel()
        qtbot.waitUntil(lambda: not dialog.running, timeout=HANG_MS)
        assert "Stopped" in dialog.status.text()  # the job checks the flag at every report: many are left
        assert dialog.resume_button.isEnabled() and not get_card_exists("mine")
        dialog.resume_button.click()
        assert dialog.running
        qtbot.waitUntil(lambda: not dialog.running, timeout=HANG_MS)
        assert "is ready" in dialog.status.text(), dialog.status.text()
        assert "leaking" in dialog.status.text()
        assert is_user_model(get_card("mine"))
        assert np.isfinite(dialog.result_state["after"]["voice_usdr"]["vocals"])
        assert dialog.models_list.count() == 1 and dialog.models_list.item(0).text().startswith("mine:")
        dialog.models_list.setCurrentRow(0)
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
        dialog.remove_selected()
        assert dialog.models_list.count() == 0
    finally:
        dialog.shutdown()
