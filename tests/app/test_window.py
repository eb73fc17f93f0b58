"""The main window, offscreen and without an audio device: open, separate, mix, seek, export, errors, exit."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, QPointF, Qt

from app.views.channel_strip import db_to_fader
from engine import STEM_NAMES
from tests.app.conftest import wait_loaded, wait_separated

VOCALS, DRUMS = STEM_NAMES.index("vocals"), STEM_NAMES.index("drums")


def gains_of(window) -> np.ndarray:
    """``(n_stems, 2)`` linear gains the engine's mixer plays with (mute, solo and pan resolved)."""
    assert window.controller.playback.stems == list(STEM_NAMES)
    return window.controller.playback.mixer.target_gain.copy()


def test_open_separate_and_fader_changes_engine_gain(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    assert "song" in window.windowTitle()
    wait_separated(qtbot, window)
    assert window.controller.model_name == "identity"
    assert window.controller.ready.all()
    # identity model
    np.testing.assert_allclose(window.controller.stems[VOCALS], window.controller.song.mixture, atol=1e-5)
    lane = window.spectrograms.lanes["vocals"]
    assert lane.data.max() > -60.0  # the stem's spectrogram was drawn
    assert not lane.hatch.isVisible()  # nothing left marked as not separated

    window.mixer.strips["vocals"].fader.setValue(db_to_fader(-6.0))
    np.testing.assert_allclose(gains_of(window)[VOCALS], [10 ** (-6 / 20)] * 2, rtol=1e-4)
    window.mixer.strips["drums"].fader.setValue(window.mixer.strips["drums"].fader.minimum())
    np.testing.assert_array_equal(gains_of(window)[DRUMS], [0.0, 0.0])  # bottom = -inf
    assert window.mixer.strips["drums"].db_label.text() == "-inf dB"


def test_keyboard_solo_mute_and_presets(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_1)  # solo vocals
    gains = gains_of(window)
    assert gains[VOCALS].tolist() == [1.0, 1.0] and gains[DRUMS].tolist() == [0.0, 0.0]
    qtbot.keyClick(window, Qt.Key.Key_1)  # un-solo
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ShiftModifier)  # mute drums
    assert window.mixer.strips["drums"].mute.isChecked()
    assert gains_of(window)[DRUMS].tolist() == [0.0, 0.0]
    assert gains_of(window)[VOCALS].tolist() == [1.0, 1.0]

    window.ui.preset_actions["karaoke"].trigger()
    gains = gains_of(window)
    assert gains[VOCALS].tolist() == [0.0, 0.0]
    assert all(gains[i].tolist() == [1.0, 1.0] for i in range(4) if i != VOCALS)
    assert window.mixer.strips["vocals"].mute.isChecked()
    assert window.ui.preset_label.text() == "Mix: karaoke"
    window.apply_preset("practice", "bass")
    assert gains_of(window)[STEM_NAMES.index("bass")][0] == pytest.approx(10 ** (-12 / 20), rel=1e-4)
    window.apply_preset("reset")
    assert (gains_of(window) == 1.0).all()


def test_space_plays_and_click_seeks(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    lane = window.spectrograms.lanes["mixture"]
    scene = lane.view.mapViewToScene(QPointF(2.0, sum(lane.view.viewRange()[1]) / 2))
    point = window.spectrograms.mapFromScene(scene)
    qtbot.mouseClick(window.spectrograms.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(point.x(), point.y()))
    seconds_per_pixel = window.controller.song.duration_seconds / lane.view.width()
    qtbot.waitUntil(lambda: abs(window.controller.playback.position_seconds - 2.0) < 2 * seconds_per_pixel + 0.01)
    assert abs(window.spectrograms.playhead_seconds() - 2.0) < 0.2

    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.controller.playback.playing
    qtbot.waitUntil(lambda: window.controller.playback.position_seconds > 2.3, timeout=5000)  # silent clock runs
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.controller.playback.playing
    qtbot.keyClick(window, Qt.Key.Key_Home)
    qtbot.waitUntil(lambda: window.controller.playback.position_seconds == 0.0, timeout=2000)

    window.spectrograms.lanes["vocals"].view.loop_dragged.emit(1.0, 2.5, True)  # a left drag on any lane
    assert window.controller.playback.mixer.loop == (44100, int(2.5 * 44100))
    assert window.spectrograms.lanes["bass"].loop.isVisible()
    window.controller.clear_loop()
    assert window.controller.playback.mixer.loop is None


def test_export_stems_and_remix_and_never_overwrite_silently(qtbot, make_window, song_with_stems: Path,
                                                             tmp_path: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    window.apply_preset("karaoke")
    dialog = window.open_export_dialog()
    out = tmp_path / "out"
    dialog.folder.setText(str(out))
    dialog.mode_both.setChecked(True)
    dialog.format.setCurrentText("WAV")
    dialog.depth.setCurrentText("float")
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=20000)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"song - {s}.wav" for s in STEM_NAMES] + ["song - remix.wav"])
    vocals, rate = sf.read(out / "song - vocals.wav", dtype="float32", always_2d=True)
    assert rate == 44100
    np.testing.assert_allclose(vocals.T, window.controller.stems[VOCALS], atol=1e-6)
    remix, _ = sf.read(out / "song - remix.wav", dtype="float32", always_2d=True)
    expected = window.controller.stems[[i for i in range(4) if i != VOCALS]].sum(axis=0)  # karaoke: all but vocals
    np.testing.assert_allclose(remix.T, expected, atol=1e-5)

    before = (out / "song - vocals.wav").stat().st_mtime_ns
    asked: list[list[Path]] = []
    dialog.confirm_overwrite = lambda existing: asked.append(existing) or False
    assert not dialog.start()
    assert len(asked[0]) == 5 and (out / "song - vocals.wav").stat().st_mtime_ns == before
    dialog.close()


