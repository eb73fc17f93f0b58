"""Which sounds a song is played with: General MIDI banks per part, and a drum source per song.

The generator always has FluidR3_GM. With a fetched real-audio folder (``shotoku dataset fetch``) it also has
csound's GM bank and the OPL3 FM bank (chosen per part), AVL's recorded drum kits as SoundFonts and Hydrogen's
recorded multi-velocity kits (chosen per song, acoustic kits for acoustic grooves, electronic kits for
electronic ones). Festival's voices join espeak-ng's when festival is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.real.sources import refuse_reserved
from engine.data.synth.compose import Song
from engine.data.synth.drumkit import ELECTRONIC_STYLES

#: Relative weight of each GM bank for a part (renormalised over the banks present).
BANK_WEIGHTS = {"fluidr3": 0.6, "sf_GMbank": 0.28, "OPL-3_FM_128M": 0.12}
#: Probability of each drum source for a song (renormalised over those present; "gm" is a GM bank's kit).
DRUM_WEIGHTS = {"hydrogen": 0.45, "avl": 0.15, "gm": 0.4}


@dataclass
class Timbres:
    """The sounds one generator process may use (paths only; the worker loads them)."""

    soundfonts: dict[str, Path]  # GM banks, the default (FluidR3 or --soundfont) first
    drum_sf2: dict[str, Path] = field(default_factory=dict)
    kits: dict[str, Path] = field(default_factory=dict)  # Hydrogen kit name -> folder
    kit_roles: dict[str, str] = field(default_factory=dict)
    festival_voices: tuple[str, ...] = ()
    licences: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """For the manifest: names and licences of everything this corpus could draw from."""
        return {"gm_banks": list(self.soundfonts), "drum_sf2": list(self.drum_sf2), "drumkits": list(self.kits),
                "festival_voices": list(self.festival_voices), "licences": self.licences}


def discover(soundfont: Path, real_dir: Path | None, festival_voices: tuple[str, ...] = ()) -> Timbres:
    """The timbres available: ``soundfont`` (the default bank) plus those listed in ``real_dir``'s manifest."""
    refuse_reserved(soundfont)
    t = Timbres({"fluidr3" if soundfont.name == "FluidR3_GM.sf2" else soundfont.stem: soundfont},
                festival_voices=tuple(festival_voices))
    t.licences[next(iter(t.soundfonts))] = "MIT (FluidR3_GM, Frank Wen)" if soundfont.name == "FluidR3_GM.sf2" \
        else "as given by --soundfont"
    if real_dir is None:
        return t
    from engine.data.real.fetch import load_manifest

    for sound in load_manifest(real_dir)["sounds"]:
        path = Path(real_dir) / sound["file"]
        refuse_reserved(path)
        if not path.exists():
            continue
        if sound["kind"] == "gm_bank" and sound["name"] in BANK_WEIGHTS:
            t.soundfonts[sound["name"]] = path
        elif sound["kind"] == "drum_sf2":
            t.drum_sf2[sound["name"]] = path
        elif sound["kind"] == "drumkit" and sound["role"] in ("acoustic", "electronic"):
            t.kits[sound["name"]] = path.parent
            t.kit_roles[sound["name"]] = sound["role"]
        else:
            continue
        t.licences[sound["name"]] = f"{sound['licence']} (Debian {sound['package']})"
    return t


def assign(song: Song, timbres: Timbres, rng: np.random.Generator) -> dict:
    """Set each part's ``sfont`` (and the drum part's ``kit``) in place; returns what was chosen.

    The number of draws does not depend on what is available, so adding a bank changes which sound is picked
    but not the rest of the song.
    """
    banks = {k: w for k, w in BANK_WEIGHTS.items() if k in timbres.soundfonts}
    default = next(iter(timbres.soundfonts))
    if not banks:
        banks = {default: 1.0}
    chosen: dict = {"parts": {}}
    electronic = song.drum_style in ELECTRONIC_STYLES
    kits = sorted(k for k, role in timbres.kit_roles.items() if (role == "electronic") == electronic)
    avl = sorted(timbres.drum_sf2) if not electronic else []
    drum_weights = {"gm": DRUM_WEIGHTS["gm"]}
    if kits:
        drum_weights["hydrogen"] = DRUM_WEIGHTS["hydrogen"]
    if avl:
        drum_weights["avl"] = DRUM_WEIGHTS["avl"]
    for part in song.parts:
        u_bank, u_src, u_pick = rng.random(3)
        names = sorted(banks)
        cum = np.cumsum([banks[n] for n in names]) / sum(banks.values())
        bank = names[min(int(np.searchsorted(cum, u_bank, side="right")), len(names) - 1)]
        part.sfont = bank
        if part.is_drum:
            srcs = sorted(drum_weights)
            cum_d = np.cumsum([drum_weights[n] for n in srcs]) / sum(drum_weights.values())
            src = srcs[min(int(np.searchsorted(cum_d, u_src, side="right")), len(srcs) - 1)]
            if src == "hydrogen":
                part.kit = kits[min(int(u_pick * len(kits)), len(kits) - 1)]
                part.sfont = None
            elif src == "avl":
                part.sfont = avl[min(int(u_pick * len(avl)), len(avl) - 1)]
            chosen["drums"] = {"source": src, "kit": part.kit, "sfont": part.sfont, "program": part.program}
        else:
            chosen["parts"][part.name] = bank
    return chosen
