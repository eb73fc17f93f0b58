"""Tempo and pitch through Rubber Band: the streaming stretcher of live playback and the offline one of export.

Rubber Band is reached through ``pylibrb`` (nanobind bindings of the library's ``RubberBandStretcher``), because
it exposes the real-time mode: the time ratio and the pitch scale can change between two calls while the stream
goes on, which a live tempo/pitch control needs. ``pedalboard.time_stretch`` is the same library but only offline
(a whole buffer per call: cutting a stream into calls restarts the stretcher at every cut) and its streaming
``PitchShift`` plugin changes pitch only. Nothing here is a hand-written phase vocoder.

Live playback uses the R2 ("faster") engine: measured on the 2-core reference machine (``stretch`` figures in
``bench/realtime.py``), its latency is 1024 frames at 44.1 kHz (23 ms) against R3's 2048, at 28-54x real time
against 10-23x, which keeps a tempo change inside the 100 ms budget with room for the output blocks. Export uses
R3 ("finer") offline, the library's best quality.

Conventions: audio ``(n_channels, n_samples)`` float32; ``tempo`` is the playback speed as a ratio (1.0: as
recorded, 0.5: half speed, 1.5: 150 %), ``semitones`` the transposition.
"""

from __future__ import annotations

import math

import numpy as np

#: The tempo range of the controls, as ratios (50 % to 150 %).
TEMPO_RANGE = (0.5, 1.5)
#: The transposition range of the controls, in semitones.
SEMITONE_RANGE = (-12, 12)


def check_tempo(tempo: float) -> float:
    """``tempo`` as a float, or ValueError outside :data:`TEMPO_RANGE`."""
    tempo = float(tempo)
    low, high = TEMPO_RANGE
    if not (low - 1e-9 <= tempo <= high + 1e-9) or math.isnan(tempo):
        raise ValueError(f"tempo must be between {low:.0%} and {high:.0%}, not {tempo:.0%}")
    return min(high, max(low, tempo))


def check_semitones(semitones: float) -> float:
    """``semitones`` as a float, or ValueError outside :data:`SEMITONE_RANGE`."""
    semitones = float(semitones)
    low, high = SEMITONE_RANGE
    if not (low <= semitones <= high) or math.isnan(semitones):
        raise ValueError(f"transpose must be between {low} and +{high} semitones, not {semitones:g}")
    return semitones


def is_neutral(tempo: float, semitones: float) -> bool:
    """True when nothing needs stretching (100 % and no transposition)."""
    return abs(tempo - 1.0) < 1e-6 and abs(semitones) < 1e-6


def pitch_scale(semitones: float) -> float:
    """The frequency ratio of a transposition by ``semitones`` (equal temperament)."""
    return float(2.0 ** (semitones / 12.0))


def _library():
    try:
        import pylibrb
    except ImportError as err:  # a broken install: say what is missing
        raise RuntimeError(f"tempo and pitch need the Rubber Band binding pylibrb ({err}); pip install pylibrb") from err
    return pylibrb


