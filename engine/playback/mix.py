"""The one mix state and its rules: strips, master, presets, mute/solo, the dB and pan laws (no Qt, no audio).

:class:`MixState` is what a mixer console shows and what :meth:`PlaybackSession.apply_mix
<engine.playback.session.PlaybackSession.apply_mix>` plays; :func:`resolve_gains` turns it into the linear gains the
real-time mixer and the offline export both apply, so an export sounds exactly like playback.

Rules: a stem is *audible* when it is not muted and, if any stem is soloed, it is soloed too (a muted stem stays
silent even when soloed, as in most DAWs). A fader at or below :data:`MIN_DB` is silence. The pan is a stereo
balance from -1 (left) to 1 (right): the far side is attenuated with a constant-power law, the near side stays at
unity (centre is unity on both sides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

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

#: The stem each single-stem preset acts on.
_PRESET_STEM = {"karaoke": "vocals", "a cappella": "vocals", "drumless": "drums", "bassless": "bass"}


@dataclass
class StripState:
    """One channel strip: fader (dB, ``-inf`` allowed), mute, solo and pan (-1 left .. +1 right)."""

    gain_db: float = 0.0
    mute: bool = False
    solo: bool = False
    pan: float = 0.0


@dataclass
class MixState:
    """Every stem's strip (by stem name, in display order) and the master fader (dB)."""

    strips: dict[str, StripState] = field(default_factory=dict)
    master_db: float = 0.0

    @classmethod
    def default(cls, stems: list[str] | tuple[str, ...]) -> MixState:
        """All faders at 0 dB, nothing muted or soloed, pans centred."""
        return cls({name: StripState() for name in stems})

    def copy(self) -> MixState:
        return MixState({k: replace(v) for k, v in self.strips.items()}, self.master_db)

    def strip_for(self, stem: str) -> StripState:
        """The strip of ``stem`` (to read or change in place).

        Raises:
            ValueError: this mix has no such stem (the message lists the stems it has).
        """
        try:
            return self.strips[stem]
        except KeyError:
            raise ValueError(f"unknown stem {stem!r}; stems: {', '.join(self.strips)}") from None

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


# ---------------------------------------------------------------------------------------------------- dB and pan laws
def clamp_db(value: float) -> float:
    """Clamp to the fader's range; anything at or below :data:`MIN_DB` becomes ``-inf``."""
    if value <= MIN_DB:
        return -math.inf
    return min(MAX_DB, value)


def db_to_linear(value: float) -> float:
    """Decibels to a linear gain; at or below the fader's bottom (:data:`MIN_DB`, ``-inf`` included) exactly 0."""
    return 0.0 if value <= MIN_DB else float(10.0 ** (value / 20.0))


def format_db(value: float) -> str:
    """``"-inf"``, ``"0.0"``, ``"-12.5"``, ``"+3.0"``."""
    if math.isinf(value) or value <= MIN_DB:
        return "-inf"
    return f"{value:+.1f}" if value > 0 else f"{value:.1f}"


def pan_law(pan: float) -> tuple[float, float]:
    """``(left, right)`` gains of a balance ``pan`` in ``[-1, 1]`` (clipped): constant power on the far side."""
    p = max(-1.0, min(1.0, float(pan)))
    left = math.cos(0.5 * math.pi * p) if p > 0 else 1.0
    right = math.cos(0.5 * math.pi * -p) if p < 0 else 1.0
    return left, right


# ---------------------------------------------------------------------------------------------------- mute, solo, gains
def audible(state: MixState) -> dict[str, bool]:
    """Which stems are heard: not muted, and soloed if any stem is soloed."""
    any_solo = any(s.solo for s in state.strips.values())
    return {name: not s.mute and (s.solo or not any_solo) for name, s in state.strips.items()}


def effective_gains(state: MixState) -> dict[str, float]:
    """Linear gain of each stem after fader, mute and solo (pan not included)."""
    heard = audible(state)
    return {name: db_to_linear(s.gain_db) if heard[name] else 0.0 for name, s in state.strips.items()}


def resolve_gains(state: MixState, stems: list[str] | tuple[str, ...]) -> tuple[np.ndarray, float]:
    """The linear gains playback (and the export) applies for ``state``, in ``stems`` order.

    A stem of ``stems`` that ``state`` has no strip for is silent; strips of other stems are ignored, their solo
    too (a console that still shows another model's stems changes nothing it does not know).

    Returns:
        ``(gains, master)``: ``gains`` float32 ``(n_stems, 2)`` (left/right bus gain of each stem: fader, mute,
        solo and pan resolved) and the linear master gain.
    """
    heard = audible(MixState({name: state.strips[name] for name in stems if name in state.strips}))
    gains = np.zeros((len(stems), 2), dtype=np.float32)
    for s, name in enumerate(stems):
        strip = state.strips.get(name)
        if strip is None or not heard[name]:
            continue
        g = db_to_linear(strip.gain_db)
        left, right = pan_law(strip.pan)
        gains[s] = (g * left, g * right)
    return gains, db_to_linear(state.master_db)


# ---------------------------------------------------------------------------------------------------- presets
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
    if name == "reset":
        return result
    if name == "practice":
        stem = target or "vocals"
        if stem not in result.strips:
            raise ValueError(f"practice: no stem {stem!r} (stems: {', '.join(stems)})")
        result.strips[stem].gain_db = PRACTICE_DB
        return result
    if name not in _PRESET_STEM:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    stem = _PRESET_STEM[name]
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
