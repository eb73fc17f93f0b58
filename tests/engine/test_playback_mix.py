"""The one mix state (engine.playback.mix): presets, mute/solo, dB and pan laws, JSON round trip, one apply call.

Moved from tests/app/test_presets.py with every assertion when app/presets.py went away.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.playback.mix import (
    MixState,
    apply_preset,
    audible,
    clamp_db,
    db_to_linear,
    effective_gains,
    format_db,
    matching_preset,
)

STEMS = ("vocals", "drums", "bass", "other")


def test_karaoke_silences_only_vocals() -> None:
    state = apply_preset(MixState.default(STEMS), "karaoke")
    assert effective_gains(state) == {"vocals": 0.0, "drums": 1.0, "bass": 1.0, "other": 1.0}


def test_a_cappella_keeps_only_vocals() -> None:
    state = apply_preset(MixState.default(STEMS), "a cappella")
    assert audible(state) == {"vocals": True, "drums": False, "bass": False, "other": False}


@pytest.mark.parametrize(("preset", "silent"), [("drumless", "drums"), ("bassless", "bass")])
def test_less_presets_mute_their_stem(preset: str, silent: str) -> None:
    gains = effective_gains(apply_preset(MixState.default(STEMS), preset))
    assert gains[silent] == 0.0
    assert all(g == 1.0 for name, g in gains.items() if name != silent)


def test_practice_turns_one_stem_down_12_db() -> None:
    state = apply_preset(MixState.default(STEMS), "practice", "bass")
    gains = effective_gains(state)
    assert gains["bass"] == pytest.approx(10 ** (-12 / 20))
    assert gains["vocals"] == 1.0
    assert matching_preset(state) == "practice (bass)"


def test_reset_clears_everything_but_keeps_master() -> None:
    state = apply_preset(MixState.default(STEMS), "karaoke")
    state.strips["drums"].gain_db = -6.0
    state.strips["bass"].pan = 0.5
    state.master_db = -3.0
    reset = apply_preset(state, "reset")
    assert reset.strips == MixState.default(STEMS).strips
    assert reset.master_db == -3.0


def test_unknown_preset_and_missing_stem_raise() -> None:
    with pytest.raises(ValueError):
        apply_preset(MixState.default(STEMS), "louder")
    with pytest.raises(ValueError):
        apply_preset(MixState.default(("drums", "bass")), "karaoke")


def test_mute_wins_over_solo_and_solo_silences_the_rest() -> None:
    state = MixState.default(STEMS)
    state.strips["drums"].solo = True
    state.strips["bass"].solo = True
    state.strips["bass"].mute = True
    assert audible(state) == {"vocals": False, "drums": True, "bass": False, "other": False}
    state.strips["drums"].solo = state.strips["bass"].solo = False
    assert audible(state) == {"vocals": True, "drums": True, "bass": False, "other": True}


def test_db_rules() -> None:
    assert db_to_linear(0.0) == 1.0
    assert db_to_linear(-6.0) == pytest.approx(0.501187, rel=1e-5)
    assert db_to_linear(-math.inf) == 0.0
    assert db_to_linear(-60.0) == 0.0
    assert clamp_db(-80.0) == -math.inf
    assert clamp_db(20.0) == 6.0
    assert format_db(-math.inf) == "-inf"
    assert format_db(3.0) == "+3.0"


def test_apply_mix_gives_the_engine_the_panel_state_resolved_as_playback_and_export_use_it(tmp_path) -> None:
    from engine.audio import Audio
    from engine.playback.session import PlaybackSession
    from engine.separation.cache import StemCache

    session = PlaybackSession(open_output=False, cache=StemCache(tmp_path / "cache"))
    try:
        session.open(Audio(np.zeros((2, 4410), np.float32), 44100), play=False, separate=False)
        state = MixState.default(STEMS)
        state.strips["vocals"].gain_db = -6.0
        state.strips["vocals"].pan = 1.0
        state.strips["drums"].mute = True
        state.strips["bass"].gain_db = -80.0  # below the fader's range: silence
        state.master_db = -3.0
        session.apply_mix(state)  # one call
        gains, master = session.mix_gains()
        np.testing.assert_array_equal(session.mixer.target_gain, gains)
        order = [session.stems.index(name) for name in STEMS]
        np.testing.assert_allclose(gains[order[0]], [0.0, db_to_linear(-6.0)], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(gains[order[1]], [0.0, 0.0])
        np.testing.assert_array_equal(gains[order[2]], [0.0, 0.0])
        np.testing.assert_array_equal(gains[order[3]], [1.0, 1.0])
        assert master == pytest.approx(db_to_linear(-3.0))
    finally:
        session.close()


def test_json_round_trip_keeps_minus_infinity() -> None:
    state = apply_preset(MixState.default(STEMS), "a cappella")
    state.strips["other"].gain_db = -math.inf
    state.master_db = -2.5
    again = MixState.from_json(state.to_json(), STEMS)
    assert again.strips == state.strips
    assert again.master_db == -2.5
    assert matching_preset(MixState.default(STEMS)) == "reset"