def test_bad_file_shows_an_error_and_the_app_stays_usable(qtbot, make_window, tmp_path: Path,
                                                          song_with_stems: Path) -> None:
    window = make_window("identity")
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    window.controller.open_file(bad)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=10000)
    assert "broken.wav" in window.last_error
    assert window.error_box is not None and window.error_box.isVisible()
    assert window.controller.song is None
    window.error_box.close()
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    assert window.controller.song is not None and window.controller.song.path == song_with_stems


def test_oracle_model_separates_a_song_with_stems(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("irm", test_models=False)
    window.controller.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    window.controller.set_model("irm")  # usable here: the session feeds the oracle the song's reference stems
    wait_separated(qtbot, window)
    assert window.controller.model_name == "irm"
    reference = window.controller.song.references["vocals"]
    error = window.controller.stems[VOCALS] - reference
    snr_db = 10 * np.log10(np.sum(reference**2) / np.sum(error**2))
    assert snr_db > 10.0  # the oracle mask gives back (nearly) the true stem


def test_switching_model_re_separates_while_playing(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    window.controller.toggle_play()
    window.controller.set_model("irm")
    assert window.controller.playback.playing and window.controller.playback.separation_model == "irm"
    assert not window.controller.separation_done
    wait_separated(qtbot, window)
    assert window.controller.playback.playing or window.controller.playback.mixer.at_end
    assert window.model_label.text() == "Model: irm"
    # no longer the identity stems
    assert np.abs(window.controller.stems[VOCALS] - window.controller.song.mixture).max() > 0.05


def test_session_save_and_reopen(qtbot, make_window, song_with_stems: Path, tmp_path: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    window.apply_preset("drumless")
    window.mixer.strips["bass"].fader.setValue(db_to_fader(-3.0))
    path = window.controller.save_session_to(tmp_path / "mine")
    assert path is not None and path.suffix == ".shotoku"
    window.apply_preset("reset")
    window.controller.open_session(path)
    qtbot.waitUntil(lambda: window.mixer.strips["drums"].mute.isChecked(), timeout=20000)
    assert window.mixer.state().strips["bass"].gain_db == -3.0
    assert gains_of(window)[DRUMS].tolist() == [0.0, 0.0]
    assert str(song_with_stems.resolve()) in window.controller.settings.recent_files()


def test_close_during_separation_joins_every_thread(qtbot, settings, tmp_path: Path) -> None:
    from app.gui import create_application
    from app.main_window import MainWindow
    from tests.app.songgen import write_song

    long_song = write_song(tmp_path / "long", seconds=60.0)
    create_application()
    before = set(threading.enumerate())
    settings.set_model_name("irm")
    window = MainWindow(settings, use_audio_device=False)
    window.show()
    window.controller.open_file(long_song)
    qtbot.waitUntil(lambda: multiprocessing.active_children() != [] and window.controller.playback.worker is not None
                    and window.controller.playback.worker.alive, timeout=120_000)  # the separation process
    worker = window.controller.playback.worker
    assert worker is not None and worker.alive and not worker.done
    window.close()
    assert not worker.alive
    assert window.controller.host.threads() == []
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []
    assert multiprocessing.active_children() == [], "the separation process was left running"


def test_drop_a_file_and_recent_files_and_layout_are_remembered(qtbot, make_window, settings,
                                                                song_with_stems: Path) -> None:
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window("identity")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(song_with_stems))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    wait_loaded(qtbot, window)
    assert window.controller.song.path == song_with_stems
    assert window.ui.recent_menu.actions()[0].text() == "mixture.flac"
    window.close()
    assert settings.window_geometry() is not None
    assert settings.last_folder() == str(song_with_stems.parent.resolve())


def test_export_cancel_leaves_no_file(qtbot, make_window, song_with_stems: Path, tmp_path: Path) -> None:
    from app.export_dialog import ExportDialog

    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    dialog = window.open_export_dialog()
    assert isinstance(dialog, ExportDialog)
    dialog.folder.setText(str(tmp_path / "cancelled"))
    dialog.format.setCurrentText("FLAC")
    dialog.block_frames = 64  # many small blocks, so the cancel lands mid-file
    assert dialog.start()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=20000)
    folder = tmp_path / "cancelled"
    assert not folder.exists() or not any(p.suffix == ".flac" for p in folder.iterdir())
    assert "cancelled" in dialog.status.text()


@pytest.mark.parametrize(("label", "extension"), [("MP3", "mp3"), ("OGG (Vorbis)", "ogg"), ("FLAC", "flac")])
def test_export_formats(qtbot, make_window, song_with_stems: Path, tmp_path: Path, label: str,
                        extension: str) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    dialog = window.open_export_dialog()
    dialog.folder.setText(str(tmp_path / extension))
    dialog.format.setCurrentText(label)
    for name in ("drums", "bass", "other"):
        dialog.stem_boxes[name].setChecked(False)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=30000)
    path = tmp_path / extension / f"song - vocals.{extension}"
    assert [p.name for p in (tmp_path / extension).iterdir()] == [path.name]
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 44100 and data.shape[1] == 2
    assert abs(data.shape[0] - window.controller.song.n_samples) < 44100 // 10  # codecs may pad a little
    dialog.close()


