"""Export at the practice tempo and pitch (issue 16 item 2: "export can apply the same tempo and pitch"): the export
dialog offers the tempo and transposition playing now, and the files it writes are stretched to match; as recorded
when the box is cleared or nothing is changed.

Waits are on states and signals; their timeouts only detect a hang (conftest.STALL_MS), never a slow machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from engine import STEM_NAMES
from tests.app.conftest import STALL_MS

RATE = 44100


def _tones(seconds: float = 2.0) -> np.ndarray:
    """Four stereo stems ``(4, 2, n)``: one sine each (220, 330, 440, 550 Hz)."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([np.stack([0.2 * np.sin(2 * np.pi * f * t)] * 2) for f in (220, 330, 440, 550)]).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / RATE)[np.argmax(spectrum)])


def _export(qtbot, tmp_path: Path, tempo: float, semitones: float, apply: bool = True) -> list[Path]:
    from app.export_dialog import ExportDialog
    from app.gui import create_application
    from app.workers import WorkerHost

    create_application()
    host = WorkerHost()
    stems = _tones()
    dialog = ExportDialog(host, "Tune", stems, list(STEM_NAMES), RATE, np.ones((4, 2), np.float32), 1.0,
                          str(tmp_path / "out"), None, model_name="tiny", tempo=tempo, semitones=semitones)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.apply_tempo.setChecked(apply)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=STALL_MS)
    written = list(dialog.written)
    assert written, dialog.status.text()
    dialog.close()
    assert host.shutdown()
    return written


def test_the_export_plays_at_the_practice_tempo_and_pitch(qtbot, tmp_path: Path) -> None:
    written = _export(qtbot, tmp_path, tempo=0.8, semitones=12.0)
    vocals = next(p for p in written if "vocals" in p.name)
    audio, rate = sf.read(vocals, dtype="float32", always_2d=True)
    assert rate == RATE
    assert abs(audio.shape[0] - round(2.0 * RATE / 0.8)) <= 1  # 80 %: 2 s last 2.5 s
    assert abs(_peak_hz(audio[RATE // 2 : RATE + RATE // 2, 0]) - 440.0) < 15.0  # 220 Hz an octave up
    lengths = {sf.info(p).frames for p in written}
    assert len(lengths) == 1  # every stem stretched to the same length: still in sync


def test_the_box_cleared_or_nothing_changed_exports_as_recorded(qtbot, tmp_path: Path) -> None:
    for index, (tempo, semitones, apply) in enumerate(((0.8, 12.0, False), (1.0, 0.0, True))):
        written = _export(qtbot, tmp_path / str(index), tempo, semitones, apply)
        audio, _ = sf.read(next(p for p in written if "vocals" in p.name), dtype="float32", always_2d=True)
        assert audio.shape[0] == 2 * RATE
        assert abs(_peak_hz(audio[:, 0]) - 220.0) < 5.0
