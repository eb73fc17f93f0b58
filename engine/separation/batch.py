"""Folders in batch: which songs a ``shotoku separate`` run separates, where each goes, which are done already,
and running them (one after another, or several at once in worker processes) with a count, the time left and a
summary. No torch here: the separation of one song is the caller's function.

Layout: a file named on the command line goes to ``OUT/<song>``; a file found below a folder ``DIR`` (its own files,
or with ``recursive`` every file below it) goes to ``OUT/<its folder relative to DIR>/<song>``, so the output
mirrors the input tree. ``<song>`` is :func:`engine.separation.stemset.song_folder_name`: a folder of stems
(``stems.json`` last) or, for the STEM format, the file ``<song>.stem.mp4``.

Resume: a song found in a folder is skipped when its output is complete (a stem set whose manifest names this
input and this model; a ``.stem.mp4`` file, always written atomically) unless ``force``; an interrupted run is
started again with the same command. Hidden files and folders, and the output folder itself when it lies inside
``DIR``, are never read as input.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ShotokuError

STEM_MP4 = "stem.mp4"


@dataclass(frozen=True)
class BatchItem:
    """One song: its ``source`` file, the folder its output goes in, its ``song`` name, and whether it came from a
    folder (then it is skipped when done)."""

    source: Path
    out_dir: Path
    song: str
    from_folder: bool = False
    empty_folder: bool = False  #: a folder given with no audio file in it: it fails, naming itself, like a bad file

    def target(self, format: str) -> Path:
        """Its output: the stem folder ``out_dir/<song>``, or ``out_dir/<song>.stem.mp4``."""
        return self.out_dir / (f"{self.song}.{STEM_MP4}" if format == STEM_MP4 else self.song)


def _audio_suffix(path: Path) -> bool:
    from engine.audio.io import SUPPORTED_EXTENSIONS

    return path.suffix.lower() in SUPPORTED_EXTENSIONS


def _below(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def find_songs(inputs: Iterable[Path], out_dir: Path, recursive: bool = False) -> list[BatchItem]:
    """The songs of ``inputs`` (files and folders, see the module docstring); a folder's in sorted order."""
    from engine.separation.stemset import song_folder_name

    items: list[BatchItem] = []
    for given in inputs:
        if given.is_dir():
            found: list[Path] = []
            for folder, dirs, files in os.walk(given):
                here = Path(folder)
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _below(here / d, out_dir))
                if not recursive:
                    dirs[:] = []
                found += [here / f for f in sorted(files) if not f.startswith(".") and _audio_suffix(Path(f))]
            for path in found:
                relative = path.parent.relative_to(given)
                items.append(BatchItem(path, out_dir / relative, song_folder_name(path), from_folder=True))
            if not found:  # reported in its place among the other inputs, not silently dropped
                items.append(BatchItem(given, out_dir, song_folder_name(given), empty_folder=True))
        else:  # a file (one that does not exist fails when it is read, naming itself)
            items.append(BatchItem(given, out_dir, song_folder_name(given)))
    return items


def plan_items(items: list[BatchItem], format: str) -> tuple[list[BatchItem], list[str], str | None]:
    """The items to run (one file given twice runs once), notes, and the collision that refuses the batch, if any:
    two different files whose outputs are the same (compared case-insensitively, as macOS and Windows do)."""
    kept: list[BatchItem] = []
    notes: list[str] = []
    owner: dict[str, BatchItem] = {}
    for item in items:
        key = os.fsdecode(os.path.abspath(item.target(format))).casefold()
        first = owner.get(key)
        if first is None:
            owner[key] = item
            kept.append(item)
        elif _same_file(first.source, item.source):
            notes.append(f"{item.source}: given more than once; separated once")
        else:
            where = (f"the file {item.target(format).name!r}" if format == STEM_MP4 else
                     f"the song folder {item.song!r}")  # fmt: skip
            return kept, notes, (
                f"{first.source} and {item.source} would both be written to {where} in {item.out_dir}: "
                "separate them in two runs with different -o folders, or rename one"
            )
    return kept, notes, None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def is_done(item: BatchItem, format: str, model: str) -> bool:
    """True when ``item``'s output is complete: its ``.stem.mp4`` exists, or its stem set is complete and was made
    from this input by ``model``."""
    target = item.target(format)
    if format == STEM_MP4:
        return target.is_file()
    from engine.separation.stemset import read_stem_set

    found = read_stem_set(target)
    if found is None:
        return False
    same_input = found.manifest.get("input") == os.fsdecode(item.source.absolute())
    return same_input and found.manifest.get("model") == model


