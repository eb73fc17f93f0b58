"""The mixer's state and its rules, as pure functions: presets, mute/solo, dB and pan laws.

No Qt here, so every rule is unit-tested on its own. A stem is *audible* when it is not muted and, if any stem is
soloed, it is soloed too (a muted stem stays silent even when soloed, as in most DAWs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from engine.playback.mixer import audible_stems, db_to_gain

#: The fader's bottom: at or below this the gain is -inf dB (silence).
MIN_DB = -60.0
#: The fader's top.
MAX_DB = 6.0
#: What the practice preset does to its stem.
PRACTICE_DB = -12.0

#: Preset names, in the order the toolbar shows them.
PRESETS: tuple[str, ...] = ("karaoke", "a cappella", "drumless", "bassless", "practice", "reset")

PRESET_HELP: dict[str, str] = {
    "karaoke": "Vocals off: sing along to the band",
    "a cappella": "Vocals alone (solo)",
    "drumless": "Drums off: play along on drums",
    "bassless": "Bass off: play along on bass",
    "practice": f"One stem {PRACTICE_DB:+.0f} dB: hear yourself over it",
    "reset": "Every fader at 0 dB, nothing muted or soloed, pans centred",
}


@dataclass
class StripState:
    """One channel strip: fader (dB, ``-inf`` allowed), mute, solo and pan (-1 left .. +1 right)."""

    gain_db: float = 0.0
    mute: bool = False
    solo: bool = False
    pan: float = 0.0


@dataclass
class MixState:
    """Every stem's strip (by stem name, in display order) and the master fader."""

    strips: dict[str, StripState] = field(default_factory=dict)
    master_db: float = 0.0

    @classmethod
    def default(cls, stems: list[str] | tuple[str, ...]) -> MixState:
        """All faders at 0 dB, nothing muted or soloed, pans centred."""
        return cls({name: StripState() for name in stems})

    def copy(self) -> MixState:
        return MixState({k: replace(v) for k, v in self.strips.items()}, self.master_db)

    def to_json(self) -> dict:
        """A JSON-able dict (``-inf`` dB is written as ``null``)."""
        def db(value: float) -> float | None:
            return None if math.isinf(value) else round(float(value), 3)

        return {
            "master_db": db(self.master_db),
            "strips": {
                name: {"gain_db": db(s.gain_db), "mute": s.mute, "solo": s.solo, "pan": round(float(s.pan), 3)}
                for name, s in self.strips.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict, stems: list[str] | tuple[str, ...]) -> MixState:
        """Read :meth:`to_json`'s dict; stems it lacks get defaults, unknown stems are dropped."""
        def db(value: object) -> float:
            return -math.inf if value is None else clamp_db(float(value))  # type: ignore[arg-type]

        state = cls.default(stems)
        state.master_db = db(data.get("master_db", 0.0))
        for name, raw in (data.get("strips") or {}).items():
            if name in state.strips and isinstance(raw, dict):
                state.strips[name] = StripState(
                    gain_db=db(raw.get("gain_db", 0.0)),
                    mute=bool(raw.get("mute", False)),
                    solo=bool(raw.get("solo", False)),
                    pan=max(-1.0, min(1.0, float(raw.get("pan", 0.0)))),
                )
        return state


def clamp_db(value: float) -> float:
    """Clamp to the fader's range; anything at or below :data:`MIN_DB` becomes ``-inf``."""
    if value <= MIN_DB:
        return -math.inf
    return min(MAX_DB, value)


def db_to_linear(value: float) -> float:
    """The engine's dB law, with anything at or below the fader's bottom (:data:`MIN_DB`) giving exactly 0."""
    return 0.0 if value <= MIN_DB else db_to_gain(value)


def format_db(value: float) -> str:
    """``"-inf"``, ``"0.0"``, ``"-12.5"``, ``"+3.0"``."""
    if math.isinf(value) or value <= MIN_DB:
        return "-inf"
    return f"{value:+.1f}" if value > 0 else f"{value:.1f}"


def audible(state: MixState) -> dict[str, bool]:
    """Which stems are heard: the engine's rule (not muted, and soloed if any stem is soloed)."""
    names = list(state.strips)
    heard = audible_stems(np.array([state.strips[n].mute for n in names], dtype=bool),
                          np.array([state.strips[n].solo for n in names], dtype=bool))
    return {name: bool(h) for name, h in zip(names, heard)}


def effective_gains(state: MixState) -> dict[str, float]:
    """Linear gain of each stem after fader, mute and solo (pan not included)."""
    heard = audible(state)
    return {name: db_to_linear(s.gain_db) if heard[name] else 0.0 for name, s in state.strips.items()}


def apply_preset(state: MixState, name: str, target: str | None = None) -> MixState:
    """The mix a preset gives (a new state; ``state`` only tells which stems exist and the master level).

    Args:
        name: one of :data:`PRESETS`.
        target: the stem of the "practice" preset (default ``"vocals"``).

    Raises:
        ValueError: unknown preset, or a preset whose stem the model does not have.
    """
    stems = list(state.strips)
    result = MixState.default(stems)
    result.master_db = state.master_db
    needs = {"karaoke": "vocals", "a cappella": "vocals", "drumless": "drums", "bassless": "bass"}
    if name == "reset":
        return result
    if name == "practice":
        stem = target or "vocals"
        if stem not in result.strips:
            raise ValueError(f"practice: no stem {stem!r} (stems: {', '.join(stems)})")
        result.strips[stem].gain_db = PRACTICE_DB
        return result
    if name not in needs:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    stem = needs[name]
    if stem not in result.strips:
        raise ValueError(f"{name}: this model has no {stem} stem")
    if name == "a cappella":
        result.strips[stem].solo = True
    else:
        result.strips[stem].mute = True
    return result


def matching_preset(state: MixState) -> str | None:
    """The preset ``state`` equals (practice on any stem), or None for a custom mix."""
    for name in PRESETS:
        targets = list(state.strips) if name == "practice" else [None]
        for target in targets:
            try:
                candidate = apply_preset(state, name, target)
            except ValueError:
                continue
            if candidate.strips == state.strips:
                return f"practice ({target})" if name == "practice" else name
    return None
