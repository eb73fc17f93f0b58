"""The app follows the model's stems: a spatial model's left/centre/right, a two-stem vocals + accompaniment model,
and back to the four stems (lanes, strips, colours, faders, keys, presets, export, sessions)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt

from app.actions import preset_problem
from app.controller import fit_mix
from app.session_file import Session, load_session, save_session
from app.theme import STEM_COLORS, stem_colors
from app.views.channel_strip import db_to_fader
from engine import STEM_NAMES
from engine.playback.mix import MixState, StripState
from tests.app.conftest import wait_loaded, wait_separated
from tests.app.songgen import SR, make_stems

REPO = Path(__file__).resolve().parents[2]
SPATIAL = ["left", "centre", "right"]
DUO = ["vocals", "accompaniment"]
#: A hang guard only (decoding a 2-3 s song, writing two WAV files): never reached unless something hangs.
HANG_MS = 120_000


@pytest.fixture
def panned_song(tmp_path: Path) -> Path:
    """``panned/panned.wav`` (2 s): drums hard left, the pad hard right, the melody and bass in the centre."""
    mono = {name: stem[0] for name, stem in make_stems(2.0).items()}
    centre = mono["vocals"] + mono["bass"]
    mix = np.stack([mono["drums"] + centre, mono["other"] + centre]).astype(np.float32)
    path = tmp_path / "panned" / "panned.wav"
    path.parent.mkdir()
    sf.write(path, mix.T, SR)
    return path


@pytest.fixture
def duo_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with the identity model (four stems) and ``duo``: the identity model with two stems, vocals and
    accompaniment (as the semi-supervised and adapted models have)."""
    root = tmp_path / "resources"
    (root / "models").mkdir(parents=True)
    shutil.copytree(REPO / "resources" / "models" / "identity", root / "models" / "identity")
    card = {"name": "duo", "architecture": "identity", "kind": "test", "summary": "Two identity stems.",
            "config": {"segment_seconds": 10.0, "sources": DUO}, "sources": DUO, "samplerate": 44100,
            "n_channels": 2, "segment_seconds": 10.0, "paper": "", "weights_sha256": None}
    (root / "models" / "duo").mkdir()
    (root / "models" / "duo" / "card.json").write_text(json.dumps(card), encoding="utf-8")
    monkeypatch.setenv("SHOTOKU_RESOURCES", str(root))
    return root


def pick(window, name: str) -> None:
    """Choose ``name`` in the model picker, as the musician does."""
    combo = window.ui.model_combo
    index = combo.findData(name, Qt.ItemDataRole.UserRole)
    assert index >= 0, f"{name} is not in the model picker"
    combo.setCurrentIndex(index)


def stem_lanes(window) -> list[str]:
    return [name for name in window.spectrograms.lanes if name != "mixture"]


def played_gains(window) -> dict[str, list[float]]:
    """``{stem: [left, right]}`` linear gains the engine's mixer plays with, by the engine's stem names."""
    playback = window.controller.playback
    gains = playback.mixer.target_gain
    return {name: [round(float(g), 4) for g in gains[i]] for i, name in enumerate(playback.stems)}


# -- pure rules ------------------------------------------------------------------------------------------------------
def test_stem_colours_keep_the_four_and_give_others_distinct_ones() -> None:
    assert stem_colors(list(STEM_NAMES)) == {name: STEM_COLORS[name] for name in STEM_NAMES}
    spatial = stem_colors(SPATIAL)
    assert len(set(spatial.values())) == 3 and not set(spatial.values()) & set(STEM_COLORS.values())
    duo = stem_colors(DUO)
    assert duo["vocals"] == STEM_COLORS["vocals"] and duo["accompaniment"] not in STEM_COLORS.values()


def test_fit_mix_keeps_matching_strips_and_the_master() -> None:
    state = MixState({"vocals": StripState(-6.0, mute=True), "drums": StripState(-3.0)}, master_db=-2.0)
    fitted = fit_mix(state, DUO)
    assert list(fitted.strips) == DUO and fitted.master_db == -2.0
    assert fitted.strips["vocals"] == StripState(-6.0, mute=True) and fitted.strips["accompaniment"] == StripState()


def test_presets_that_need_a_missing_stem_say_why() -> None:
    assert preset_problem("karaoke", DUO) == "" and preset_problem("a cappella", DUO) == ""
    assert "drums" in preset_problem("drumless", DUO) and "accompaniment" in preset_problem("drumless", DUO)
    assert all(preset_problem(name, SPATIAL) for name in ("karaoke", "a cappella", "drumless", "bassless"))
    assert preset_problem("reset", SPATIAL) == ""


