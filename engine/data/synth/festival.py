"""A second voice engine beside espeak-ng: Festival (``apt-get install festival festvox-us-slt-hts
festvox-kallpc16k festvox-kdlpc16k``), including the HTS voice ``cmu_us_slt_arctic_hts``.

Festival speaks each word once per process: before a line is sung, the words it needs that are not cached yet are
synthesised in one ``festival -b`` run (:func:`prefetch`; a run costs ~0.3 s of start-up plus ~50 ms a word), and
kept in memory.
The speech is resampled to 22.05 kHz (soxr) so the WORLD analysis of :mod:`engine.data.synth.vocals` treats it
like espeak-ng's. Festival's synthesis is deterministic (checked: same word, same bytes).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import DatasetError

#: Festival voices by gender, as ``festival:<voice>`` names (the Scheme function is ``(voice_<voice>)``).
FEMALE_VOICES = ("festival:cmu_us_slt_arctic_hts",)
MALE_VOICES = ("festival:kal_diphone", "festival:ked_diphone")
SPEECH_RATE = 22050
_WORDS: dict[tuple[str, str], np.ndarray] = {}


def available_voices() -> tuple[str, ...]:
    """The festival voices installed here (empty when festival is not)."""
    if shutil.which("festival") is None:
        return ()
    found = []
    for voice in FEMALE_VOICES + MALE_VOICES:
        name = voice.split(":", 1)[1]
        if any(Path(d).glob(f"*/{name}") for d in ("/usr/share/festival/voices",)):
            found.append(voice)
    return tuple(found)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesise(words: list[str], voice: str) -> dict[str, np.ndarray]:
    """Speak each of ``words`` with festival ``voice`` (``festival:<name>``) in one run: mono float64 at 22.05 kHz."""
    import soxr

    name = voice.split(":", 1)[1]
    if shutil.which("festival") is None:
        raise DatasetError(None, "festival is not installed; install it with: sudo apt-get install -y "
                           "festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k")
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="shotoku-festival-") as tmp:
        lines = [f"(voice_{name})"]
        for i, word in enumerate(words):
            lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(word)})) "
                         f"{_scheme_string(str(Path(tmp) / f'{i}.wav'))} 'riff)")
        script = Path(tmp) / "words.scm"
        script.write_text("\n".join(lines) + "\n")
        try:
            proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as err:
            raise DatasetError(None, f"festival failed for voice {name!r}: {err}") from err
        for i, word in enumerate(words):
            path = Path(tmp) / f"{i}.wav"
            if not path.is_file():
                raise DatasetError(None, f"festival voice {name!r} did not speak {word!r}: "
                                   f"{proc.stderr.strip()[-200:]}")
            x, rate = sf.read(str(path), dtype="float64")
            if x.ndim > 1:
                x = x.mean(axis=1)
            if rate != SPEECH_RATE:
                x = soxr.resample(x, rate, SPEECH_RATE)
            loud = np.flatnonzero(np.abs(x) > 0.01 * max(float(np.abs(x).max()), 1e-9))
            out[word] = x[max(loud[0] - 200, 0): loud[-1] + 200] if loud.size else x
    return out


def prefetch(words: list[str], voice: str) -> None:
    """Synthesise, in one festival run, those of ``words`` that ``voice`` has not spoken yet in this process."""
    missing = sorted({w for w in words if (voice, w) not in _WORDS})
    if missing:
        for w, x in synthesise(missing, voice).items():
            _WORDS[(voice, w)] = x


def speak(word: str, voice: str) -> np.ndarray:
    """Festival's speech of ``word``: mono float64 ``(n_samples,)`` at 22.05 kHz (cached per process)."""
    prefetch([word], voice)
    return _WORDS[(voice, word)]