@dataclass
class BatchSummary:
    """What a batch did: songs written, skipped (already done) and failed (with the reason)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary as the CLI prints it: one count line, then one line per failure."""
        head = f"{len(self.done)} done, {len(self.skipped)} skipped (already done), {len(self.failed)} failed"
        return [head] + [f"failed: {reason}" for _, reason in self.failed]


class BatchProgress:
    """Songs done out of the total and the time left, estimated from the seconds of audio separated so far.

    ``seconds(item)`` gives a song's length (None: unknown; the song then counts as the mean of the known ones).
    """

    def __init__(self, items: list[BatchItem], seconds: Callable[[BatchItem], float | None],
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.total = len(items)
        known = {item: seconds(item) for item in items}
        values = [s for s in known.values() if s]
        mean = sum(values) / len(values) if values else 1.0
        self._seconds = {item: s or mean for item, s in known.items()}
        self._clock = clock
        self.started = clock()
        self.finished = 0
        self._audio_done = 0.0
        self._audio_left = sum(self._seconds.values())

    def finish(self, item: BatchItem) -> None:
        """``item`` ended (separated or failed: either way its time was spent)."""
        self.finished += 1
        seconds = self._seconds.get(item, 0.0)
        self._audio_left -= seconds
        self._audio_done += seconds

    def seconds_left(self) -> float | None:
        """Wall seconds left (None until a song has been separated)."""
        if self._audio_done <= 0:
            return None
        rate = (self._clock() - self.started) / self._audio_done  # wall seconds per audio second
        return max(0.0, self._audio_left * rate)

    def line(self) -> str:
        left = self.seconds_left()
        eta = "" if left is None or self.finished >= self.total else f", about {_duration(left)} left"
        return f"{self.finished}/{self.total} songs done{eta}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def audio_seconds(item: BatchItem) -> float | None:
    """A song's length from its header (None when it cannot be read cheaply)."""
    from engine.audio import audio_info

    try:
        return float(audio_info(item.source).duration_seconds)
    except Exception:  # noqa: BLE001 - only an estimate: the separation reports the real problem
        return None


#: ``separate(item) -> written paths``; raises ShotokuError (one line naming the file) for a song that fails.
SeparateOne = Callable[[BatchItem], list[Path]]


def run_batch(
    items: list[BatchItem],
    separate: SeparateOne,
    *,
    jobs: int = 1,
    worker: tuple[Callable[..., None], tuple[Any, ...]] | None = None,
    on_done: Callable[[BatchItem, list[Path]], None] | None = None,
    on_failed: Callable[[BatchItem, str], None] | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    seconds: Callable[[BatchItem], float | None] = audio_seconds,
    stop_on: tuple[type[BaseException], ...] = (),
) -> BatchSummary:
    """Separate ``items`` (already filtered of those done) and summarise.

    ``jobs`` > 1 runs that many songs at once in worker processes (spawned; ``worker = (initializer, args)`` sets
    each one up, e.g. loads the model once; ``separate`` must then be a picklable module-level function).
    A ``ShotokuError`` fails one song and the batch goes on; one of ``stop_on`` (e.g. ``ModelLoadError``: the
    model is broken for every song) or any other exception stops it.
    """
    progress = BatchProgress(items, seconds)
    summary = BatchSummary()

    def finished(item: BatchItem, written: list[Path] | None, reason: str | None) -> None:
        if reason is not None:
            summary.failed.append((item.source, reason))
            if on_failed is not None:
                on_failed(item, reason)
        else:
            summary.done.append(item.source)
            if on_done is not None:
                on_done(item, written or [])
        progress.finish(item)
        if on_progress is not None:
            on_progress(progress)

    if on_progress is not None:
        on_progress(progress)
    if jobs <= 1:
        for item in items:
            try:
                written = separate(item)
            except stop_on:
                raise
            except ShotokuError as err:
                finished(item, None, _reason(item, err))
                continue
            finished(item, written, None)
        return summary
    import multiprocessing

    initializer, initargs = worker if worker is not None else (None, ())
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=initializer, initargs=initargs) as pool:  # fmt: skip
        running: dict[Future, BatchItem] = {}
        queue = list(items)
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    item = queue.pop(0)
                    running[pool.submit(separate, item)] = item
                ready, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in ready:
                    item = running.pop(future)
                    try:
                        written = future.result()
                    except stop_on:
                        raise
                    except ShotokuError as err:
                        finished(item, None, _reason(item, err))
                        continue
                    finished(item, written, None)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return summary


def _reason(item: BatchItem, err: ShotokuError) -> str:
    message = str(err)
    return message if os.fsdecode(item.source) in message else f"{item.source}: {message}"