def test_a_session_file_keeps_every_strip_it_saved(tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((100, 2), dtype=np.float32), SR)
    mix = MixState({"left": StripState(-6.0), "centre": StripState(pan=0.5)})
    path = save_session(tmp_path / "s", Session(song, "projet", "cpu", mix))
    assert load_session(path).mix.strips == mix.strips
    assert list(load_session(path, STEM_NAMES).mix.strips) == list(STEM_NAMES)


# -- the window -------------------------------------------------------------------------------------------------------
def test_picking_projet_shows_its_three_stems_and_openunmix_brings_back_four(qtbot, make_window, panned_song: Path,
                                                                             tmp_path: Path) -> None:
    window = make_window("identity")
    window.controller.open_file(panned_song)
    wait_loaded(qtbot, window)
    assert stem_lanes(window) == list(STEM_NAMES)

    pick(window, "projet")
    assert window.controller.playback.stems == SPATIAL
    assert stem_lanes(window) == SPATIAL
    assert window.mixer.stems == SPATIAL and list(window.mixer.strips) == SPATIAL
    assert [window.mixer.strips[n].title.text() for n in SPATIAL] == ["LEFT", "CENTRE", "RIGHT"]
    colours = [window.spectrograms.lanes[n].color for n in SPATIAL]
    assert len(set(colours)) == 3 and colours == [window.mixer.strips[n].color for n in SPATIAL]
    assert window.spectrograms.lanes["centre"].data.shape == window.spectrograms.lanes["mixture"].data.shape
    assert window.spectrograms.lanes["right"].hatch.isVisible()  # not separated yet: hatched
    assert not window.ui.preset_actions["karaoke"].isEnabled()
    assert "vocals" in window.ui.preset_actions["karaoke"].toolTip()
    assert [a.text() for a in window.ui.practice_menu.actions()] == ["Left -12 dB", "Centre -12 dB", "Right -12 dB"]

    window.mixer.strips["centre"].fader.setValue(db_to_fader(-6.0))
    gain = round(10 ** (-6 / 20), 4)
    assert played_gains(window) == {"left": [1.0, 1.0], "centre": [gain, gain], "right": [1.0, 1.0]}
    session = window.controller.save_session_to(tmp_path / "spatial")
    qtbot.keyClick(window, Qt.Key.Key_3)  # solo the third stem: right
    assert played_gains(window) == {"left": [0.0, 0.0], "centre": [0.0, 0.0], "right": [1.0, 1.0]}
    qtbot.keyClick(window, Qt.Key.Key_4)  # no fourth stem: nothing happens
    assert window.mixer.strips["right"].solo.isChecked()
    qtbot.keyClick(window, Qt.Key.Key_3)
    window.apply_preset("practice", "left")
    assert played_gains(window)["left"][0] == pytest.approx(10 ** (-12 / 20), rel=1e-3)

    pick(window, "openunmix")
    assert window.controller.playback.stems == list(STEM_NAMES)
    assert stem_lanes(window) == list(STEM_NAMES) and list(window.mixer.strips) == list(STEM_NAMES)
    assert all(window.ui.preset_actions[name].isEnabled() for name in window.ui.preset_actions)
    assert all(g == [1.0, 1.0] for g in played_gains(window).values())  # no strip of projet's names carried over
    axes = [window.spectrograms.lanes[n].plot.getAxis("bottom").style["showValues"] for n in ("mixture", *STEM_NAMES)]
    assert axes == [False, False, False, False, True]  # the time axis under the last lane only

    window.controller.open_session(session)  # saved with projet: its three strips come back
    qtbot.waitUntil(lambda: window.controller.playback.stems == SPATIAL and not window.controller.loading,
                    timeout=HANG_MS)
    assert stem_lanes(window) == SPATIAL and window.mixer.state().strips["centre"].gain_db == -6.0
    assert played_gains(window)["centre"] == [gain, gain]


