"""Render instrument parts with FluidSynth (in-process, float output) and mix stems with stem-local effects.

pyfluidsynth is imported lazily: importing this module never needs FluidSynth. One :class:`PartRenderer` per
worker process loads the SoundFont once and renders one part at a time from silence, so each part is
independent of what was rendered before (checked by the tests: same part twice gives the same bytes).
"""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

import numpy as np
from scipy.signal import oaconvolve

from engine.data.synth.compose import Part
from engine.errors import DatasetError

SAMPLERATE = 44100
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
APT_HINT = "sudo apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm espeak-ng"
_BLOCK = 64  # FluidSynth's internal block: events are applied on block boundaries


def check_tools(soundfont: Path | None = None) -> Path:
    """Raise :class:`DatasetError` (with the apt-get command) unless FluidSynth, pyfluidsynth, pyworld, espeak-ng
    and the SoundFont are available; returns the SoundFont path."""
    sf = Path(soundfont) if soundfont is not None else DEFAULT_SOUNDFONT
    if not sf.is_file():
        raise DatasetError(sf, f"SoundFont not found; install one with: {APT_HINT} (or pass --soundfont)")
    if shutil.which("espeak-ng") is None:
        raise DatasetError(None, f"espeak-ng is not installed; install it with: {APT_HINT}")
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as err:
        raise DatasetError(None, f"FluidSynth is not usable ({err}); install it with: {APT_HINT} "
                           "and `pip install pyfluidsynth`") from err
    try:
        import pyworld  # noqa: F401
    except ImportError as err:
        raise DatasetError(None, f"pyworld is not installed ({err}); `pip install pyworld`") from err
    return sf


