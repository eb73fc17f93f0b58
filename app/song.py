"""A loaded song: the mixture at the engine's rate, and its reference stems when they sit beside it.

A NI STEM file (``.stem.mp4``) is opened as its master track with its four stems as the references; the app then
plays them through the ``stem-file`` model (:data:`STEM_FILE_MODEL`: the stems as they are, nothing separated).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import STEM_NAMES
from engine.audio.io import load_audio
from engine.audio.stem_mp4 import SUFFIXES as STEM_SUFFIXES
from engine.audio.stem_mp4 import is_stem_file, read_stem_mp4
from engine.paths import demo_song

#: Every song is loaded at this rate (the shipped models' rate and the output stream's).
SAMPLERATE = 44100
REFERENCE_EXTENSIONS = (".flac", ".wav", ".ogg", ".mp3", ".aiff")
#: The model that plays a STEM file's own stems (resources/models/stem-file).
STEM_FILE_MODEL = "stem-file"


def _name(path: Path) -> str:
    """The file's name without its extension (``.stem.mp4`` counted as one)."""
    lowered = path.name.lower()
    suffix = next((s for s in STEM_SUFFIXES if lowered.endswith(s)), None)
    return path.name[: -len(suffix)] if suffix else path.stem


@dataclass
class Song:
    """``mixture`` float32 ``(2, n_samples)`` at :data:`SAMPLERATE`; ``references`` maps stem -> same shape."""

    path: Path
    mixture: np.ndarray
    samplerate: int = SAMPLERATE
    references: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)
    stem_file: bool = False  #: opened from a ``.stem.mp4``: ``references`` are its stems, to play as they are

    @property
    def title(self) -> str:
        """What the window title shows: the file name without extension, or the folder for ``mixture.*``."""
        if self.path.stem.lower() == "mixture":
            return f"{self.path.parent.name} (mixture)"
        return _name(self.path)

    @property
    def export_name(self) -> str:
        """The ``<song>`` part of exported file names (no characters that are unsafe in file names)."""
        name = self.path.parent.name if self.path.stem.lower() == "mixture" else _name(self.path)
        return "".join("_" if c in '<>:"/\\|?*' else c for c in name).strip() or "song"

    @property
    def n_samples(self) -> int:
        return int(self.mixture.shape[1])

    @property
    def duration_seconds(self) -> float:
        return self.n_samples / self.samplerate


@dataclass
class ExportSource:
    """What the export dialog writes from: the separated stems ``(n_stems, 2, n_samples)`` (the session's stem
    store, ``stem_names`` order) and the current mix as playback applies it (``gains`` ``(n_stems, 2)`` linear)."""

    song_name: str
    stems: np.ndarray
    stem_names: list[str]
    samplerate: int
    gains: np.ndarray
    master: float
    folder: str


def export_folder(song_path: Path, last_folder: str) -> str:
    """Where exports go by default: the song's folder if it is writable (not for the bundled demo), else the last
    folder used (else the home folder)."""
    folder = song_path.parent
    if os.access(folder, os.W_OK) and folder.resolve() != demo_song().parent.resolve():
        return str(folder)
    return last_folder if Path(last_folder) != folder else str(Path.home())


def find_reference_files(path: Path) -> dict[str, Path] | None:
    """The reference stems of a song, if all of them are beside it, else None.

    Two layouts count: ``<folder>/mixture.<ext>`` with ``<folder>/<stem>.<ext>`` (the demo, MUSDB style), and
    ``<song>.<ext>`` with ``<song> - <stem>.<ext>`` (what the export dialog writes).
    """
    found: dict[str, Path] = {}
    for stem in STEM_NAMES:
        names = [f"{path.stem} - {stem}"] + ([stem] if path.stem.lower() == "mixture" else [])
        for name in names:
            match = next((path.with_name(name + ext) for ext in REFERENCE_EXTENSIONS
                          if path.with_name(name + ext).is_file()), None)
            if match is not None:
                found[stem] = match
                break
        if stem not in found:
            return None
    return found


def load_song(path: str | Path, check_cancel: Callable[[], None] | None = None) -> Song:
    """Load a song (and its references if present). Raises :class:`engine.errors.AudioLoadError`.

    ``check_cancel`` is called between the files read (it raises to stop: a closing window does not wait for
    four more decodes).
    """
    check = check_cancel or (lambda: None)
    if is_stem_file(path):
        stem_file = read_stem_mp4(path, SAMPLERATE)
        stems = {name: np.ascontiguousarray(samples) for name, samples in stem_file.stems.items()}
        return Song(Path(path), np.ascontiguousarray(stem_file.master), SAMPLERATE, stems, stem_file.notes, True)
    audio = load_audio(path, samplerate=SAMPLERATE, n_channels=2)
    mixture = np.ascontiguousarray(audio.samples, dtype=np.float32)
    song = Song(Path(path), mixture, SAMPLERATE, None, list(audio.notes))
    files = find_reference_files(Path(path))
    if files:
        refs = {}
        for stem, file in files.items():
            check()
            samples = load_audio(file, samplerate=SAMPLERATE, n_channels=2).samples
            fitted = np.zeros_like(mixture)
            n = min(samples.shape[1], mixture.shape[1])
            fitted[:, :n] = samples[:, :n]
            refs[stem] = fitted
        song.references = refs
    return song
