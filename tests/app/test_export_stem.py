"""NI STEM files in the app (issue 16 item 1): the export dialog's STEM format writes one ``.stem.mp4`` (the song as
master, the playing stems, the song's tags), and opening a ``.stem.mp4`` plays its own stems, nothing separated.

Waits are on states and signals; their timeouts only detect a hang (conftest.STALL_MS), never a slow machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine import STEM_NAMES
from engine.audio.stem_mp4 import STEM_ORDER, read_stem_mp4, write_stem_mp4
from tests.app.conftest import STALL_MS, wait_separated

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
RATE = 44100


def _noise(seed: int, seconds: float = 2.5) -> np.ndarray:
    """Stereo noise below 3 kHz ``(2, n_samples)`` (AAC keeps it well; white noise decodes at ~10 dB SNR)."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal((2, n)), axis=-1)
    spectrum[:, np.fft.rfftfreq(n, 1 / RATE) > 3000] = 0
    noise = np.fft.irfft(spectrum, n, axis=-1)
    return (0.1 * noise / np.abs(noise).max()).astype(np.float32)


def _snr(reference: np.ndarray, decoded: np.ndarray) -> float:
    n = min(reference.shape[-1], decoded.shape[-1])
    return float(10 * np.log10(np.sum(reference[:, :n] ** 2) / np.sum((reference[:, :n] - decoded[:, :n]) ** 2)))


def test_the_stem_format_writes_one_stem_file_with_the_song_as_master(qtbot, tmp_path: Path) -> None:
    from mutagen.mp4 import MP4

    from app.export_dialog import STEM_LABEL, ExportDialog
    from app.gui import create_application
    from app.workers import WorkerHost

    create_application()
    host = WorkerHost()
    stems = np.stack([_noise(k) for k in range(4)])  # STEM_NAMES order
    mixture = stems.sum(axis=0) * 0.5  # not the stems' sum: the master must be the song itself
    source = tmp_path / "Tune.flac"
    sf.write(source, mixture.T, RATE)
    from mutagen.flac import FLAC

    tagged = FLAC(source)
    tagged["title"], tagged["artist"] = "Tune", "Someone"
    tagged.save()
    dialog = ExportDialog(host, "Tune", stems, list(STEM_NAMES), RATE, np.ones((4, 2), np.float32), 1.0,
                          str(tmp_path / "out"), None, mixture=mixture, mixture_samplerate=RATE, model_name="tiny",
                          device="cpu", best_model="tiny", threads=1, tags_from=source)  # fmt: skip
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.format.setCurrentText(STEM_LABEL)
    assert [p.name for _, p in dialog.planned()] == ["Tune.stem.mp4"]
    assert not dialog.mode_remix.isEnabled() and not dialog.stem_boxes["vocals"].isEnabled()
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=STALL_MS)
    assert dialog.written == [tmp_path / "out" / "Tune.stem.mp4"], dialog.status.text()
    read = read_stem_mp4(dialog.written[0])
    assert list(read.stems) == list(STEM_ORDER) and read.master.shape == mixture.shape
    assert _snr(mixture, read.master) > 15.0
    for name in STEM_ORDER:
        assert _snr(stems[STEM_NAMES.index(name)], read.stems[name]) > 15.0
    tags = MP4(dialog.written[0]).tags
    assert tags["\xa9nam"] == ["Tune"] and tags["\xa9ART"] == ["Someone"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["Tune.stem.mp4"]  # nothing staged is left
    dialog.close()
    assert host.shutdown()


def test_the_stem_format_is_offered_only_for_the_four_stems(qtbot, tmp_path: Path) -> None:
    from app.export_dialog import FORMATS, STEM_LABEL, ExportDialog
    from app.gui import create_application
    from app.workers import WorkerHost

    create_application()
    host = WorkerHost()
    dialog = ExportDialog(host, "Two", np.zeros((2, 2, RATE), np.float32), ["vocals", "accompaniment"], RATE,
                          np.ones((2, 2), np.float32), 1.0, str(tmp_path))  # fmt: skip
    qtbot.addWidget(dialog)
    index = list(FORMATS).index(STEM_LABEL)
    assert not dialog.format.model().item(index).isEnabled() and "no drums" in dialog.stem_problem
    dialog.close()
    assert host.shutdown()


def test_opening_a_stem_file_plays_its_own_stems_without_separating(qtbot, make_window, tmp_path: Path) -> None:
    stems = {name: _noise(10 + k, 3.0) for k, name in enumerate(STEM_ORDER)}
    master = sum(stems.values()).astype(np.float32)
    path = write_stem_mp4(tmp_path / "Set Opener.stem.mp4", master, stems, RATE)
    expected = read_stem_mp4(path)  # what the file holds, decoded (AAC is lossy: compare with the decode)
    window = make_window(model="identity")
    controller = window.controller
    controller.open_file(path)
    qtbot.waitUntil(lambda: controller.song is not None and not controller.loading, timeout=STALL_MS)
    song = controller.song
    assert song.stem_file and song.title == "Set Opener" and song.export_name == "Set Opener"
    assert controller.model_name == "stem-file"
    wait_separated(qtbot, window)
    played = np.asarray(controller.stems)
    order = list(controller.playback.stems)
    for name in STEM_ORDER:
        np.testing.assert_allclose(played[order.index(name)], expected.stems[name], atol=1e-6)
    np.testing.assert_allclose(song.mixture, expected.master, atol=1e-6)
    source = controller.export_source()  # a remix of the stem file can be exported
    assert source is not None and source.song_name == "Set Opener"