class PartRenderer:
    """A long-lived FluidSynth synthesiser (global reverb and chorus off) that renders one part at a time."""

    _pid_used: int | None = None

    @classmethod
    def used_in_this_process(cls) -> bool:
        """Whether a renderer was created in this process (forking it afterwards can deadlock)."""
        return cls._pid_used == os.getpid()

    def __init__(self, soundfont: Path | dict[str, Path], samplerate: int = SAMPLERATE,
                 drum_sf2: frozenset[str] = frozenset()) -> None:
        """``soundfont``: one SoundFont, or ``{name: path}`` of several (the first is the default bank; a part
        picks one by its ``sfont`` name). Names in ``drum_sf2`` are drum-kit SoundFonts whose kit is preset
        0:0 on a melodic channel (AVL drums) rather than bank 128 on channel 10."""
        import fluidsynth

        from engine.data.real.sources import refuse_reserved

        PartRenderer._pid_used = os.getpid()
        self._fluidsynth = fluidsynth
        self.samplerate = samplerate
        fonts = {"default": Path(soundfont)} if not isinstance(soundfont, dict) else dict(soundfont)
        for path in fonts.values():
            refuse_reserved(path)
        self.soundfonts = {k: Path(v) for k, v in fonts.items()}
        self.default = next(iter(self.soundfonts))
        self.soundfont = self.soundfonts[self.default]
        self.drum_sf2 = frozenset(drum_sf2)
        # A holder synth keeps the SoundFonts in FluidSynth's sample cache, so a fresh synth per part loads fast
        # (~50 ms). A fresh synth per part is needed for determinism: a reused synth's voice pool keeps filter
        # state from earlier notes, which changed the first ~100 samples of the next part by up to 6e-5.
        self._holder = self._new_synth(list(self.soundfonts))
        self._presets = {name: self._preset_table(self._holder, sfid) for name, sfid in self._holder.sfids.items()}
        self._write = fluidsynth._fl.fluid_synth_write_float
        self._write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._write.restype = ctypes.c_int

    def _new_synth(self, names: list[str]):  # noqa: ANN202 (a fluidsynth.Synth)
        synth = self._fluidsynth.Synth(
            gain=0.5, samplerate=float(self.samplerate),
            **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.polyphony": 256, "synth.cpu-cores": 1},
        )
        synth.sfids = {}
        for name in names:
            sfid = synth.sfload(str(self.soundfonts[name]))
            if sfid < 0:
                raise DatasetError(self.soundfonts[name], "FluidSynth could not load this SoundFont")
            synth.sfids[name] = sfid
        synth.sfid_loaded = synth.sfids[names[0]]
        return synth

    @staticmethod
    def _preset_table(synth, sfid: int) -> set[tuple[int, int]]:  # noqa: ANN001
        return {(b, p) for b in (0, 128) for p in range(128) if synth.sfpreset_name(sfid, b, p)}

    def has_preset(self, sfont: str, bank: int, program: int) -> bool:
        """Whether SoundFont ``sfont`` has the preset ``bank:program``."""
        return (bank, program) in self._presets.get(sfont, set())

    def resolve(self, part: Part) -> tuple[str, int, int, int]:
        """``(sfont, channel, bank, program)`` a part is played with: its own SoundFont when that has the preset,
        else the default bank."""
        sfont = getattr(part, "sfont", None) or self.default
        if sfont not in self.soundfonts:
            sfont = self.default
        if sfont in self.drum_sf2:
            return sfont, 0, 0, 0
        bank, program = part.bank, part.program
        if not self.has_preset(sfont, bank, program):
            if part.is_drum and self.has_preset(sfont, 128, 0):
                program = 0
            else:
                sfont = self.default
        return sfont, (9 if part.is_drum else 0), bank, program

    def close(self) -> None:
        """Free the synthesiser."""
        if self._holder is not None:
            self._holder.delete()
            self._holder = None

    def _render_into(self, synth, out: np.ndarray, start: int, stop: int) -> None:  # noqa: ANN001
        n = stop - start
        if n <= 0:
            return
        left = out[0, start:stop]
        right = out[1, start:stop]
        self._write(synth.synth, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)

    def render(self, part: Part, n_samples: int, tail_seconds: float = 0.0) -> np.ndarray:
        """Render ``part`` from silence: float32 ``(2, n_samples)`` (notes past the end are cut)."""
        sfont, chan, bank, program = self.resolve(part)
        s = self._new_synth([sfont])
        s.program_select(chan, s.sfid_loaded, bank, program)
        s.cc(chan, 7, 100)
        s.cc(chan, 10, 64)
        s.cc(chan, 91, 0)
        s.cc(chan, 93, 0)
        events: list[tuple[int, int, int, int]] = []  # (sample, order, pitch, velocity); order 0 = off first
        for note in part.notes:
            t0 = int(round(note.start * self.samplerate))
            t1 = int(round(note.end * self.samplerate))
            if t0 >= n_samples:
                continue
            events.append((t0, 1, note.pitch, note.velocity))
            events.append((max(t1, t0 + _BLOCK), 0, note.pitch, 0))
        events.sort()
        n_total = n_samples + int(tail_seconds * self.samplerate)
        n_total = -(-n_total // _BLOCK) * _BLOCK  # whole blocks: the synth's block phase stays 0 between parts
        out = np.zeros((2, n_total), dtype=np.float32)
        # Render in block-aligned steps so event timing never depends on how the buffer was chunked.
        pos = 0
        for t, order, pitch, vel in events:
            t = min((t // _BLOCK) * _BLOCK, out.shape[1])
            if t > pos:
                self._render_into(s, out, pos, t)
                pos = t
            if order == 1:
                s.noteon(chan, pitch, vel)
            else:
                s.noteoff(chan, pitch)
        self._render_into(s, out, pos, out.shape[1])
        s.delete()
        return out[:, :n_samples]


def reverb_ir(rng: np.random.Generator, rt60: float, samplerate: int = SAMPLERATE) -> np.ndarray:
    """A synthetic stereo room impulse response: decorrelated noise with an exponential decay, ``(2, n)``."""
    n = int(min(rt60, 3.0) * samplerate)
    t = np.arange(n) / samplerate
    decay = np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    ir = rng.standard_normal((2, n)) * decay
    # Darker tail: one-pole low-pass whose effect grows with time (cheap: blend with a smoothed copy).
    smooth = np.cumsum(ir, axis=1)
    smooth[:, 32:] -= smooth[:, :-32].copy()
    smooth /= 32
    w = np.clip(t / rt60, 0, 1)
    ir = (1 - w) * ir + w * smooth
    predelay = int(rng.uniform(0.005, 0.03) * samplerate)
    ir = np.concatenate([np.zeros((2, predelay)), ir], axis=1)
    return (ir / np.sqrt(np.sum(ir**2, axis=1, keepdims=True))).astype(np.float32)


def add_reverb(x: np.ndarray, ir: np.ndarray, wet: float) -> np.ndarray:
    """``x`` ``(2, n_samples)`` plus ``wet`` times its convolution with ``ir`` ``(2, n_ir)``, same length."""
    if wet <= 0:
        return x
    mono_in = x.astype(np.float32)
    y = oaconvolve(mono_in, ir, mode="full", axes=1)[:, : x.shape[1]]
    return (x + wet * y).astype(np.float32)


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power balance gains for ``pan`` in [-1, 1] (-1 left, 0 centre, 1 right)."""
    angle = (pan + 1) * np.pi / 4
    return float(np.cos(angle) * np.sqrt(2)), float(np.sin(angle) * np.sqrt(2))


def apply_pan(x: np.ndarray, pan: float) -> np.ndarray:
    """Balance a stereo ``(2, n_samples)`` signal; returns a new float32 array."""
    gl, gr = pan_gains(pan)
    return np.stack([x[0] * gl, x[1] * gr]).astype(np.float32)


def fade_edges(x: np.ndarray, samplerate: int = SAMPLERATE, fade_seconds: float = 0.05) -> np.ndarray:
    """Fade the last ``fade_seconds`` of ``(n_channels, n_samples)`` to zero, in place; returns ``x``."""
    n = min(int(fade_seconds * samplerate), x.shape[-1])
    if n:
        x[..., -n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return x
