"""Find stem files in folders and score a folder of estimates against a folder of references.

Accepted layouts (stems matched case-insensitively, any audio extension in :data:`AUDIO_EXTENSIONS`):

- MUSDB18-HQ: ``DIR/<track>/{vocals,drums,bass,other}.wav`` (other files such as ``mixture.wav`` are ignored);
- one track: ``DIR/{vocals,drums,bass,other}.wav`` directly;
- the app's export names: ``<anything> - vocals.wav``, ``<anything> - drums.flac``, ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from engine import STEM_NAMES
from engine import audio as _audio
from engine.errors import DatasetError
from engine.evaluate.scores import TooShortError, TrackScores, evaluate_track, too_short_reason

log = logging.getLogger("shotoku.evaluate")

#: File extensions taken for stem files: whatever ``engine.audio.load_audio`` reads.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(_audio.SUPPORTED_EXTENSIONS)

#: ``progress(n_done, n_total, track_name)``, called after each track.
TrackProgress = Callable[[int, int, str], None]


def stem_of(path: Path, stems: Sequence[str] = STEM_NAMES) -> str | None:
    """The stem a file holds, from its name (``vocals.wav`` or ``Song - vocals.wav``), or ``None``."""
    if path.name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
        return None
    base = path.stem.strip().lower()
    if " - " in base:
        base = base.rsplit(" - ", 1)[1].strip()
    for stem in stems:
        if base == stem.lower():
            return stem
    return None


def stem_files(folder: Path, stems: Sequence[str] = STEM_NAMES) -> dict[str, Path]:
    """``{stem: path}`` of the stem files directly in ``folder`` (see :func:`stem_of`), in ``stems`` order.

    Raises :class:`DatasetError` when two files hold the same stem.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        stem = stem_of(path, stems)
        if stem is None:
            continue
        if stem in found:
            raise DatasetError(folder, f"two files for stem '{stem}': {found[stem].name} and {path.name}")
        found[stem] = path
    return {stem: found[stem] for stem in stems if stem in found}


