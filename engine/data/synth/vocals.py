"""Sung lead vocals: words spoken by espeak-ng or Festival, forced onto the melody with the WORLD vocoder (pyworld).

For each word, the voice engine speaks it (22.05 kHz; espeak-ng voices are plain names, Festival voices are
``festival:<voice>``, see :mod:`engine.data.synth.festival`) and WORLD analyses it into a spectral envelope, aperiodicity and
a voiced/unvoiced mask. To sing a note, the unvoiced onset consonant is kept at speaking speed (placed just
before the beat), the vowel nucleus is stretched to fill the note, the coda consonant ends it, and the pitch is
replaced by the melody's contour with portamento between notes, delayed vibrato and slow pitch drift. The
envelope is extended above 11 kHz with a steep roll-off and noise-only aperiodicity (breath), and the result is
synthesised at 44.1 kHz. pyworld is imported lazily.
"""

from __future__ import annotations

import io
import subprocess
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from engine.data.synth.compose import SungNote
from engine.errors import DatasetError

FRAME_MS = 5.0
_SPEECH_RATE = 22050
_N_LOW = 513  # bins of a 1024-point FFT at 22.05 kHz == first 513 bins of a 2048-point FFT at 44.1 kHz

#: espeak-ng voices (language + variant); the variants give different formants, breathiness and gender.
MALE_VOICES = ("en-us+m1", "en-us+m3", "en-gb+m2", "en-us+m4", "en+m7", "en-gb-x-rp+m5")
FEMALE_VOICES = ("en-us+f2", "en-us+f3", "en-gb+f1", "en-us+f4", "en+f5", "en-gb-x-rp+f2")


_SPEECH_CACHE: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
#: Singer-independent word analyses of the last few voices used (float32, ~70 MB a voice at most), per process.
_BASE_CACHE: OrderedDict[str, dict[str, tuple[np.ndarray, np.ndarray, int, int]]] = OrderedDict()
_BASE_VOICES = 6


@dataclass
class _Word:
    sp: np.ndarray  # (n_frames, 1025) power envelope on the 44.1 kHz / 2048-point grid
    ap: np.ndarray  # (n_frames, 1025) aperiodicity
    v0: int  # first voiced frame
    v1: int  # last voiced frame (inclusive)


def speak(word: str, voice: str, speed: int = 125) -> np.ndarray:
    """The speech of ``word`` as mono float64 ``(n_samples,)`` at 22.05 kHz, silence trimmed: espeak-ng, or
    Festival for ``festival:<voice>`` names."""
    if voice.startswith("festival:"):
        from engine.data.synth import festival

        return festival.speak(word, voice)
    try:
        wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", word],
                             capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise DatasetError(None, f"espeak-ng failed for voice {voice!r}: {err}") from err
    x, rate = sf.read(io.BytesIO(wav), dtype="float64")
    if rate != _SPEECH_RATE:
        raise DatasetError(None, f"espeak-ng produced {rate} Hz, expected {_SPEECH_RATE}")
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[max(loud[0] - 200, 0): loud[-1] + 200] if loud.size else x