def test_missing_device_is_a_readable_error_and_cpu_still_works(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    window.controller.set_device("cuda:7")
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=20000)
    assert "cuda" in window.last_error.lower()
    qtbot.waitUntil(lambda: not window.controller.separating, timeout=20000)
    window.error_box.close()
    window.controller.set_device("cpu")
    wait_separated(qtbot, window)
    assert window.controller.ready.all()


def test_reopening_a_song_plays_its_cached_stems_at_once(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_separated(qtbot, window)
    assert window.controller.playback.worker.regions_separated > 0
    window.controller.open_file(song_with_stems)
    qtbot.waitUntil(lambda: window.controller.playback.worker is not None and not window.controller.loading,
                    timeout=20000)
    wait_separated(qtbot, window, timeout=10000)
    worker = window.controller.playback.worker
    assert worker.regions_separated == 0, "nothing recomputed: the stem store had every region"
    assert worker.regions_verified == worker.entry.n_regions
    np.testing.assert_allclose(window.controller.stems[VOCALS], window.controller.song.mixture, atol=1e-5)


def test_without_a_trained_model_the_mixture_plays_and_the_lanes_say_so(
    qtbot, make_window, plain_song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import model_picker
    from engine.models import catalogue as registry

    untrained = [c for c in registry.list_cards() if c.kind not in ("neural", "reference")]
    monkeypatch.setattr(model_picker, "list_cards", lambda include_hidden=False: untrained)
    window = make_window(None, test_models=False)
    window.controller.open_file(plain_song)
    wait_loaded(qtbot, window)
    assert window.controller.model_name is None and window.controller.playback.separation_model is None
    assert "no trained model" in window.spectrograms._hatch_text
    assert "no trained model" in window.controller.playback.message
    assert window.spectrograms.lanes["vocals"].hatch.isVisible()
    oracle = [c for c in window.controller.choices if c.card.kind == "oracle"]
    assert oracle and not any(c.usable for c in oracle)  # no reference stems beside this song
    window.controller.toggle_play()
    # the silent clock runs
    qtbot.waitUntil(lambda: window.controller.playback.position_seconds > 0.2, timeout=5000)
    qtbot.waitUntil(lambda: window.controller.playback.output_level > 0.0, timeout=5000)  # the meters move


def test_a_lost_output_device_shows_a_state(qtbot, make_window, plain_song: Path) -> None:
    from engine.playback.stream import OutputState

    window = make_window("identity")
    window.controller.open_file(plain_song)
    wait_loaded(qtbot, window)
    assert window.audio_label.text() == "No audio output (playing silently)"
    output = window.controller.playback.output
    output.state, output.message = OutputState.DEVICE_LOST, "USB DAC unplugged"
    qtbot.waitUntil(lambda: window.audio_label.text() == "Audio output lost: Audio ▸ Output device", timeout=5000)
    assert "USB DAC unplugged" in window.audio_label.toolTip()
    window.controller.playback.output.state = OutputState.CLOSED


def test_lanes_hatch_every_span_not_separated_yet(qtbot, make_window, plain_song: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(plain_song)
    wait_loaded(qtbot, window)
    window.spectrograms.set_unseparated([(0.5, 1.0), (2.0, 3.0)], "separating…")
    path = window.spectrograms.lanes["drums"].hatch.path()
    middle = sum(window.spectrograms.lanes["drums"].view.viewRange()[1]) / 2
    assert window.spectrograms.lanes["drums"].hatch.isVisible()
    assert path.contains(QPointF(0.75, middle)) and path.contains(QPointF(2.5, middle))
    assert not path.contains(QPointF(1.5, middle)) and not path.contains(QPointF(0.25, middle))
    window.spectrograms.set_unseparated([])
    assert not window.spectrograms.lanes["drums"].hatch.isVisible()
