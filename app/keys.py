"""Every keyboard shortcut of the window, in one table: :func:`app.actions.build` registers each entry exactly once
(a menu action or a window shortcut) and the Help > Keyboard reference dialog lists the same table.

One key sequence per action: Shift+1 is registered as ``Shift+1`` only. On X11 (and Windows, macOS) Qt matches a
key press against every combination the keyboard layout can produce, so Shift+1 matches both ``Shift+1`` and
``!``; registering both made the shortcut ambiguous and Qt fired neither. Platforms whose key mapper reports only
the shifted character (Qt's offscreen platform, some remote displays) are covered by
:func:`shifted_digit_index`, which the window consults for key presses no shortcut took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from engine import STEM_NAMES

SEEK_STEP_SECONDS = 5.0
#: Digits 1..9 solo (with Shift: mute) the first nine stems of the model in use; a key past its stems does nothing.
STEM_KEYS = 9
#: What Shift+1..9 type on a US layout: the fallback of :func:`shifted_digit_index`.
_SHIFTED_DIGITS = {key.value: i for i, key in enumerate((
    Qt.Key.Key_Exclam, Qt.Key.Key_At, Qt.Key.Key_NumberSign, Qt.Key.Key_Dollar, Qt.Key.Key_Percent,
    Qt.Key.Key_AsciiCircum, Qt.Key.Key_Ampersand, Qt.Key.Key_Asterisk, Qt.Key.Key_ParenLeft))}
_DIGITS = {Qt.Key.Key_1.value + i: i for i in range(STEM_KEYS)}


@dataclass(frozen=True)
class Key:
    """One shortcut: its id (what :func:`app.actions.build` binds), the sequence, what it does, its group."""

    id: str
    sequence: str | QKeySequence.StandardKey
    description: str
    group: str

    def key_sequence(self) -> QKeySequence:
        return QKeySequence(self.sequence)

    def text(self) -> str:
        """The sequence as the platform writes it (``Ctrl+O``, ``⌘O``); a standard key may have several."""
        if isinstance(self.sequence, QKeySequence.StandardKey):
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in QKeySequence.keyBindings(self.sequence)]
            with_modifier = [k for k in keys if "+" in k.rstrip("+")]  # not a bare media key ("Open", "Zoom In")
            return (with_modifier or keys or ["—"])[0]
        return QKeySequence(self.sequence).toString(QKeySequence.SequenceFormat.NativeText)


def _stem_label(i: int) -> str:
    """What the ``i``-th stem key acts on: the four-stem models' stem name, else "stem N" (the model's N-th)."""
    return STEM_NAMES[i] if i < len(STEM_NAMES) else f"stem {i + 1}"


def _stem_keys() -> list[Key]:
    keys = []
    for i in range(STEM_KEYS):
        keys.append(Key(f"solo_{i + 1}", str(i + 1), f"Solo {_stem_label(i)} (again: un-solo)", "Mixer"))
    for i in range(STEM_KEYS):
        keys.append(Key(f"mute_{i + 1}", f"Shift+{i + 1}", f"Mute {_stem_label(i)} (again: un-mute)", "Mixer"))
    return keys


def described_for(key: Key, stems: Sequence[str]) -> str | None:
    """``key``'s description for a model with ``stems`` (its order): a solo/mute key names that model's stem, and
    is ``None`` when the model has no stem for it (the key does nothing then); every other key as registered."""
    kind, _, number = key.id.partition("_")
    if kind not in ("solo", "mute") or not number.isdigit():
        return key.description
    i = int(number) - 1
    if i >= len(stems):
        return None
    return f"{kind.capitalize()} {stems[i]} (again: un-{kind})"


S = QKeySequence.StandardKey
KEYS: tuple[Key, ...] = (
    Key("play", "Space", "Play / pause", "Transport"),
    Key("start", "Home", "Back to the start", "Transport"),
    Key("back", "Left", f"Seek {SEEK_STEP_SECONDS:.0f} s back", "Transport"),
    Key("forward", "Right", f"Seek {SEEK_STEP_SECONDS:.0f} s forward", "Transport"),
    Key("clear_loop", "Escape", "Clear the loop", "Transport"),
    *_stem_keys(),
    Key("open", S.Open, "Open a song", "File"),
    Key("open_session", "Ctrl+Shift+O", "Open a session (.shotoku)", "File"),
    Key("save_session", S.Save, "Save the session", "File"),
    Key("export", "Ctrl+E", "Export stems and/or the remix", "File"),
    Key("quit", "Ctrl+Q", "Quit", "File"),  # StandardKey.Quit is unbound on some Linux desktops
    Key("zoom_in", S.ZoomIn, "Zoom in (time)", "View"),
    Key("zoom_out", S.ZoomOut, "Zoom out (time)", "View"),
    Key("zoom_fit", "Ctrl+0", "Show the whole song", "View"),
    Key("mixer", "Ctrl+M", "Show / hide the mixer", "View"),
    Key("keyboard", "F1", "This keyboard reference", "Help"),
)
GROUPS = ("Transport", "Mixer", "File", "View", "Help")
#: Mouse gestures, listed under the keys in the reference (they are not shortcuts).
MOUSE = (
    ("Click a lane", "Move the playhead there"),
    ("Drag with the left button", "Draw a loop (drag its edges to adjust it)"),
    ("Mouse wheel", "Zoom in time"),
    ("Right- or middle-drag", "Scroll in time"),
)


def key(key_id: str) -> Key:
    """The table's entry ``key_id`` (KeyError for an unknown id)."""
    for entry in KEYS:
        if entry.id == key_id:
            return entry
    raise KeyError(key_id)


def shifted_digit_index(qt_key: int | Qt.Key, modifiers: Qt.KeyboardModifier) -> int | None:
    """The stem index (0..8) a Shift+digit press means when no shortcut took it, else None.

    Qt reports Shift+2 as ``@`` on a US layout (and as ``2`` with Shift where the key mapper is richer); both mean
    "mute the second stem". Other modifiers (Ctrl, Alt) make it another key.
    """
    others = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier
    if not modifiers & Qt.KeyboardModifier.ShiftModifier or modifiers & others:
        return None
    code = int(getattr(qt_key, "value", qt_key))
    index = _SHIFTED_DIGITS.get(code, _DIGITS.get(code))
    return index if index is not None and index < STEM_KEYS else None