class Singer:
    """One voice: caches the WORLD analysis of each word, sings :class:`SungNote` lists at 44.1 kHz."""

    def __init__(self, voice: str, rng: np.random.Generator, samplerate: int = 44100) -> None:
        import pyworld

        self.pw = pyworld
        self.voice = voice
        self.samplerate = samplerate
        self.vibrato_rate = float(rng.uniform(4.8, 6.4))
        self.vibrato_depth = float(rng.uniform(0.2, 0.45))  # semitones, peak
        self.breath = float(rng.uniform(0.0, 0.3))
        self.formant_shift = float(rng.uniform(0.93, 1.07))  # vocal-tract length: warps the envelope in frequency
        self.tilt_hz = float(rng.uniform(2500.0, 6000.0))  # above this, the envelope falls ~6 dB/octave (darker)
        self.breaths = float(rng.uniform(0.3, 0.9))  # probability of an audible in-breath before a phrase
        self.detune = 0.0  # semitones added to the whole line (a double sings a few cents off the lead)
        self._cache: dict[str, _Word] = {}

    def _analyse(self, word: str) -> _Word:
        if word in self._cache:
            return self._cache[word]
        words = _BASE_CACHE.setdefault(self.voice, {})
        _BASE_CACHE.move_to_end(self.voice)
        while len(_BASE_CACHE) > _BASE_VOICES:
            _BASE_CACHE.popitem(last=False)
        if word not in words:
            words[word] = self._base(word)
        log_sp, ap_base, v0, v1 = words[word]
        n = log_sp.shape[0]
        freqs = np.arange(1025) * self.samplerate / 2048
        # Singer identity beyond the engine's voices: formant shift (frequency warp) and spectral tilt.
        src = np.clip(np.arange(1025) / self.formant_shift, 0, 1024)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, 1024)
        fr = src - lo
        sp44 = np.exp((1 - fr) * log_sp[:, lo] + fr * log_sp[:, hi])
        sp44 /= 1.0 + (freqs / self.tilt_hz) ** 2
        ap44 = ap_base.astype(np.float64)
        # A sung vowel is clearly periodic: cap the aperiodicity of voiced frames below ~4 kHz.
        cap = np.clip(0.05 + (freqs - 4000.0) / 8000.0, 0.05, 1.0)
        vmask = np.zeros(n, bool)
        vmask[v0: v1 + 1] = True
        ap44[vmask] = np.minimum(ap44[vmask], cap[None, :])
        w = _Word(sp=sp44, ap=ap44, v0=v0, v1=v1)
        self._cache[word] = w
        return w

    def _base(self, word: str) -> tuple[np.ndarray, np.ndarray, int, int]:
        """The singer-independent part of a word's analysis (cached per process): log power envelope and
        aperiodicity on the 44.1 kHz / 2048-point grid, first and last voiced frame."""
        key = (self.voice, word)
        if key not in _SPEECH_CACHE:  # per process: speech + WORLD analysis is the slow part (~35 ms a word)
            pw = self.pw
            x = speak(word, self.voice)
            f0, t = pw.dio(x, _SPEECH_RATE, frame_period=FRAME_MS, f0_floor=60.0, f0_ceil=500.0)
            f0 = pw.stonemask(x, f0, t, _SPEECH_RATE)
            sp = pw.cheaptrick(x, f0, t, _SPEECH_RATE, fft_size=1024)
            ap = pw.d4c(x, f0, t, _SPEECH_RATE, threshold=0.0, fft_size=1024)  # 0: voiced frames stay periodic
            _SPEECH_CACHE[key] = (f0, sp, ap)
        f0, sp, ap = _SPEECH_CACHE[key]
        voiced = np.flatnonzero(f0 > 0)
        if voiced.size == 0:  # whispered or failed: treat the loudest half as the vowel
            energy = sp.sum(axis=1)
            voiced = np.flatnonzero(energy > np.median(energy))
        v0, v1 = int(voiced[0]), int(voiced[-1])
        # Equal loudness across words: normalise by the mean power of the voiced frames.
        sp = sp / max(float(sp[v0: v1 + 1].sum(axis=1).mean()), 1e-12)
        n = sp.shape[0]
        freqs = np.arange(1025) * self.samplerate / 2048
        ref = sp[:, 440:_N_LOW].mean(axis=1, keepdims=True)
        roll = (freqs[_N_LOW:] / freqs[_N_LOW - 1]) ** -4.0
        sp44 = np.empty((n, 1025))
        sp44[:, :_N_LOW] = sp
        sp44[:, _N_LOW:] = ref * roll[None, :]
        ap44 = np.empty((n, 1025))
        ap44[:, :_N_LOW] = ap
        ap44[:, _N_LOW:] = 0.999
        return np.log(sp44 + 1e-16).astype(np.float32), ap44.astype(np.float32), v0, v1

    def _syllable_frames(self, w: _Word, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Stretch one word to ``n_frames`` frames from its vowel start: (sp, ap, voiced mask, n_onset)."""
        onset = np.arange(0, w.v0)
        coda = np.arange(w.v1 + 1, w.sp.shape[0])[: max(n_frames // 4, 1)]
        n_voiced = max(n_frames - coda.size, 2)
        vo = np.arange(w.v0, w.v1 + 1)
        a = max(int(0.3 * vo.size), 1)
        r = max(int(0.2 * vo.size), 1)
        if n_voiced > a + r + 1 and vo.size > a + r:
            mid = vo[a: vo.size - r]
            pos = np.linspace(0, mid.size - 1, n_voiced - a - r)
            idx = np.concatenate([vo[:a], mid[0] + pos, vo[vo.size - r:]])
        else:
            idx = np.linspace(vo[0], vo[-1], n_voiced)
        lo = np.floor(idx).astype(int)
        hi = np.minimum(lo + 1, w.sp.shape[0] - 1)
        frac = (idx - lo)[:, None]
        sp_v = np.exp((1 - frac) * np.log(w.sp[lo] + 1e-16) + frac * np.log(w.sp[hi] + 1e-16))
        ap_v = (1 - frac) * w.ap[lo] + frac * w.ap[hi]
        sp = np.concatenate([w.sp[onset], sp_v, w.sp[coda]])
        ap = np.concatenate([w.ap[onset], ap_v, w.ap[coda]])
        voiced = np.concatenate([np.zeros(onset.size, bool), np.ones(n_voiced, bool), np.zeros(coda.size, bool)])
        return sp, ap, voiced, onset.size

    def sing(self, notes: list[SungNote], n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """The sung line, mono float32 ``(n_samples,)`` at ``self.samplerate``, peak about 0.5."""
        if self.voice.startswith("festival:"):  # one festival run for the line's new words
            from engine.data.synth import festival

            festival.prefetch([n.word for n in notes], self.voice)
        out = np.zeros(n_samples, dtype=np.float64)
        for phrase in _phrases(notes):
            self._sing_phrase(phrase, out, rng)
        peak = float(np.abs(out).max())
        return (out * (0.5 / peak) if peak > 0 else out).astype(np.float32)

    def _sing_phrase(self, notes: list[SungNote], out: np.ndarray, rng: np.random.Generator) -> None:
        fp = FRAME_MS / 1000.0
        t_start = max(notes[0].start - 0.5, 0.0)
        f_start = int(t_start / fp)
        n_frames = int((notes[-1].end + 0.3) / fp) - f_start + 1
        sp = np.full((n_frames, 1025), 1e-12)
        ap = np.ones((n_frames, 1025))
        voiced = np.zeros(n_frames, bool)
        pitch = np.zeros(n_frames)  # MIDI pitch target per frame (0 where no note)
        # Group slurred notes under their word: one syllable spans the group.
        groups: list[list[SungNote]] = []
        for note in notes:
            if note.slur and groups:
                groups[-1].append(note)
            else:
                groups.append([note])
        prev_pitch: float | None = None
        for group in groups:
            f0i = int(group[0].start / fp) - f_start
            f1i = min(int(group[-1].end / fp) - f_start, n_frames - 1)
            s_sp, s_ap, s_v, n_on = self._syllable_frames(self._analyse(group[0].word), max(f1i - f0i, 4))
            a = max(f0i - n_on, 0)
            b = min(a + s_sp.shape[0], n_frames)
            # Dynamics: a short attack and release on the syllable, louder on longer notes.
            n = b - a
            env = np.ones(n)
            k = min(6, n // 3)
            if k:
                env[n_on: n_on + k] = np.linspace(0.3, 1.0, k)[: max(n - n_on, 0)]
                env[-k:] *= np.linspace(1.0, 0.4, k)
            sp[a:b] = s_sp[:n] * (env**2)[:, None]
            ap[a:b] = s_ap[:n]
            voiced[a:b] = s_v[:n]
            for note in group:
                i0 = int(note.start / fp) - f_start
                i1 = min(int(note.end / fp) - f_start + 1, n_frames)
                pitch[max(i0 - n_on, 0) if note is group[0] else i0: i1] = note.pitch
            # Portamento into the syllable from the previous pitch (cosine glide, 40-120 ms).
            for j, note in enumerate(group):
                src = prev_pitch if j == 0 else group[j - 1].pitch
                if src is not None and src != note.pitch:
                    i0 = int(note.start / fp) - f_start
                    g = int(rng.uniform(8, 24)) if j == 0 else int(rng.uniform(10, 20))
                    g = min(g, max((int(note.end / fp) - int(note.start / fp)) // 2, 1))
                    w = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, g))
                    seg = slice(max(i0 - g // 3, 0), min(max(i0 - g // 3, 0) + g, n_frames))
                    m = seg.stop - seg.start
                    pitch[seg] = src + (note.pitch - src) * w[:m]
                prev_pitch = note.pitch
        # Phrase ornaments: a scoop up into the first note, sometimes a fall-off after the last one.
        i0 = int(notes[0].start / fp) - f_start
        if rng.random() < 0.5:
            g = int(rng.uniform(12, 24))
            seg = slice(max(i0 - 4, 0), max(i0 - 4, 0) + g)
            ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, g))[: seg.stop - seg.start]
            pitch[seg] = np.where(pitch[seg] > 0, pitch[seg] - rng.uniform(0.7, 2.0) * (1 - ramp), 0)
        i1 = min(int(notes[-1].end / fp) - f_start, n_frames)
        if rng.random() < 0.3 and i1 > i0 + 30:
            g = int(rng.uniform(10, 20))
            pitch[i1 - g: i1] -= rng.uniform(1.0, 3.0) * np.linspace(0, 1, g) ** 2
        # Fill small pitch holes inside voiced frames (a coda of one note running into the next onset).
        filled = np.maximum.accumulate(np.where(pitch > 0, np.arange(n_frames), 0))
        pitch = np.where(pitch > 0, pitch, pitch[filled])
        # Vibrato: delayed onset within each note, depth ramping in over ~300 ms.
        t = np.arange(n_frames) * fp
        depth = np.zeros(n_frames)
        for note in notes:
            i0 = int(note.start / fp) - f_start + 40
            i1 = min(int(note.end / fp) - f_start, n_frames)
            if i1 > i0:
                depth[i0:i1] = self.vibrato_depth * np.minimum(np.arange(i1 - i0) / 60.0, 1.0)
        phase = rng.uniform(0, 2 * np.pi)
        drift = np.cumsum(rng.normal(0, 0.02, n_frames))
        drift = 0.08 * (drift - np.convolve(drift, np.ones(41) / 41, mode="same"))
        wobble = np.sin(2 * np.pi * self.vibrato_rate * t + phase)
        contour = pitch + depth * wobble + drift + self.detune
        # Loudness follows the vibrato a little (as real vibrato does), plus a phrase arc: swell, then fall away.
        arc = np.interp(t, [0, 0.3 * t[-1], 0.75 * t[-1], t[-1]], [0.85, 1.0, 1.0, 0.75])
        sp = sp * ((1.0 + 0.25 * depth * wobble) * arc)[:, None] ** 2
        # An in-breath just before the phrase: noise through the first word's average vowel envelope.
        b1 = int((notes[0].start - t_start) / fp) - 24
        if b1 > 30 and rng.random() < self.breaths:
            w = self._analyse(groups[0][0].word)
            shape = w.sp[w.v0: w.v1 + 1].mean(axis=0) * 10 ** (-2.8 + 0.4 * rng.random())
            nb = min(int(rng.uniform(40, 70)), b1)
            env = np.sin(np.linspace(0, np.pi, nb)) ** 2
            sp[b1 - nb: b1] = np.maximum(sp[b1 - nb: b1], shape[None, :] * env[:, None])
            ap[b1 - nb: b1] = 1.0
            voiced[b1 - nb: b1] = False
        f0 = np.where(voiced & (pitch > 0), 440.0 * 2.0 ** ((contour - 69.0) / 12.0), 0.0)
        if self.breath > 0:
            ap = np.where(voiced[:, None], np.maximum(ap, self.breath * np.linspace(0, 1, 1025)[None, :]), ap)
        y = self.pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                               self.samplerate, FRAME_MS)
        s0 = int(round(t_start * self.samplerate))
        m = min(y.size, out.size - s0)
        if m > 0:
            out[s0: s0 + m] += y[:m]


def _phrases(notes: list[SungNote], gap: float = 0.35) -> list[list[SungNote]]:
    """Split a note list into phrases separated by rests longer than ``gap`` seconds."""
    phrases: list[list[SungNote]] = []
    for note in sorted(notes, key=lambda n: n.start):
        if phrases and note.start - phrases[-1][-1].end < gap:
            phrases[-1].append(note)
        else:
            phrases.append([note])
    return phrases


def choose_voice(rng: np.random.Generator, female: bool, festival_voices: tuple[str, ...] = (),
                 p_festival: float = 0.4) -> str:
    """A voice name of the requested gender: espeak-ng's, or (with probability ``p_festival``, when some are
    given) one of ``festival_voices`` of that gender."""
    from engine.data.synth import festival

    fest = [v for v in festival_voices if v in (festival.FEMALE_VOICES if female else festival.MALE_VOICES)]
    if fest:  # one draw decides the engine, one the voice (same number of draws either way)
        use_festival = rng.random() < p_festival
        pick = rng.random()
        pool = fest if use_festival else list(FEMALE_VOICES if female else MALE_VOICES)
        return str(pool[min(int(pick * len(pool)), len(pool) - 1)])
    pool = FEMALE_VOICES if female else MALE_VOICES
    return str(pool[int(rng.integers(0, len(pool)))])
