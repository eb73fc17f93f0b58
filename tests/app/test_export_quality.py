"""The export dialog's quality choice (issue 11 item 4): "Fast" writes the playing stems, "Best quality" separates
the song again with ``engine.separation.quality``'s plan in the export worker; exports are all or nothing.

Waits are on states and signals; their timeouts only detect a hang (conftest.STALL_MS), never a slow machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt

from engine import STEM_NAMES
from engine.separation.quality import plan_separation
from engine.separation.separator import Separator
from tests.app.conftest import STALL_MS, wait_separated

RATE = 44100
SECONDS = 3.0


@pytest.fixture
def mixture() -> np.ndarray:
    """Three seconds of stereo noise ``(2, n_samples)``."""
    return (0.3 * np.random.default_rng(0).standard_normal((2, int(SECONDS * RATE)))).astype(np.float32)


@pytest.fixture
def fast_stems(mixture: np.ndarray) -> np.ndarray:
    """What live playback would hold: the test model ``tiny``'s stems ``(4, 2, n_samples)`` in STEM_NAMES order."""
    stems = Separator("tiny", device="cpu", n_threads=1).separate(mixture, RATE)
    return np.stack([stems[name] for name in STEM_NAMES])


@pytest.fixture
def make_dialog(qtbot, mixture: np.ndarray, fast_stems: np.ndarray, tmp_path: Path):
    """Factory: an export dialog over the tiny model's stems, "Best quality" planned with ``tiny`` too."""
    from app.export_dialog import ExportDialog
    from app.gui import create_application
    from app.workers import WorkerHost

    create_application()
    host = WorkerHost()
    dialogs = []

    def make(**kwargs: object) -> ExportDialog:
        options = {"mixture": mixture, "mixture_samplerate": RATE, "model_name": "tiny", "device": "cpu",
                   "best_model": "tiny", "threads": 1, **kwargs}
        dialog = ExportDialog(host, "song", fast_stems, list(STEM_NAMES), RATE, np.ones((4, 2), np.float32), 1.0,
                              str(tmp_path / "out"), None, **options)
        qtbot.addWidget(dialog)
        dialog.show()
        dialogs.append(dialog)
        return dialog

    yield make
    for dialog in dialogs:
        dialog.close()
    assert host.shutdown()


def export(qtbot, dialog, quality: str) -> list[Path]:
    """Choose ``quality`` and float WAV, start, wait until the worker is done; the written paths."""
    dialog.quality_buttons[quality].setChecked(True)
    dialog.format.setCurrentText("WAV")
    dialog.depth.setCurrentText("float")
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=STALL_MS)
    return dialog.written


def read(path: Path) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == RATE
    return data.T


def test_the_choice_and_the_plan_line_appear_and_follow_the_choice(qtbot, make_dialog) -> None:
    dialog = make_dialog()
    qtbot.waitExposed(dialog)
    fast, best = dialog.quality_buttons["fast"], dialog.quality_buttons["best"]
    assert fast.text() == "Fast (the model playing now)" and best.text() == "Best quality"
    assert fast.isVisible() and best.isVisible() and best.isEnabled() and fast.isChecked()
    assert dialog.plan_label.isVisible()
    assert dialog.plan_label.text().startswith("Fast: tiny")
    assert "only the files are written" in dialog.plan_label.text()
    best.setChecked(True)
    expected = plan_separation("best", "tiny", SECONDS, "cpu", threads=1).describe()
    assert dialog.plan_label.text() == expected
    assert "Best quality: tiny" in expected and "random shifts" in expected and "for this 3 s song" in expected
    fast.setChecked(True)
    assert dialog.plan_label.text().startswith("Fast: tiny")


def test_best_is_planned_from_the_bundled_cards_by_default(make_dialog) -> None:
    dialog = make_dialog(best_model=None)
    dialog.quality_buttons["best"].setChecked(True)
    assert dialog.plan_label.text() == plan_separation("best", None, SECONDS, "cpu", threads=1).describe()


def test_best_is_unavailable_without_the_mixture_and_says_why(make_dialog) -> None:
    dialog = make_dialog(mixture=None)
    assert not dialog.quality_buttons["best"].isEnabled()
    assert "Best quality unavailable" in dialog.plan_label.text()
    assert dialog.quality() == "fast"