def test_a_two_stem_model_plays_draws_and_exports_its_stems(qtbot, make_window, duo_registry: Path,
                                                            plain_song: Path, tmp_path: Path) -> None:
    window = make_window("duo")
    window.controller.open_file(plain_song)
    wait_loaded(qtbot, window)
    assert window.controller.playback.stems == DUO
    assert stem_lanes(window) == DUO and list(window.mixer.strips) == DUO
    assert window.mixer.strips["vocals"].color == STEM_COLORS["vocals"]
    assert window.mixer.strips["accompaniment"].color not in (*STEM_COLORS.values(), "#cccccc")

    actions = window.ui.preset_actions
    assert actions["karaoke"].isEnabled() and actions["a cappella"].isEnabled()
    assert not actions["drumless"].isEnabled() and "no drums stem" in actions["drumless"].toolTip()
    assert not actions["bassless"].isEnabled() and "no bass stem" in actions["bassless"].toolTip()
    actions["karaoke"].trigger()
    assert played_gains(window) == {"vocals": [0.0, 0.0], "accompaniment": [1.0, 1.0]}
    assert window.ui.preset_label.text() == "Mix: karaoke"
    window.apply_preset("reset")
    qtbot.keyClick(window, Qt.Key.Key_2)  # solo the second stem
    assert played_gains(window) == {"vocals": [0.0, 0.0], "accompaniment": [1.0, 1.0]}
    qtbot.keyClick(window, Qt.Key.Key_2)
    qtbot.keyClick(window, Qt.Key.Key_At, Qt.KeyboardModifier.ShiftModifier)  # Shift+2: mute it
    assert window.mixer.strips["accompaniment"].mute.isChecked()
    window.apply_preset("reset")

    wait_separated(qtbot, window)
    assert window.spectrograms.lanes["accompaniment"].data.max() > -60.0  # the second stem was drawn
    window.mixer.strips["vocals"].fader.setValue(db_to_fader(-6.0))
    dialog = window.open_export_dialog()
    assert dialog is not None and dialog.stem_names == DUO
    out = tmp_path / "out"
    dialog.folder.setText(str(out))
    dialog.format.setCurrentText("WAV")
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=HANG_MS)
    assert sorted(p.name for p in out.iterdir()) == ["tune - accompaniment.wav", "tune - vocals.wav"]
    dialog.close()

    pick(window, "identity")  # back to four stems: vocals keeps its fader
    assert stem_lanes(window) == list(STEM_NAMES)
    assert window.mixer.state().strips["vocals"].gain_db == -6.0
    assert window.mixer.state().strips["drums"].gain_db == 0.0
    assert played_gains(window)["vocals"][0] == pytest.approx(10 ** (-6 / 20), rel=1e-3)


def test_a_session_saved_with_other_stems_opens_and_keeps_matching_gains(qtbot, make_window, duo_registry: Path,
                                                                        plain_song: Path, tmp_path: Path) -> None:
    window = make_window("duo")
    window.controller.open_file(plain_song)
    wait_loaded(qtbot, window)
    window.mixer.strips["vocals"].fader.setValue(db_to_fader(-6.0))
    window.mixer.strips["accompaniment"].mute.setChecked(True)
    saved = window.controller.save_session_to(tmp_path / "duo")
    assert saved is not None
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["model"] = "identity"  # the same mix, opened with a four-stem model
    as_four = tmp_path / "four.shotoku"
    as_four.write_text(json.dumps(data), encoding="utf-8")

    window.controller.open_session(as_four)
    qtbot.waitUntil(lambda: window.controller.playback.stems == list(STEM_NAMES) and not window.controller.loading,
                    timeout=HANG_MS)
    assert stem_lanes(window) == list(STEM_NAMES)
    strips = window.mixer.state().strips
    assert strips["vocals"].gain_db == -6.0 and not any(s.mute for s in strips.values())
    assert played_gains(window)["vocals"][0] == pytest.approx(10 ** (-6 / 20), rel=1e-3)

    window.mixer.strips["drums"].mute.setChecked(True)
    four = window.controller.save_session_to(tmp_path / "four-saved")
    data = json.loads(four.read_text(encoding="utf-8"))
    data["model"] = "duo"
    as_duo = tmp_path / "as-duo.shotoku"
    as_duo.write_text(json.dumps(data), encoding="utf-8")
    window.controller.open_session(as_duo)
    qtbot.waitUntil(lambda: window.controller.playback.stems == DUO and not window.controller.loading,
                    timeout=HANG_MS)
    assert stem_lanes(window) == DUO
    strips = window.mixer.state().strips
    assert list(strips) == DUO and strips["vocals"].gain_db == -6.0 and not strips["accompaniment"].mute
    assert not math.isinf(strips["accompaniment"].gain_db)


def test_before_any_song_the_console_follows_the_chosen_card(qtbot, make_window, duo_registry: Path) -> None:
    window = make_window("identity")
    assert stem_lanes(window) == list(STEM_NAMES)
    pick(window, "duo")
    assert stem_lanes(window) == DUO and list(window.mixer.strips) == DUO
    assert not window.ui.preset_actions["drumless"].isEnabled()
    pick(window, "identity")
    assert stem_lanes(window) == list(STEM_NAMES) and window.ui.preset_actions["drumless"].isEnabled()
