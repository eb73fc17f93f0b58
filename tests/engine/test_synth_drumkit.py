"""The Hydrogen kit sampler: drumkit.xml layouts, GM mapping, velocity layers, round robin, choke, humanising."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.data.synth import drums as dr
from engine.data.synth.drumkit import KitPlayer, load_drumkit, pitch_for
from engine.errors import DatasetError
from tests.engine.synth_standins import write_tiny_kit

SR = 44100


@dataclass
class Hit:
    start: float
    pitch: int
    velocity: int


@pytest.mark.parametrize(("name", "pitch"), [
    ("Kick (Tama Superstar 22\")", dr.KICK), ("Snare (Pearl Free Floating Maple 14x3.5)", dr.SNARE),
    ("Ride (Custom, Zagrebin 22\")", dr.RIDE), ("Hi-Hat Semiopen (Paiste)", dr.OPEN_HAT),
    ("Sabian Hat Pedal", dr.PEDAL_HAT), ("Tambourine Pedal (Pearl)", dr.TAMBOURINE), ("Floor Tom", dr.LOW_TOM),
    ("Pearl Tom 1", dr.HIGH_TOM), ("Tom Mid", dr.MID_TOM), ("Ride Bell", dr.RIDE_BELL), ("Snare Roll", -1),
    ("Crash/Ride Bow", dr.RIDE), ("China (Paiste Alpha 18\")", dr.CRASH), ("Rim Click", dr.RIM),
])
def test_instrument_names_map_to_gm_pitches(name: str, pitch: int) -> None:
    assert pitch_for(name) == pitch


def test_both_drumkit_layouts_parse(tmp_path: Path) -> None:
    kit = load_drumkit(write_tiny_kit(tmp_path / "layers"))
    assert kit.pitches == {dr.KICK, dr.SNARE, dr.CLOSED_HAT, dr.OPEN_HAT}  # "Snare Roll" is left out
    kick = kit.instruments[dr.KICK][0]
    assert [(lay.vmin, lay.vmax) for lay in kick.layers] == [(0.0, 0.5), (0.5, 1.0), (0.5, 1.0)]
    assert kit.instruments[dr.SNARE][0].pan == (1.0, 0.5) and abs(kit.instruments[dr.SNARE][0].gain - 0.8) < 1e-9
    assert kit.role == "acoustic" and kit.licence.startswith("CC0")
    assert all(lay.audio is not None and lay.audio.shape[0] == 2 for lay in kick.layers)
    flat = load_drumkit(write_tiny_kit(tmp_path / "flat", flat=True), load_samples=False)
    assert flat.pitches == {dr.KICK, dr.CLAP, dr.CLOSED_HAT} and flat.n_sample_files == 3
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "drumkit.xml").write_text("<drumkit_info><instrumentList/></drumkit_info>")
    with pytest.raises(DatasetError):
        load_drumkit(tmp_path / "empty")


def test_velocity_picks_the_layer_and_hard_hits_round_robin(tmp_path: Path) -> None:
    kit = load_drumkit(write_tiny_kit(tmp_path / "k"))
    player = KitPlayer(kit, np.random.default_rng(0), timing_ms=0.0, velocity_jitter=0.0)
    soft = player.render([Hit(0.1, dr.KICK, 30)], SR)
    assert 0.05 < np.abs(soft).max() < 0.3 * 0.3  # the soft layer (peak 0.3) at velocity 30/127
    layers = [player._layer(kit.instruments[dr.KICK][0], 0.9).file.name for _ in range(4)]
    assert set(layers) == {"kick_hard_a.wav", "kick_hard_b.wav"} and layers[0] != layers[1]  # alternates


def test_rendering_is_deterministic_humanised_and_chokes_open_hats(tmp_path: Path) -> None:
    kit = load_drumkit(write_tiny_kit(tmp_path / "k"))
    notes = [Hit(0.25 * i, p, 100) for i, p in enumerate([dr.KICK, dr.OPEN_HAT, dr.CLOSED_HAT, dr.SNARE,
                                                           dr.RIDE, dr.LOW_TOM])]
    a = KitPlayer(kit, np.random.default_rng(5)).render(notes, 2 * SR)
    b = KitPlayer(kit, np.random.default_rng(5)).render(notes, 2 * SR)
    c = KitPlayer(kit, np.random.default_rng(6)).render(notes, 2 * SR)
    assert a.dtype == np.float32 and a.shape == (2, 2 * SR)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # RIDE falls back to the closed hat; LOW_TOM has no fallback in this kit and stays silent.
    player = KitPlayer(kit, np.random.default_rng(0), timing_ms=0.0, velocity_jitter=0.0)
    assert player.instrument_for(dr.RIDE) is kit.instruments[dr.CLOSED_HAT][0]
    assert player.instrument_for(dr.LOW_TOM) is None
    open_only = player.render([Hit(0.0, dr.OPEN_HAT, 100)], SR)
    choked = player.render([Hit(0.0, dr.OPEN_HAT, 100), Hit(0.2, dr.PEDAL_HAT, 1)], SR)
    tail = slice(int(0.3 * SR), int(0.6 * SR))  # the pedal hat falls back to the (short) closed hat
    assert np.abs(choked[:, tail]).max() < 0.05 * np.abs(open_only[:, tail]).max()
