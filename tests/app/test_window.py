"""The main window, offscreen and without an audio device: open, separate, mix, seek, export, errors, exit."""

from __future__ import annotations

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


def test_open_separate_and_fader_changes_engine_gain(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    assert "song" in window.windowTitle()
    wait_separated(qtbot, window)
    assert window.model_name == "identity"
    assert window.ready.all()
    np.testing.assert_allclose(window.stems[VOCALS], window.song.mixture, atol=1e-5)  # identity model
    lane = window.spectrograms.lanes["vocals"]
    assert lane.data.max() > -60.0  # the stem's spectrogram was drawn
    assert not lane.hatch.isVisible()  # nothing left marked as not separated

    window.mixer.strips["vocals"].fader.setValue(db_to_fader(-6.0))
    np.testing.assert_allclose(window.playback.stem_gains()[VOCALS], [10 ** (-6 / 20)] * 2, rtol=1e-4)
    window.mixer.strips["drums"].fader.setValue(window.mixer.strips["drums"].fader.minimum())
    np.testing.assert_array_equal(window.playback.stem_gains()[DRUMS], [0.0, 0.0])  # bottom = -inf
    assert window.mixer.strips["drums"].db_label.text() == "-inf dB"


def test_keyboard_solo_mute_and_presets(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_1)  # solo vocals
    gains = window.playback.stem_gains()
    assert gains[VOCALS].tolist() == [1.0, 1.0] and gains[DRUMS].tolist() == [0.0, 0.0]
    qtbot.keyClick(window, Qt.Key.Key_1)  # un-solo
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ShiftModifier)  # mute drums
    assert window.mixer.strips["drums"].mute.isChecked()
    assert window.playback.stem_gains()[DRUMS].tolist() == [0.0, 0.0]
    assert window.playback.stem_gains()[VOCALS].tolist() == [1.0, 1.0]

    window.preset_actions["karaoke"].trigger()
    gains = window.playback.stem_gains()
    assert gains[VOCALS].tolist() == [0.0, 0.0]
    assert all(gains[i].tolist() == [1.0, 1.0] for i in range(4) if i != VOCALS)
    assert window.mixer.strips["vocals"].mute.isChecked()
    assert window.preset_label.text() == "Mix: karaoke"
    window.apply_preset("practice", "bass")
    assert window.playback.stem_gains()[STEM_NAMES.index("bass")][0] == pytest.approx(10 ** (-12 / 20), rel=1e-4)
    window.apply_preset("reset")
    assert (window.playback.stem_gains() == 1.0).all()


def test_space_plays_and_click_seeks(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    lane = window.spectrograms.lanes["mixture"]
    scene = lane.view.mapViewToScene(QPointF(2.0, sum(lane.view.viewRange()[1]) / 2))
    point = window.spectrograms.mapFromScene(scene)
    qtbot.mouseClick(window.spectrograms.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(point.x(), point.y()))
    seconds_per_pixel = window.song.duration_seconds / lane.view.width()
    qtbot.waitUntil(lambda: abs(window.playback.position_seconds() - 2.0) < 2 * seconds_per_pixel + 0.01)
    assert abs(window.spectrograms.playhead_seconds() - 2.0) < 0.2

    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.playback.playing
    qtbot.waitUntil(lambda: window.playback.position_seconds() > 2.3, timeout=5000)  # silent clock runs
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.playback.playing
    qtbot.keyClick(window, Qt.Key.Key_Home)
    qtbot.waitUntil(lambda: window.playback.position_seconds() == 0.0, timeout=2000)

    window.spectrograms.lanes["vocals"].view.loop_dragged.emit(1.0, 2.5, True)  # a left drag on any lane
    assert window.playback.mixer.loop == (44100, int(2.5 * 44100))
    assert window.spectrograms.lanes["bass"].loop.isVisible()
    window.clear_loop()
    assert window.playback.mixer.loop is None


def test_export_stems_and_remix_and_never_overwrite_silently(qtbot, make_window, song_with_stems: Path,
                                                             tmp_path: Path) -> None:
    window = make_window("identity")
    window.open_file(song_with_stems)
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
    np.testing.assert_allclose(vocals.T, window.stems[VOCALS], atol=1e-6)
    remix, _ = sf.read(out / "song - remix.wav", dtype="float32", always_2d=True)
    expected = window.stems[[i for i in range(4) if i != VOCALS]].sum(axis=0)  # karaoke: all but vocals
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
    window.open_file(bad)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=10000)
    assert "broken.wav" in window.last_error
    assert window.error_box is not None and window.error_box.isVisible()
    assert window.song is None
    window.error_box.close()
    window.open_file(song_with_stems)
    wait_separated(qtbot, window)
    assert window.song is not None and window.song.path == song_with_stems