class RealtimeStretcher:
    """A streaming Rubber Band stretcher (real-time mode, R2 engine) for ``n_channels`` at ``samplerate``.

    Feed it song-time audio with :meth:`process`; :meth:`retrieve` returns what is ready. The start is primed as
    the library asks (``get_preferred_start_pad`` zeros in, ``get_start_delay`` frames out dropped), so the first
    retrieved frame is the first frame fed. ``tempo``/``semitones`` may change between calls.
    """

    def __init__(self, samplerate: int, n_channels: int = 2, max_process: int = 1024) -> None:
        lib = _library()
        option = lib.Option
        options = option.PROCESS_REALTIME | option.ENGINE_FASTER | option.PitchHighConsistency
        self.samplerate = int(samplerate)
        self.n_channels = int(n_channels)
        self._rb = lib.RubberBandStretcher(sample_rate=self.samplerate, channels=self.n_channels, options=options,
                                           initial_time_ratio=1.0, initial_pitch_scale=1.0)
        self._rb.set_max_process_size(int(max_process))
        self.tempo = 1.0
        self.semitones = 0.0
        self._to_drop = 0
        self.reset()

    def set(self, tempo: float, semitones: float) -> None:
        """Play at ``tempo`` (ratio) transposed by ``semitones`` from the next frames processed."""
        if tempo != self.tempo:
            self._rb.time_ratio = 1.0 / float(tempo)
            self.tempo = float(tempo)
        if semitones != self.semitones:
            self._rb.pitch_scale = pitch_scale(semitones)
            self.semitones = float(semitones)

    def reset(self) -> None:
        """Forget the stream (keeps tempo and pitch) and prime the start again."""
        self._rb.reset()
        pad = int(self._rb.get_preferred_start_pad())
        if pad > 0:
            self._rb.process(np.zeros((self.n_channels, pad), dtype=np.float32))
        self._to_drop = int(self._rb.get_start_delay())

    @property
    def latency(self) -> int:
        """Frames (output rate) between a frame fed and the same frame retrieved."""
        return int(self._rb.get_start_delay())

    def process(self, block: np.ndarray) -> None:
        """Feed ``block`` ``(n_channels, n)`` float32 (C-contiguous; n at most ``max_process``)."""
        self._rb.process(block)

    def retrieve(self) -> np.ndarray | None:
        """The frames ready, ``(n_channels, m)`` float32, or None (the primed start is dropped here)."""
        if self._rb.available() <= 0:
            return None
        out = self._rb.retrieve_available()
        if self._to_drop:
            drop = min(self._to_drop, out.shape[1])
            self._to_drop -= drop
            out = out[:, drop:]
        return out if out.shape[1] else None


def stretch_offline(samples: np.ndarray, samplerate: int, tempo: float, semitones: float) -> np.ndarray:
    """``samples`` ``(n_channels, n)`` played at ``tempo`` and transposed by ``semitones``: ``(n_channels,
    round(n / tempo))`` float32, through Rubber Band's offline R3 engine (a study pass, then processing), so the
    stems of one export, stretched one by one, keep the same length and stay sample-synchronous."""
    tempo, semitones = check_tempo(tempo), check_semitones(semitones)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if is_neutral(tempo, semitones):
        return samples.copy()
    lib = _library()
    option = lib.Option
    n_channels, n = samples.shape
    rb = lib.RubberBandStretcher(sample_rate=int(samplerate), channels=n_channels,
                                 options=option.PROCESS_OFFLINE | option.ENGINE_FINER,
                                 initial_time_ratio=1.0 / tempo, initial_pitch_scale=pitch_scale(semitones))
    rb.set_expected_input_duration(n)
    step = 1 << 14
    rb.set_max_process_size(step)
    for start in range(0, n, step):
        rb.study(samples[:, start:start + step], final=start + step >= n)
    parts = []
    for start in range(0, n, step):
        rb.process(samples[:, start:start + step], final=start + step >= n)
        while rb.available() > 0:
            parts.append(rb.retrieve_available())
    while not rb.is_done():
        if rb.available() > 0:
            parts.append(rb.retrieve_available())
        else:
            break
    out = np.concatenate(parts, axis=1) if parts else np.zeros((n_channels, 0), dtype=np.float32)
    length = int(round(n / tempo))
    if out.shape[1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[1])))
    return np.ascontiguousarray(out[:, :length], dtype=np.float32)


def stretch_stems(stems: dict[str, np.ndarray], samplerate: int, tempo: float, semitones: float
                  ) -> dict[str, np.ndarray]:
    """Every stem ``(n_channels, n)`` through :func:`stretch_offline` (the export's tempo and pitch)."""
    return {name: stretch_offline(audio, samplerate, tempo, semitones) for name, audio in stems.items()}
