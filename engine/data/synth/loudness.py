"""Loudness of stems and mixes (ITU-R BS.1770 via pyloudnorm) and the distributions the generator draws from.

Mixture loudness: MUSDB18-HQ's mixtures measure -15.954 +- 1.264 LUFS (mean +- std), musdb-L (a limiter-mastered
version at commercial loudness) -10.887 +- 1.191 and musdb-XL -8.608 +- 1.165: Jeon & Lee, "Towards robust music
source separation on loud commercial music", ISMIR 2022, figures as published in their LimitAug code
(``limitaug.py``, ``limitaug_mode_statistics``). A song's master is drawn from one of the three (weights
:data:`MASTER_WEIGHTS`), so the corpus spans unmastered multitracks and loud commercial masters.

Stem loudness relative to the mix: we found no published table of MUSDB18's per-stem LUFS with the search tools
at hand, so :data:`STEM_RELATIVE_LU` holds ASSUMED figures (vocals usually the loudest stem, bass the quietest
by LUFS because K-weighting discounts low frequencies), not measured ones. ``scripts/musdb_loudness.py`` measures
the real figures from a local MUSDB18-HQ copy and writes a JSON file that ``shotoku dataset synth
--loudness-stats FILE`` uses instead; the manifest records which figures a corpus was made with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.errors import DatasetError

#: (mean, std) LUFS of mixtures: MUSDB18-HQ, musdb-L, musdb-XL (Jeon & Lee 2022, see the module docstring).
MIX_LUFS = {"musdb18hq": (-15.954, 1.264), "musdb_l": (-10.887, 1.191), "musdb_xl": (-8.608, 1.165)}
MASTER_WEIGHTS = {"musdb18hq": 0.5, "musdb_l": 0.3, "musdb_xl": 0.2}
#: (mean, std) of each stem's integrated loudness minus the mixture's, LU. ASSUMED, see the module docstring.
STEM_RELATIVE_LU = {"vocals": (-3.0, 2.0), "drums": (-6.0, 2.5), "bass": (-8.0, 2.5), "other": (-5.0, 2.5)}
#: (mean, std) of vocals minus accompaniment, LU, for songs over a real recording. ASSUMED (from the above).
VOCALS_OVER_ACCOMPANIMENT_LU = (0.0, 2.5)
SILENT_LUFS = -70.0


def lufs(x: np.ndarray, samplerate: int = 44100) -> float:
    """Integrated loudness of ``(n_channels, n_samples)`` in LUFS (:data:`SILENT_LUFS` for silence)."""
    import pyloudnorm

    if x.shape[-1] < int(0.4 * samplerate):
        return SILENT_LUFS
    value = pyloudnorm.Meter(samplerate).integrated_loudness(np.asarray(x, dtype=np.float64).T)
    return float(value) if np.isfinite(value) and value > SILENT_LUFS else SILENT_LUFS


def gain_to(x: np.ndarray, target_lufs: float, samplerate: int = 44100) -> float:
    """The linear gain that brings ``x`` to ``target_lufs`` (1.0 for silence)."""
    current = lufs(x, samplerate)
    return 1.0 if current <= SILENT_LUFS else float(10 ** ((target_lufs - current) / 20))


class LoudnessStats:
    """The distributions a corpus draws loudness from: defaults above, or a measured JSON file.

    The JSON file has ``{"mix_lufs": {name: [mean, std]}, "stem_relative_lu": {stem: [mean, std]},
    "source": "..."}`` (any key may be left out; missing ones keep the defaults).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.mix = dict(MIX_LUFS)
        self.weights = dict(MASTER_WEIGHTS)
        self.stems = dict(STEM_RELATIVE_LU)
        self.source = ("mix: Jeon & Lee, ISMIR 2022 (LimitAug); stems relative to mix: assumed "
                       "(engine/data/synth/loudness.py)")
        if path is not None:
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError) as err:
                raise DatasetError(path, f"unreadable loudness statistics ({err})") from err
            self.mix |= {k: tuple(v) for k, v in data.get("mix_lufs", {}).items()}
            self.weights = {k: self.weights.get(k, 1.0 / len(self.mix)) for k in self.mix}
            self.stems |= {k: tuple(v) for k, v in data.get("stem_relative_lu", {}).items()}
            self.source = str(data.get("source", path))

    def draw_master(self, rng: np.random.Generator) -> tuple[str, float]:
        """``(style, target mixture LUFS)``."""
        names = sorted(self.mix)
        p = np.array([self.weights[n] for n in names], dtype=np.float64)
        name = names[int(rng.choice(len(names), p=p / p.sum()))]
        mean, std = self.mix[name]
        return name, float(np.clip(rng.normal(mean, std), mean - 2.5 * std, mean + 2.5 * std))

    def draw_stem(self, stem: str, rng: np.random.Generator) -> float:
        """A stem's loudness relative to the mix, LU (clipped to +-2.5 std)."""
        mean, std = self.stems.get(stem, (-6.0, 2.5))
        return float(np.clip(rng.normal(mean, std), mean - 2.5 * std, mean + 2.5 * std))

    def to_json(self) -> dict:
        """What the manifest records."""
        return {"mix_lufs": self.mix, "master_weights": self.weights, "stem_relative_lu": self.stems,
                "source": self.source}