def find_tracks(directory: str | Path, stems: Sequence[str] = STEM_NAMES) -> dict[str, dict[str, Path]]:
    """Tracks in ``directory``: ``{track_name: {stem: path}}``, sorted by name.

    A folder holding stem files directly is one track named after the folder; otherwise each sub-folder that
    holds stem files is a track. Raises :class:`DatasetError` when the folder is missing or holds no stem file.
    """
    directory = Path(directory)
    if not directory.exists():
        raise DatasetError(directory, "no such folder")
    if not directory.is_dir():
        raise DatasetError(directory, "not a folder")
    direct = stem_files(directory, stems)
    if direct:
        return {directory.name: direct}
    tracks = {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = stem_files(sub, stems)
        if files:
            tracks[sub.name] = files
    if not tracks:
        raise DatasetError(
            directory,
            f"no stem files found (expected <track>/<stem>.wav or <stem>.wav with stems {', '.join(stems)})",
        )
    return tracks


def match_tracks(
    reference_tracks: dict[str, dict[str, Path]],
    estimate_tracks: dict[str, dict[str, Path]],
    estimates_dir: Path,
) -> list[tuple[str, dict[str, Path], dict[str, Path]]]:
    """Pairs ``(name, reference_files, estimate_files)``. One track on each side pairs whatever the names;
    otherwise tracks pair by folder name and a reference track without estimates is skipped with a warning."""
    if len(reference_tracks) == 1 and len(estimate_tracks) == 1:
        (name, ref_files), (est_files,) = next(iter(reference_tracks.items())), estimate_tracks.values()
        return [(name, ref_files, est_files)]
    pairs = []
    for name, ref_files in reference_tracks.items():
        if name not in estimate_tracks:
            log.warning("%s: no estimates for track '%s': skipped", estimates_dir / name, name)
            continue
        pairs.append((name, ref_files, estimate_tracks[name]))
    if not pairs:
        raise DatasetError(
            estimates_dir, f"no track folder matches a reference track (e.g. {next(iter(reference_tracks))})"
        )
    return pairs


def _load(path: Path, samplerate: int | None, n_channels: int | None) -> tuple[np.ndarray, int]:
    loaded = _audio.load_audio(path, samplerate=samplerate, n_channels=n_channels)
    return np.asarray(loaded.samples), int(loaded.samplerate)


def load_track(
    ref_files: dict[str, Path], est_files: dict[str, Path], est_folder: Path | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int, list[str]]:
    """Load the stems of one track that have both a reference and an estimate file.

    Every file is brought to the samplerate and channel count of the first reference loaded
    (``engine.audio.load_audio`` resamples and remixes). A reference stem without an estimate file is skipped with
    a warning naming both. Returns ``(references, estimates, samplerate, notes)``, arrays
    ``(n_channels, n_samples)``; ``samplerate`` is 0 when nothing was loaded.
    """
    references: dict[str, np.ndarray] = {}
    estimates: dict[str, np.ndarray] = {}
    notes: list[str] = []
    samplerate: int | None = None
    n_channels: int | None = None
    folder = est_folder if est_folder is not None else next(iter(est_files.values())).parent
    for stem, path in ref_files.items():
        if stem not in est_files:
            note = f"no estimate for stem '{stem}' in {folder} (reference {path}): skipped"
            log.warning("%s", note)
            notes.append(note)
            continue
        samples, rate = _load(path, samplerate, n_channels)
        samplerate = samplerate or rate
        if n_channels is None and samples.shape[0] in (1, 2):  # load_audio converts to mono or stereo only
            n_channels = samples.shape[0]
        references[stem] = samples
        estimates[stem], _ = _load(est_files[stem], samplerate, n_channels)
    return references, estimates, samplerate or 0, notes


def _too_short(
    err: TooShortError,
    references: dict[str, np.ndarray],
    estimates: dict[str, np.ndarray],
    ref_files: dict[str, Path],
    est_files: dict[str, Path],
) -> DatasetError:
    """The error naming the shortest stem file of a track too short for BSS Eval (estimates named first)."""
    lengths = [(x.shape[-1], est_files[s]) for s, x in estimates.items()]
    lengths += [(x.shape[-1], ref_files[s]) for s, x in references.items()]
    path = min(lengths, key=lambda item: item[0])[1]
    return DatasetError(path, too_short_reason(err.n_samples, err.needed, err.window, err.samplerate))


def evaluate_folders(
    reference_dir: str | Path,
    estimates_dir: str | Path,
    stems: Sequence[str] = STEM_NAMES,
    window_seconds: float = 1.0,
    progress: TrackProgress | None = None,
) -> list[TrackScores]:
    """Score every track of ``estimates_dir`` that has a reference in ``reference_dir``.

    Both folders use one of the layouts of this module. Returns one :class:`TrackScores` per evaluated track, in
    track-name order. Raises :class:`DatasetError` for a missing or empty folder or when no track matches.
    """
    reference_dir, estimates_dir = Path(reference_dir), Path(estimates_dir)
    pairs = match_tracks(find_tracks(reference_dir, stems), find_tracks(estimates_dir, stems), estimates_dir)
    results = []
    for i, (name, ref_files, est_files) in enumerate(pairs):
        references, estimates, samplerate, notes = load_track(ref_files, est_files)
        if not estimates:
            log.warning(
                "%s: no estimate matches a reference stem of track '%s': skipped", estimates_dir, name
            )
        else:
            try:
                scores = evaluate_track(
                    references, estimates, samplerate, name=name, window_seconds=window_seconds
                )
            except TooShortError as err:
                raise _too_short(err, references, estimates, ref_files, est_files) from None
            scores.notes[:0] = notes
            results.append(scores)
        if progress is not None:
            progress(i + 1, len(pairs), name)
    if not results:
        raise DatasetError(estimates_dir, "no estimate file matches a reference stem")
    return results