def test_no_trained_model_plays_the_mixture_and_says_so(qtbot, make_window, plain_song: Path) -> None:
    window = make_window(None, test_models=False)
    window.open_file(plain_song)
    wait_loaded(qtbot, window)
    from engine.separation.registry import list_cards

    if any(c.kind in ("neural", "reference") for c in list_cards()):
        pytest.skip("a trained model is installed now; this checks the state before any exists")
    assert window.model_name is None
    assert "no trained model" in window.spectrograms._hatch_text
    assert window.spectrograms.lanes["vocals"].hatch.isVisible()
    oracle = [c for c in window.choices if c.card.kind == "oracle"]
    assert oracle and not any(c.usable for c in oracle)
    window.toggle_play()
    qtbot.waitUntil(lambda: window.playback.position_seconds() > 0.2, timeout=5000)


def test_oracle_model_is_picked_for_a_song_with_stems(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window(None, test_models=False)
    window.open_file(song_with_stems)
    wait_separated(qtbot, window)
    assert window.model_name == "irm"
    reference = window.song.references["vocals"]
    error = window.stems[VOCALS] - reference
    snr_db = 10 * np.log10(np.sum(reference**2) / np.sum(error**2))
    assert snr_db > 10.0  # the oracle mask gives back (nearly) the true stem


def test_switching_model_re_separates_while_playing(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.open_file(song_with_stems)
    wait_separated(qtbot, window)
    window.toggle_play()
    window.set_model("irm")
    assert window.playback.playing
    qtbot.waitUntil(lambda: window.sep_worker is not None, timeout=5000)
    wait_separated(qtbot, window)
    assert window.playback.playing or window.playback.mixer.at_end
    assert window.model_label.text() == "Model: irm"
    assert np.abs(window.stems[VOCALS] - window.song.mixture).max() > 0.05  # no longer the identity stems


def test_session_save_and_reopen(qtbot, make_window, song_with_stems: Path, tmp_path: Path) -> None:
    window = make_window("identity")
    window.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    window.apply_preset("drumless")
    window.mixer.strips["bass"].fader.setValue(db_to_fader(-3.0))
    path = window.save_session_to(tmp_path / "mine")
    assert path is not None and path.suffix == ".shotoku"
    window.apply_preset("reset")
    window.open_session(path)
    qtbot.waitUntil(lambda: window.mixer.strips["drums"].mute.isChecked(), timeout=20000)
    assert window.mixer.state().strips["bass"].gain_db == -3.0
    assert window.playback.stem_gains()[DRUMS].tolist() == [0.0, 0.0]
    assert str(song_with_stems.resolve()) in window.settings.recent_files()


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
    window.open_file(long_song)
    qtbot.waitUntil(lambda: window.sep_worker is not None, timeout=30000)
    threads = window.host.threads()
    assert threads and any(t.isRunning() for t in threads)
    window.close()
    assert all(not t.isRunning() for t in threads)
    assert window.host.threads() == []
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []


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
    assert window.song.path == song_with_stems
    assert window.recent_menu.actions()[0].text() == "mixture.flac"
    window.close()
    assert settings.window_geometry() is not None
    assert settings.last_folder() == str(song_with_stems.parent.resolve())


def test_export_cancel_leaves_no_file(qtbot, make_window, song_with_stems: Path, tmp_path: Path) -> None:
    from app.export_dialog import ExportDialog

    window = make_window("identity")
    window.open_file(song_with_stems)
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
    window.open_file(song_with_stems)
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
    assert abs(data.shape[0] - window.song.n_samples) < 44100 // 10  # codecs may pad a little
    dialog.close()


def test_missing_device_is_a_readable_error_and_cpu_still_works(qtbot, make_window, song_with_stems: Path) -> None:
    window = make_window("identity")
    window.open_file(song_with_stems)
    wait_separated(qtbot, window)
    window.set_device("cuda:7")
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=20000)
    assert "cuda" in window.last_error.lower()
    qtbot.waitUntil(lambda: window.sep_worker is None, timeout=20000)
    window.error_box.close()
    window.set_device("cpu")
    wait_separated(qtbot, window)
    assert window.ready.all()