def test_best_runs_the_plan_and_its_stems_differ_from_fast(qtbot, make_dialog, mixture: np.ndarray,
                                                           fast_stems: np.ndarray) -> None:
    playing = fast_stems.copy()
    dialog = make_dialog()
    dialog.mode_both.setChecked(True)
    written = export(qtbot, dialog, "best")
    assert sorted(p.name for p in written) == sorted([f"song - {s}.wav" for s in STEM_NAMES] + ["song - remix.wav"])
    assert "at best quality" in dialog.status.text()
    planned = plan_separation("best", "tiny", SECONDS, "cpu", threads=1).build(1).separate(mixture, RATE)
    out = written[0].parent
    for index, name in enumerate(STEM_NAMES):
        stem = read(out / f"song - {name}.wav")
        np.testing.assert_allclose(stem, planned[name], atol=1e-6)  # what the plan separates
        assert np.abs(stem - fast_stems[index]).max() > 1e-3  # not the playing stems
    remix = read(out / "song - remix.wav")
    np.testing.assert_allclose(remix, sum(planned[name] for name in STEM_NAMES), atol=1e-5)
    np.testing.assert_array_equal(fast_stems, playing)  # playback's stems were only read
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)  # no staging file left

    asked: list[list[Path]] = []
    dialog.confirm_overwrite = lambda existing: asked.append(existing) or True
    fast = export(qtbot, dialog, "fast")  # and Fast writes the playing stems, as before
    assert len(asked) == 1 and len(asked[0]) == 5
    assert len(fast) == 5
    for index, name in enumerate(STEM_NAMES):
        np.testing.assert_allclose(read(out / f"song - {name}.wav"), fast_stems[index], atol=1e-6)


def cancel_at(worker, fraction: float, seen: list[list[str]]) -> None:
    """Cancel ``worker`` from its own thread at its first progress report past ``fraction`` (deterministic: the
    worker checks the event right after); appends to ``seen`` the hidden files in the export folder then."""

    def on_progress(value: float, _text: str) -> None:
        if value >= fraction and not worker.cancel_event.is_set():
            folder = worker.jobs[0].path.parent
            seen.append(sorted(p.name for p in folder.iterdir() if p.name.startswith(".")))
            worker.cancel()

    worker.progress.connect(on_progress, Qt.ConnectionType.DirectConnection)


@pytest.mark.parametrize("quality", ["best", "fast"])
def test_a_cancelled_export_leaves_every_file_as_it_was(qtbot, make_dialog, quality: str, tmp_path: Path,
                                                        monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    kept = out / "song - vocals.flac"
    kept.write_bytes(b"the previous export")
    dialog = make_dialog()
    dialog.mode_both.setChecked(True)
    dialog.quality_buttons[quality].setChecked(True)
    dialog.format.setCurrentText("FLAC")
    dialog.block_frames = 4096  # Fast: many blocks, so the cancel lands with every file half-written
    asked: list[list[Path]] = []
    dialog.confirm_overwrite = lambda existing: asked.append(existing) or True
    hidden: list[list[str]] = []
    start = dialog.host.start  # connect before the worker's thread starts: no report can slip past

    def start_cancelling(worker):
        cancel_at(worker, 0.5, hidden)
        return start(worker)

    monkeypatch.setattr(dialog.host, "start", start_cancelling)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=STALL_MS)
    assert asked == [[kept]]
    assert kept.read_bytes() == b"the previous export"
    assert [p.name for p in out.iterdir()] == [kept.name]  # no new file, no staging file
    assert "cancelled" in dialog.status.text() and dialog.written == []
    assert hidden and len(hidden[0]) >= 5  # every file was being written when the cancel came


def test_the_window_offers_best_and_playback_keeps_the_fast_model(qtbot, make_window, song_with_stems: Path,
                                                                  tmp_path: Path, monkeypatch) -> None:
    import app.export_dialog as export_dialog

    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    controller = window.controller
    dialog = window.open_export_dialog()
    assert dialog.mixture is controller.song.mixture
    assert dialog.plan_label.text().startswith("Fast: identity")
    assert dialog.quality_buttons["best"].isEnabled()  # the bundled best plan has the playing stems
    dialog.close()

    real_plan = export_dialog.plan_separation  # "Best" with the tiny test model, not the bundled weights
    monkeypatch.setattr(export_dialog, "plan_separation",
                        lambda quality, model, *args, **kwargs: real_plan(quality, "tiny" if quality == "best"
                                                                          else model, *args, **kwargs))
    playing = controller.stems.copy()
    dialog = window.open_export_dialog()
    dialog.folder.setText(str(tmp_path / "best"))
    for name in ("drums", "bass", "other"):
        dialog.stem_boxes[name].setChecked(False)
    written = export(qtbot, dialog, "best")
    assert [p.name for p in written] == ["song - vocals.wav"]
    vocals = read(written[0])
    assert np.abs(vocals - playing[STEM_NAMES.index("vocals")]).max() > 1e-3  # tiny, not identity
    assert controller.model_name == "identity" and controller.playback.separation_model == "identity"
    np.testing.assert_array_equal(controller.stems, playing)  # playback kept its stems
    dialog.close()
