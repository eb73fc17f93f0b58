"""Help and model information: the keyboard reference lists the table that registers the keys, About names the
version, licence, model and device, the user guide opens in the app, and a model card reads as a musician's
summary (quality per stem in dB, speed as x real time, what it was trained on), never as Python dicts."""

from __future__ import annotations

import tomllib
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from app.keys import KEYS, described_for
from engine import __version__
from engine.models.catalogue import get_card

ROOT = Path(__file__).resolve().parents[2]


def menu_action(window, text: str) -> QAction:
    return next(a for a in window.findChildren(QAction) if a.text() == text)


def test_keyboard_reference_lists_every_registered_key(qtbot, make_window) -> None:
    window = make_window("identity")
    menu_action(window, "&Keyboard reference").trigger()
    dialog = window.dialog
    assert dialog is not None and dialog.isVisible() and dialog.windowTitle() == "Keyboard reference"
    rows = dialog.rows()
    stems = window.controller.stem_names
    for entry in KEYS:
        what = described_for(entry, stems)
        assert ((entry.text(), what) in rows) if what is not None else all(k != entry.text() for k, _ in rows)
    assert ("Shift+2", "Mute drums (again: un-mute)") in rows
    assert not any(k == "5" for k, _ in rows)  # the four-stem model has no fifth stem: its key is not listed
    dialog.close()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=10_000)
    qtbot.keyClick(window, Qt.Key.Key_F1)  # its own key (listed too)
    assert window.dialog is not dialog and window.dialog.isVisible()


def test_keyboard_reference_names_the_stems_of_the_model_in_use(qtbot) -> None:
    from app.help_dialogs import KeyboardDialog

    dialog = KeyboardDialog(None, ["left", "centre", "right"])
    qtbot.addWidget(dialog)
    rows = dialog.rows()
    assert ("1", "Solo left (again: un-solo)") in rows and ("Shift+3", "Mute right (again: un-mute)") in rows
    assert not any(k in ("4", "Shift+4") or "drums" in what for k, what in rows)
    assert ("Space", "Play / pause") in rows  # the other keys stay


def test_about_names_version_licence_model_and_device(make_window) -> None:
    from app.help_dialogs import LICENCE_ID

    window = make_window("identity")
    menu_action(window, "&About Shotoku").trigger()
    text = window.dialog.text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert LICENCE_ID == pyproject["project"]["license"]
    assert f"Shotoku {__version__}" in text and LICENCE_ID in text
    assert "identity" in text  # the model in use
    assert window.controller.device_description and window.controller.device_description in text


def test_the_user_guide_opens_in_the_app(qtbot, make_window, tmp_path: Path) -> None:
    from app.help_dialogs import GuideDialog, guide_path

    window = make_window("identity")
    menu_action(window, "User &guide").trigger()
    qtbot.waitExposed(window.dialog)
    assert window.dialog.browser.horizontalScrollBar().maximum() == 0  # its screenshot fits, no sideways scroll
    text = window.dialog.text()
    assert guide_path().is_file()
    assert "Shotoku user guide" in text and "Keyboard" in text  # rendered Markdown: headings without '#'
    assert "# Shotoku user guide" not in text
    missing = GuideDialog(tmp_path / "nowhere" / "USER_GUIDE.md", window)
    assert "not installed" in missing.text() and "nowhere" in missing.text()


def test_a_model_card_reads_as_a_musician_s_summary() -> None:
    from app.model_picker import card_facts, describe_card

    card = get_card("openunmix")
    facts = card_facts(card)
    vocals = card.scores["sdr_median"]["vocals"]
    assert f"vocals {vocals:.1f} dB" in facts.quality
    assert f"{card.speed['cpu_realtime_factor']:.0f}× real time" in facts.speed
    assert f"{card.training['data']['counts']['train']} synthetic songs" in facts.trained
    text = describe_card(card)
    for raw in ("{", "}", "sdr_median", "cpu_realtime_factor", "'vocals'"):
        assert raw not in text
    assert "true stems" in card_facts(get_card("irm")).trained


def test_model_tooltips_and_the_models_dialog_show_the_summary_uncut(qtbot, make_window) -> None:
    window = make_window("identity", test_models=False)
    combo = window.ui.model_combo
    index = combo.findData("openunmix", Qt.ItemDataRole.UserRole)
    tip = combo.model().item(index).toolTip()
    assert "dB" in tip and "real time" in tip and "{" not in tip
    menu_action(window, "Models…").trigger()
    dialog = window.dialog
    qtbot.waitExposed(dialog)
    text = dialog.text()
    assert f"vocals {get_card('openunmix').scores['sdr_median']['vocals']:.1f} dB" in text
    for choice in window.controller.choices:
        assert choice.card.summary[:40] in text  # every summary, whole (wrapped, not cut off)
        assert choice.card.summary.rstrip(".")[-30:] in text
    assert dialog.browser.horizontalScrollBar().maximum() == 0  # wrapped to the dialog's width
    assert "sdr_median" not in text and "{" not in text
