"""Recorded drum kits: a numpy sampler for Hydrogen kits (``drumkit.xml`` + multi-velocity samples).

Nothing reusable plays multi-sample kits from a ``drumkit.xml`` outside Hydrogen itself (a GUI sequencer), so this
module does it in numpy: each kit instrument is mapped to a General MIDI percussion pitch by its name (kick 36,
snare 38, closed hat 42, ...), each hit picks the velocity layer whose ``[min, max]`` range holds the hit's
velocity (round-robin among layers that share a range), scales it by the layer, instrument and velocity gains,
pans it by the instrument's ``pan_L``/``pan_R`` and adds it at the hit's sample. Open hi-hats are choked by the
next closed or pedal hat (the mute group every kit has). Timing (+-ms) and velocity are humanised per hit from the
song's generator, so a kit never plays two hits exactly alike.

Both layouts of ``drumkit.xml`` are read: instruments with ``<layer>`` children (or ``<instrumentComponent>``
holding them), and old instruments with a single ``<filename>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.data.synth import drums as dr
from engine.errors import DatasetError

SAMPLERATE = 44100

#: (regular expression on the lower-cased instrument name, GM pitch), first match wins.
NAME_TO_PITCH: tuple[tuple[str, int], ...] = (
    (r"roll|choke|flink|swish|zap|\bfx\b|hat free|^click$", -1),  # special articulations: not mapped
    (r"tambourine|tamb", dr.TAMBOURINE),
    (r"kick|bass ?drum|\bbd\b", dr.KICK),
    (r"side ?stick|\bstick\b|rim ?click|cross ?stick", dr.RIM),
    (r"rim ?shot", -1),
    (r"clap", dr.CLAP),
    (r"snare|\bsn\b", dr.SNARE),
    (r"pedal|\bpd\b|foot", dr.PEDAL_HAT),
    (r"(hh|hat|hi-hat|hihat).*(open|\bop\b|semi)|(open|semi).*(hh|hat|hi-hat)", dr.OPEN_HAT),
    (r"hh|hat|hi-hat|hihat", dr.CLOSED_HAT),
    (r"floor|\btom ?low|low ?tom|\btom ?3", dr.LOW_TOM),
    (r"\btom ?hi|high ?tom|hi ?tom|\btom ?1\b", dr.HIGH_TOM),
    (r"\btom", dr.MID_TOM),
    (r"ride.*(bell|cup)|^bell|cup", dr.RIDE_BELL),
    (r"ride", dr.RIDE),
    (r"crash|china|splash", dr.CRASH),
    (r"cowbell", dr.COWBELL),
    (r"shaker|maraca", dr.SHAKER),
    (r"clave", dr.CLAVES),
)
#: A pitch the kit lacks is played by the first of these it has (or left out).
FALLBACK: dict[int, tuple[int, ...]] = {
    dr.RIM: (dr.SNARE,), dr.CLAP: (dr.SNARE,), dr.PEDAL_HAT: (dr.CLOSED_HAT,), dr.OPEN_HAT: (dr.CLOSED_HAT,),
    dr.LOW_TOM: (dr.MID_TOM, dr.HIGH_TOM), dr.MID_TOM: (dr.LOW_TOM, dr.HIGH_TOM), dr.HIGH_TOM: (dr.MID_TOM, dr.LOW_TOM),
    dr.RIDE: (dr.CLOSED_HAT,), dr.RIDE_BELL: (dr.RIDE, dr.CLOSED_HAT), dr.CRASH: (dr.RIDE,),
    dr.SHAKER: (dr.CLOSED_HAT,), dr.CLOSED_HAT: (dr.RIDE,),
}
#: Kits of Debian's hydrogen-drumkits by character (others are judged by their instruments).
KIT_ROLES = {
    "ElectricEmpireKit": "electronic", "HardElectro1": "electronic", "VariBreaks": "electronic",
    "rumpf_kit_z01_h2": "electronic", "circAfrique v4": "percussion", "Gimme A Hand 1.0": "percussion",
}
ELECTRONIC_STYLES = frozenset({"electronic", "hiphop", "disco"})


@dataclass
class Layer:
    """One sample of an instrument: the velocity range (0..1) it answers and its gain."""

    file: Path
    vmin: float = 0.0
    vmax: float = 1.0
    gain: float = 1.0
    audio: np.ndarray | None = None  # float32 (2, n) at 44.1 kHz once loaded


@dataclass
class Instrument:
    """A kit instrument: its name, GM pitch, gains, pan and velocity layers."""

    name: str
    pitch: int
    gain: float
    pan: tuple[float, float]
    layers: list[Layer] = field(default_factory=list)


@dataclass
class DrumKit:
    """A parsed Hydrogen kit: ``instruments[pitch]`` lists the kit instruments mapped to that GM pitch."""

    name: str
    folder: Path
    licence: str
    instruments: dict[int, list[Instrument]]

    @property
    def pitches(self) -> set[int]:
        return set(self.instruments)

    @property
    def n_sample_files(self) -> int:
        return sum(len(i.layers) for v in self.instruments.values() for i in v)

    @property
    def role(self) -> str:
        if self.name in KIT_ROLES:
            return KIT_ROLES[self.name]
        return "acoustic" if {dr.KICK, dr.SNARE, dr.CLOSED_HAT} <= self.pitches else "percussion"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> str | None:
    for c in el:
        if _local(c.tag) == name:
            return (c.text or "").strip()
    return None


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text not in (None, "") else default
    except ValueError:
        return default


def pitch_for(name: str) -> int:
    """The GM percussion pitch an instrument name maps to, or -1."""
    low = name.lower()
    for pattern, pitch in NAME_TO_PITCH:
        if re.search(pattern, low):
            return pitch
    return -1


def load_drumkit(folder: str | Path, load_samples: bool = True) -> DrumKit:
    """Parse ``folder/drumkit.xml``; with ``load_samples`` also read every sample (stereo 44.1 kHz float32)."""
    folder = Path(folder)
    xml = folder / "drumkit.xml"
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError) as err:
        raise DatasetError(xml, f"unreadable drumkit.xml ({err})") from err
    licence = _child(root, "license") or ""
    instruments: dict[int, list[Instrument]] = {}
    for el in root.iter():
        if _local(el.tag) != "instrument":
            continue
        name = _child(el, "name") or ""
        pitch = pitch_for(name)
        if pitch < 0 or (_child(el, "isMuted") or "false") == "true":
            continue
        layers = []
        for lay in el.iter():
            if _local(lay.tag) == "layer" and _child(lay, "filename"):
                layers.append(Layer(folder / _child(lay, "filename"), _float(_child(lay, "min"), 0.0),
                                    _float(_child(lay, "max"), 1.0), _float(_child(lay, "gain"), 1.0)))
        if not layers and _child(el, "filename"):
            layers.append(Layer(folder / _child(el, "filename")))
        layers = [lay for lay in layers if lay.file.is_file()]
        if not layers:
            continue
        gain = _float(_child(el, "gain"), 1.0) * _float(_child(el, "volume"), 1.0)
        pan = (_float(_child(el, "pan_L"), 1.0), _float(_child(el, "pan_R"), 1.0))
        instruments.setdefault(pitch, []).append(Instrument(name, pitch, gain, pan, sorted(layers, key=lambda x: x.vmin)))
    if not instruments:
        raise DatasetError(xml, "no instrument of this kit maps to a General MIDI drum")
    kit = DrumKit(_child(root, "name") or folder.name, folder, licence, instruments)
    kit.name = folder.name
    if load_samples:
        for inst in (i for v in instruments.values() for i in v):
            for lay in inst.layers:
                lay.audio = _read_sample(lay.file)
    return kit


def _read_sample(path: Path) -> np.ndarray:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise DatasetError(path, f"unreadable drum sample ({err})") from err
    x = data.T
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    x = x[:2]
    if rate != SAMPLERATE:
        import soxr

        x = soxr.resample(x.T, rate, SAMPLERATE).T
    return np.ascontiguousarray(x, dtype=np.float32)


class KitPlayer:
    """One song's use of a kit: an instrument chosen per pitch, per-hit humanisation, round-robin layers."""

    def __init__(self, kit: DrumKit, rng: np.random.Generator, timing_ms: float = 4.0,
                 velocity_jitter: float = 6.0) -> None:
        self.kit = kit
        self.choice = {p: v[int(rng.integers(0, len(v)))] for p, v in sorted(kit.instruments.items())}
        self.timing_ms = timing_ms
        self.velocity_jitter = velocity_jitter
        self._rr: dict[tuple, int] = {}
        self.rng = rng

    def instrument_for(self, pitch: int) -> Instrument | None:
        """The instrument that plays ``pitch`` (directly or through :data:`FALLBACK`)."""
        if pitch in self.choice:
            return self.choice[pitch]
        for alt in FALLBACK.get(pitch, ()):
            if alt in self.choice:
                return self.choice[alt]
        return None

    def _layer(self, inst: Instrument, velocity: float) -> Layer:
        hits = [lay for lay in inst.layers if lay.vmin <= velocity <= lay.vmax]
        if not hits:
            hits = [min(inst.layers, key=lambda lay: min(abs(lay.vmin - velocity), abs(lay.vmax - velocity)))]
        key = (inst.pitch, inst.name, round(hits[0].vmin, 3), round(hits[0].vmax, 3))
        k = self._rr.get(key, int(self.rng.integers(0, len(hits))))
        self._rr[key] = k + 1
        return hits[k % len(hits)]

    def render(self, notes: list, n_samples: int) -> np.ndarray:
        """Play ``notes`` (objects with ``start`` seconds, ``pitch`` and ``velocity`` 1..127): float32 ``(2, n)``."""
        out = np.zeros((2, n_samples), dtype=np.float32)
        hits = []
        for note in sorted(notes, key=lambda n: (n.start, n.pitch)):
            inst = self.instrument_for(note.pitch)
            if inst is None:
                continue
            t = note.start + float(self.rng.normal(0.0, self.timing_ms / 1000.0))
            v = float(np.clip((note.velocity + self.rng.normal(0.0, self.velocity_jitter)) / 127.0, 0.05, 1.0))
            hits.append((max(int(round(t * SAMPLERATE)), 0), note.pitch, inst, v))
        # Choke: an open hat stops at the next closed or pedal hat.
        hat_times = [s for s, p, _, _ in hits if p in (dr.CLOSED_HAT, dr.PEDAL_HAT)]
        for start, pitch, inst, v in hits:
            if start >= n_samples:
                continue
            lay = self._layer(inst, v)
            if lay.audio is None:
                lay.audio = _read_sample(lay.file)
            x = lay.audio
            stop = min(start + x.shape[1], n_samples)
            if pitch == dr.OPEN_HAT:
                later = [s for s in hat_times if s > start + 441]
                if later and later[0] < stop:
                    stop = later[0]
            n = stop - start
            if n <= 0:
                continue
            g = np.float32(lay.gain * inst.gain * v)
            seg = x[:, :n] * g
            seg[0] *= inst.pan[0]
            seg[1] *= inst.pan[1]
            if pitch == dr.OPEN_HAT and n < x.shape[1]:
                k = min(882, n)
                seg[:, -k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)
            out[:, start:stop] += seg
        return out
