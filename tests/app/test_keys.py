"""Keyboard: one table registers every shortcut once; Shift+1..4 mute through real key events, offscreen and (when
Xvfb and xdotool are installed) on a real X11 server, where both ``Shift+1`` and ``!`` used to match one press."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut

from app.keys import KEYS
from engine import STEM_NAMES

ROOT = Path(__file__).resolve().parents[2]
SHIFT = Qt.KeyboardModifier.ShiftModifier


def registered_sequences(window) -> list[str]:
    """Every key sequence the window answers to: its QShortcuts and every QAction's shortcuts (portable text)."""
    sequences = [s.key().toString() for s in window.findChildren(QShortcut) if not s.key().isEmpty()]
    for action in window.findChildren(QAction):
        sequences += [k.toString() for k in action.shortcuts() if not k.isEmpty()]
    return sequences


def test_every_table_entry_is_bound_once_and_nothing_else_is(make_window) -> None:
    window = make_window("identity")
    bindings = window.ui.bindings
    assert set(bindings) == {k.id for k in KEYS}
    for entry in KEYS:
        bound = bindings[entry.id]
        keys = bound.shortcuts() if isinstance(bound, QAction) else [bound.key()]
        assert entry.key_sequence() in keys, entry
    sequences = registered_sequences(window)
    assert len(sequences) == len(set(sequences)), f"a key is registered twice: {sorted(sequences)}"
    table = {QKeySequence(k.sequence).toString() for k in KEYS if not isinstance(k.sequence, QKeySequence.StandardKey)}
    standard = {b.toString() for k in KEYS if isinstance(k.sequence, QKeySequence.StandardKey)
                for b in QKeySequence.keyBindings(k.sequence)}
    assert set(sequences) <= table | standard  # no stray "!", "@", ... beside "Shift+1", "Shift+2"
    assert {"Shift+1", "Shift+2", "Shift+3", "Shift+4"} <= set(sequences)


def test_shift_digits_mute_and_digits_solo_through_key_events(qtbot, make_window, song_with_stems: Path) -> None:
    from tests.app.conftest import wait_loaded

    window = make_window("identity")
    window.controller.open_file(song_with_stems)
    wait_loaded(qtbot, window)
    ambiguous: list[str] = []
    for shortcut in window.findChildren(QShortcut):
        shortcut.activatedAmbiguously.connect(lambda s=shortcut: ambiguous.append(s.key().toString()))
    strips = window.mixer.strips
    muted = lambda: [name for name in STEM_NAMES if strips[name].mute.isChecked()]  # noqa: E731

    qtbot.keyClick(window, Qt.Key.Key_2, SHIFT)  # a key mapper that reports the digit with Shift
    assert muted() == ["drums"]
    qtbot.keyClick(window, Qt.Key.Key_At, SHIFT)  # what X11 reports for Shift+2 on a US layout: un-mute
    assert muted() == []
    qtbot.keyClick(window, Qt.Key.Key_Exclam, SHIFT)  # Shift+1 -> mute vocals
    assert muted() == ["vocals"]
    qtbot.keyClick(window, Qt.Key.Key_4, SHIFT)
    assert muted() == ["vocals", "other"]
    assert window.controller.playback.mixer.target_gain[STEM_NAMES.index("other")].tolist() == [0.0, 0.0]
    qtbot.keyClick(window, Qt.Key.Key_3)  # plain digit: solo bass, nothing muted by it
    assert strips["bass"].solo.isChecked() and muted() == ["vocals", "other"]
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # another key: no mute
    assert muted() == ["vocals", "other"]
    assert ambiguous == []


def _xvfb_tools() -> str | None:
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    return f"needs {' and '.join(missing)} (apt-get install xvfb xdotool)" if missing else None


@pytest.mark.skipif(sys.platform != "linux" or _xvfb_tools() is not None, reason=_xvfb_tools() or "Linux only")
def test_shift_digit_mutes_on_a_real_x11_server(tmp_path: Path) -> None:
    """Real X key events (xdotool) through Qt's xcb platform and its xkb key mapper."""
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as ready:  # Xvfb writes its display number once it accepts clients
            display = ready.readline().strip()
        assert display, "Xvfb did not start"
        env = dict(os.environ, DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb", SHOTOKU_CACHE=str(tmp_path / "cache"),
                   SHOTOKU_CONFIG=str(tmp_path / "config"), PYTHONPATH=str(ROOT))
        keys = ["shift+1", "shift+1", "shift+2", "1", "1", "shift+4"]
        result = subprocess.run([sys.executable, "-m", "tests.app.x11_keys", *keys], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        seen = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(30)
    assert seen["platform"] == "xcb"
    assert [step["muted"] for step in seen["steps"]] == [
        ["vocals"], [], ["drums"], ["drums"], ["drums"], ["drums", "other"]]
    assert [step["soloed"] for step in seen["steps"]][3:5] == [["vocals"], []]
    assert all(step["ambiguous"] == [] for step in seen["steps"]), seen["steps"]
