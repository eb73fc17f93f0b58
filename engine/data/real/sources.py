"""The Debian packages the corpus takes real sound from, their licences, what is left out, and what is reserved.

Every licence below was read from the package's ``/usr/share/doc/<package>/copyright`` (Debian 12); the fetch
command also copies that file next to the manifest, so each source's licence travels with the data.

Reserved for an independent check, never fetched, read or used by anything here: ``asc-music``,
``warzone2100-music``, ``musescore-general-soundfont*`` and ``timgm6mb-soundfont``. :func:`refuse_reserved` is
called on every package name and every SoundFont path the data code is given.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import DatasetError

#: Packages (and package-name prefixes, ending in ``*``) kept for an independent check: refused everywhere.
RESERVED_PACKAGES = ("asc-music", "warzone2100-music", "musescore-general-soundfont*", "timgm6mb-soundfont")
#: File names those packages install (a SoundFont passed by path is refused by name too).
RESERVED_FILES = ("MuseScore_General*", "TimGM6mb*", "timgm6mb*", "musescore_general*")
#: Folder names below which the reserved packages install their files.
RESERVED_DIRS = ("asc", "warzone2100", "musescore")

#: Pieces shorter than this are game stingers (victory/defeat jingles): left out of every split.
MIN_PIECE_SECONDS = 20.0


def refuse_reserved(name: str | Path) -> None:
    """Raise :class:`DatasetError` if ``name`` (a package name, a file name or a path) belongs to a reserved source."""
    text = str(name)
    path = Path(text)
    for pattern in RESERVED_PACKAGES:
        if fnmatch.fnmatch(text, pattern) or any(fnmatch.fnmatch(p, pattern) for p in path.parts):
            raise DatasetError(path if len(path.parts) > 1 else None,
                               f"{text!r} is reserved for an independent check and is never used for training data")
    for pattern in RESERVED_FILES:
        if fnmatch.fnmatch(path.name, pattern):
            raise DatasetError(path, "this SoundFont is reserved for an independent check and is never used here")
    parts = {p.lower() for p in path.parts[:-1]}
    if parts & set(RESERVED_DIRS) and path.suffix.lower() in (".ogg", ".sf2", ".sf3", ".flac", ".wav", ".mp3"):
        raise DatasetError(path, "this file lies in a folder of a package reserved for an independent check")


@dataclass(frozen=True)
class Source:
    """One Debian package and what the corpus takes from it.

    ``kind``: ``"music"`` (produced instrumental recordings), ``"gm_bank"`` (a General MIDI SoundFont),
    ``"drum_sf2"`` (a recorded drum kit as a SoundFont), ``"drumkits"`` (Hydrogen kits) or ``"voice"`` (festival).
    ``files``: glob patterns relative to the unpacked package (or to ``archive``, a zip inside it).
    ``licence``: the licence of those files; ``licences`` overrides it per file-name pattern.
    """

    package: str
    kind: str
    licence: str
    files: tuple[str, ...] = ()
    archive: str | None = None
    licences: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def licence_of(self, name: str) -> str:
        """The licence of the file called ``name`` (a base name)."""
        for pattern, licence in self.licences.items():
            if fnmatch.fnmatch(name, pattern):
                return licence
        return self.licence


MUSIC_SOURCES: tuple[Source, ...] = (
    Source("wesnoth-1.16-music", "music", "GPL-2+ (Battle for Wesnoth; composers in each file's tags)",
           files=("usr/share/games/wesnoth/*/data/core/music/*.ogg",),
           note="orchestral and folk game score, 41 OGG tracks"),
    Source("nexuiz-music", "music", "GPL-2+ (Nexuiz, Alientrap; composers in each file's tags)",
           files=("sound/cdtracks/*.ogg",), archive="usr/share/games/nexuiz/data/music.pk3",
           note="electronic, industrial and rock game music with drums and bass, 19 OGG tracks"),
    Source("hyperrogue-music", "music", "CC-BY-SA-3.0",
           files=("usr/share/hyperrogue/music/*.ogg",),
           licences={"hr3-*": "CC-BY-SA-3.0 (Shawn Parrotte)", "hr-domina-*": "CC-BY-SA-3.0 (Lincoln Domina)",
                     "hr-savino-*": "CC-BY-SA-3.0 (Will Savino)"},
           note="ambient and orchestral game music, 17 OGG tracks"),
    Source("drascula-music", "music",
           "Drascula-License (Alcachofa Soft: free redistribution and modification, no fee for the game itself)",
           files=("usr/share/scummvm/drascula/audio/*.ogg",),
           note="adventure-game score (orchestral, jazz, pop instrumentals), 31 OGG tracks"),
)

SOUND_SOURCES: tuple[Source, ...] = (
    Source("csound-soundfont", "gm_bank", "public-domain (sf_GMbank.sf2: 'Public Domain in its license field')",
           files=("usr/share/sounds/sf2/sf_GMbank.sf2",), note="a small General MIDI bank, other samples than FluidR3"),
    Source("opl3-soundfont", "gm_bank", "CC-BY-SA-4.0 (Zandro Reveille)",
           files=("usr/share/sounds/sf2/OPL-3_FM_128M.sf2",), note="General MIDI bank of OPL3 FM-synthesis sounds"),
    Source("avldrums.lv2-soundfont", "drum_sf2", "CC-BY-SA-3.0 (Glen MacArthur, AVL drumkits)",
           files=("usr/share/sounds/sf2/*.sf2",), note="two multi-velocity recorded acoustic kits"),
    Source("hydrogen-drumkits", "drumkits", "GPL-2+ (kit licences in each drumkit.xml and the copyright file)",
           files=("usr/share/hydrogen/data/drumkits/*/drumkit.xml",),
           licences={"Audiophob": "CC0-1.0", "BJA_Pacific": "CC-BY-SA-3.0-US", "circAfrique v4": "CC-BY-SA-3.0",
                     "rumpf_kit_z01_h2": "CC-BY-3.0", "Millo*": "GPL-2", "ColomboAcousticDrumkit":
                     "GPL-2+ with composition exception", "ForzeeStereo": "GPL-2",
                     "*": "GPL-2+"},
           note="14 Hydrogen kits: drumkit.xml maps instruments to multi-velocity FLAC/WAV samples"),
)

#: The system GM bank the generator always has (``apt-get install fluid-soundfont-gm``).
FLUIDR3 = Source("fluid-soundfont-gm", "gm_bank", "MIT (Frank Wen, FluidR3_GM)",
                 files=("usr/share/sounds/sf2/FluidR3_GM.sf2",))

#: Festival and its voices are installed with apt (small); listed for the manifest's licences.
VOICE_SOURCES: tuple[Source, ...] = (
    Source("festival", "voice", "X11-style (Festival, University of Edinburgh / CMU)"),
    Source("festvox-us-slt-hts", "voice", "EST-2003 (CMU ARCTIC slt, HTS voice)"),
    Source("festvox-kallpc16k", "voice", "EST-2003-style (CMU, kal diphone voice)"),
    Source("festvox-kdlpc16k", "voice", "EST-2003-style (CMU, kdl / ked diphone voice)"),
)

ALL_SOURCES: tuple[Source, ...] = MUSIC_SOURCES + SOUND_SOURCES

#: Pieces left out of every split, with the reason. How voices were judged: see docs/DATA_API.md ("Real audio").
EXCLUDED_PIECES: dict[tuple[str, str], str] = {
    ("wesnoth-1.16-music", "nunc_dimittis"): "a choir sings it (voices)",
    ("wesnoth-1.16-music", "silence"): "ten seconds of silence",
    ("nexuiz-music", "thunder"): "a thunder sound effect at 11 kHz, not music",
    ("drascula-music", "track29"): "a lead with strong vibrato and moving formant bands: possibly a voice",
    ("drascula-music", "track31"): "a lead with strong vibrato and moving formant bands: possibly a voice",
}

#: Pieces that are versions of one composition: they share a split (the split hashes the group name).
PIECE_GROUPS: dict[tuple[str, str], str] = {
    ("nexuiz-music", "sixtyfour_revisited"): "sixtyfour_",
    ("wesnoth-1.16-music", "frantic-old"): "frantic",
}


def source(package: str) -> Source:
    """The catalogue entry of ``package`` (reserved packages raise :class:`DatasetError`)."""
    refuse_reserved(package)
    for s in ALL_SOURCES + VOICE_SOURCES + (FLUIDR3,):
        if s.package == package:
            return s
    raise DatasetError(None, f"unknown source package {package!r}; known: "
                       f"{', '.join(s.package for s in ALL_SOURCES)}")


for _s in ALL_SOURCES + VOICE_SOURCES + (FLUIDR3,):  # the catalogue itself can never name a reserved package
    refuse_reserved(_s.package)
