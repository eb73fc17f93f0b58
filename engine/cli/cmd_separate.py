"""``shotoku separate FILE...``: separate songs into stem files, streaming blocks to disk.

Usage errors (bad option values, an unusable ``--device``, stems the model does not have, an oracle model without
``--reference``, two inputs that would share one song folder) go through argparse's ``parser.error``: one line
naming the option and the reason, exit 2, before any file is read. Errors about a file (unreadable audio, missing
reference stems, a full disk) are ``shotoku: error: <file>: <reason>``, exit 1; one bad file does not stop the
others.

Folders: ``shotoku separate DIR [--recursive] [--jobs N]`` separates the audio files in DIR (below it with
``--recursive``) into a tree that mirrors DIR's under ``-o``, skips the songs already done (so an interrupted run
resumes with the same command; ``--force`` redoes them), runs N songs at once in worker processes, shows the song
count and the time left, and ends with a summary (done, skipped, failed with each reason):
:mod:`engine.separation.batch`. ``--format stem.mp4`` writes one NI STEM file per song, ``-o/<song>.stem.mp4``
(the original as the master track, drums, bass, other, vocals, the source's tags): :mod:`engine.audio.stem_mp4`.

Each song's stems are committed as one set (:mod:`engine.separation.stemset`): written in a hidden staging folder
of ``-o``, renamed into ``-o/<song>/`` together, with ``stems.json`` (the manifest) written last. An interrupted
run (Ctrl-C, SIGTERM, ``timeout``) removes its staging folder; one killed outright leaves it to the next run into
the same ``-o``, which removes it once its owner is gone.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli import display_text, say, unexpected
from engine.errors import AudioLoadError, AudioSaveError, ModelLoadError, ShotokuError

if TYPE_CHECKING:
    from engine.models.cards import ModelCard
    from engine.separation.separator import Separator

log = logging.getLogger(__name__)

FORMATS = ("wav", "flac", "mp3", "ogg", "stem.mp4")
STEM_MP4 = "stem.mp4"
MAX_JOBS = 64
DEVICE_HELP = "auto, cpu, cuda, mps or cuda:N (default: auto, the best available)"
#: A model name is a name: letters, digits, '.', '_' and '-' (never a path; see --model-dir).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_THREADS = 1024


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "separate",
        help="separate songs into stems",
        description="Separate each FILE into stems written to DIR/<song>/<stem>.<format>, with DIR/<song>/"
        "stems.json listing the complete set.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", type=Path,
                   help="audio files (wav, flac, mp3, ogg, m4a, ...) or folders of them")
    p.add_argument("-o", "--out", type=Path, default=Path("separated"), metavar="DIR", help="output folder")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", default=None, help="model name (see `shotoku models`; default: the default model)")
    model.add_argument("--model-dir", type=Path, default=None, metavar="DIR",
                       help="a model folder outside the registry (its card.json and weights.safetensors)")
    p.add_argument("--stems", default=None, help="comma-separated subset of stems, e.g. vocals,drums")
    p.add_argument("--two-stems", default=None, metavar="STEM", help="write STEM and no_STEM (mixture minus STEM)")
    p.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)
    p.add_argument("--format", default="wav", choices=FORMATS,
                   help="stem files, or stem.mp4: one NI STEM file per song for DJ software (default: wav)")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="folders: also the audio files in their sub-folders (the output mirrors the tree)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="separate N songs at once (default 1)")
    p.add_argument("--force", action="store_true",
                   help="folders: separate again the songs whose output is complete already (default: skip them)")
    p.add_argument("--bit-depth", default=None, help="16, 24 or float (wav/flac)")
    p.add_argument("--segment", type=float, default=None, metavar="SECONDS",
                   help="chunk length (default: the model's; 0.05 to 120)")
    p.add_argument("--overlap", type=float, default=0.25, help="chunk overlap fraction (0..0.9)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the measured rule)")
    p.add_argument("--quality", default="fast", choices=("fast", "best"),
                   help="fast: the model as shipped (as live playback uses it); best: the best recorded model or "
                   "ensemble, with random shifts and more Wiener iterations (several times slower; it says how long)")
    p.add_argument(
        "--reference", type=Path, default=None, metavar="DIR",
        help="folder with the true stems (<stem>.wav/.flac), for the oracle models irm and ibm",
    )
    p.set_defaults(run=run, parser=p)


def _usage_errors(args: argparse.Namespace) -> str | None:
    """What is wrong with the options themselves (checked before any model or file is loaded), or None."""
    from engine.separation.outputs import segment_problem

    if not 0.0 <= args.overlap < 0.95:
        return f"--overlap {args.overlap}: must be between 0 and 0.95"
    if args.segment is not None and (problem := segment_problem(args.segment)) is not None:
        return f"--segment {args.segment}: {problem}"
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        return f"--threads {args.threads}: must be between 1 and {MAX_THREADS}"
    if not 1 <= args.jobs <= MAX_JOBS:
        return f"--jobs {args.jobs}: must be between 1 and {MAX_JOBS}"
    if args.format == STEM_MP4 and (args.stems or args.two_stems or args.bit_depth):
        option = "--stems" if args.stems else "--two-stems" if args.two_stems else "--bit-depth"
        return f"--format stem.mp4 holds the four stems as AAC: it does not take {option}"
    if args.quality == "best" and args.model_dir is not None:
        return "--quality best chooses among the bundled models: it does not take --model-dir"
    if args.model is not None and (not MODEL_NAME.fullmatch(args.model) or ".." in args.model):
        return (f"--model {display_text(args.model)!r}: a model name is a name from `shotoku models`, not a path "
                "(use --model-dir DIR for a model folder)")  # fmt: skip
    return None


def _card(args: argparse.Namespace) -> ModelCard:
    from engine.models.cards import default_model_name, get_card, read_card  # no torch import

    if args.model_dir is not None:
        return read_card(args.model_dir)
    return get_card(args.model or default_model_name())


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    problem = _usage_errors(args)
    if problem is not None:
        parser.error(problem)
    from engine.separation.batch import find_songs, is_done, plan_items

    items, notes, collision = plan_items(find_songs(list(args.files), args.out, args.recursive), args.format)
    if collision is not None:
        parser.error(display_text(collision))
    from engine.separation.outputs import check_outputs

    device = None  # "auto": the best available, chosen when the model loads (it always exists)
    if args.device != "auto":
        from engine.separation.device import select_device  # imports torch

        try:
            device = select_device(args.device)
        except ShotokuError as err:
            parser.error(f"--device: {err}")
    card = _card(args)
    wanted = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None
    try:
        check_outputs(list(card.sources), wanted, args.two_stems)
    except ShotokuError as err:
        parser.error(f"model {card.name!r}: {err}")
    if args.format == STEM_MP4 and (problem := _stem_file_problem(list(card.sources))) is not None:
        parser.error(f"model {card.name!r}: {problem}")
    if card.needs_references and args.reference is None:
        parser.error(f"model {card.name!r} is an oracle: give the true stems with --reference DIR")
    for note in notes:
        say(f"shotoku: {note}")
    for out_dir in sorted({item.out_dir for item in items}):
        _remove_stale(out_dir)
    skipped = [] if args.force else [item for item in items if item.from_folder and
                                     is_done(item, args.format, _model_label(args, card))]  # fmt: skip
    todo = [item for item in items if item not in skipped]
    if all(item.empty_folder for item in items):
        say(f"shotoku: error: {', '.join(map(str, args.files))}: a folder with no audio files"
            + (" below it" if args.recursive else " (add --recursive for its sub-folders)"))
        return 1
    summary = _run_items(todo, _Options(card, device, args, wanted), args)
    summary.skipped = [item.source for item in skipped]
    if len(items) > 1 or skipped or any(item.from_folder for item in items):
        for line in summary.lines():
            say(f"shotoku: {line}")
    if summary.failed:
        if len(items) > 1:
            say(f"shotoku: {len(summary.failed)} of {len(items)} files failed")
        return 1
    return 0


def _model_label(args: argparse.Namespace, card: ModelCard) -> str:
    """The model a complete output must have been made with to be skipped (``--quality best``: any)."""
    return card.name if args.quality == "fast" else ""


def _stem_file_problem(sources: list[str]) -> str | None:
    """Why a model's stems cannot make a STEM file, or None."""
    from engine.audio.stem_mp4 import STEM_ORDER

    missing = [name for name in STEM_ORDER if name not in sources]
    if missing:
        return (f"a STEM file holds {', '.join(STEM_ORDER)}; this model separates {', '.join(sources)} "
                "(choose a four-stem model)")
    return None


def _run_items(items: list, options: _Options, args: argparse.Namespace):  # -> BatchSummary
    """Separate ``items`` one after another here, or ``--jobs`` at once in worker processes."""
    from engine.separation.batch import BatchItem, BatchProgress, run_batch

    total = len(items)

    def done(item: BatchItem, written: list[Path]) -> None:
        for out in written:
            _print_path(out)

    def failed(_item: BatchItem, reason: str) -> None:
        say(f"shotoku: error: {reason}")

    def progress(state: BatchProgress) -> None:
        options.position = state.finished + 1
        if total > 1 and state.finished:
            say(f"shotoku: {state.line()}")

    options.total = total
    if args.jobs > 1 and total > 1:
        spec = {k: v for k, v in vars(args).items() if k not in ("run", "parser")}
        return run_batch(items, _separate_in_worker, jobs=min(args.jobs, total), on_done=done, on_failed=failed,
                         on_progress=progress, worker=(_start_worker, (options.card, spec, options.wanted)),
                         stop_on=(ModelLoadError,))  # fmt: skip
    return run_batch(items, lambda item: _separate_item(options, item), on_done=done, on_failed=failed,
                     on_progress=progress, stop_on=(ModelLoadError,))  # fmt: skip


def _separate_item(options: _Options, item: Any) -> list[Path]:
    """One song of the batch; an unexpected failure (a bug on one file) becomes that file's one-line error."""
    try:
        return separate_file(options, item.source, item.out_dir)
    except ShotokuError:
        raise
    except Exception as err:  # noqa: BLE001 - a bug on one file: say so, go on with the others
        log.info("the traceback:", exc_info=True)
        raise ShotokuError(f"{item.source}: {unexpected(err)}") from None


_WORKER: _Options | None = None  #: the options of a ``--jobs`` worker process (one model load per process)


def _start_worker(card: ModelCard, spec: dict, wanted: list[str] | None) -> None:
    """A ``--jobs`` worker process starts: its options (the model loads with its first song)."""
    global _WORKER
    args = argparse.Namespace(**spec)
    device = None
    if args.device != "auto":
        from engine.separation.device import select_device

        device = select_device(args.device)
    _WORKER = _Options(card, device, args, wanted, quiet=True)


def _separate_in_worker(item: Any) -> list[Path]:
    assert _WORKER is not None, "the worker process was not started by _start_worker"
    return _separate_item(_WORKER, item)


class _Options:
    """What every file of the batch shares; the model is loaded for the first file that decodes."""

    def __init__(self, card: ModelCard, device: Any, args: argparse.Namespace, wanted: list[str] | None,
                 quiet: bool = False) -> None:  # fmt: skip
        self.card, self.device, self.args, self.wanted = card, device, args, wanted
        self._separator: Separator | None = None
        self.names = card.name  # the model, or the best plan's models joined by "+"
        self.quiet = quiet  #: no per-song progress line (a --jobs worker: the batch's count line shows progress)
        self.position, self.total = 1, 1  #: the song being separated, of how many (in the progress line)

    def separator(self, n_seconds: float = 0.0) -> Separator:
        """The batch's separator, loaded on first use (``n_seconds``: the first song's length, for the time the
        best-quality plan announces)."""
        if self._separator is None:
            from engine.separation.device import describe_device
            from engine.separation.runner import default_threads

            threads = self.args.threads if self.args.threads is not None else default_threads()
            if self.args.quality == "best":
                from engine.separation.quality import plan_separation

                device = None if self.args.device == "auto" else self.args.device
                plan = plan_separation("best", self.args.model, n_seconds, device, threads=threads)
                say(f"shotoku: {plan.describe()}")
                self._separator = plan.build(threads, segment_seconds=self.args.segment)
                self.names = "+".join(plan.models)
            else:
                from engine.models.catalogue import load_from_card
                from engine.separation.separator import Separator

                model = load_from_card(self.card)
                self._separator = Separator(model, device=self.device, segment_seconds=self.args.segment,
                                            overlap=self.args.overlap, n_threads=threads)  # fmt: skip
            say(f"shotoku: model {self.names} on {describe_device(self._separator.device, threads)}")
        return self._separator


def _remove_stale(out_dir: Path) -> None:
    from engine.separation.stemset import remove_stale

    removed = remove_stale(out_dir)
    if removed:
        megabytes = sum(size for _, size in removed) / 1e6
        say(f"shotoku: removed {len(removed)} temporary folder(s) left in {out_dir} by an interrupted run "
            f"({megabytes:.1f} MB)")  # fmt: skip


def _print_path(path: Path) -> None:
    """Print a written path on stdout as the file system spells it (bytes that are not UTF-8 included)."""
    try:
        print(path, flush=True)
    except UnicodeEncodeError:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            print(display_text(path), flush=True)
            return
        sys.stdout.flush()
        buffer.write(os.fsencode(path) + b"\n")
        buffer.flush()


@contextmanager
def _decoded(path: Path) -> Iterator[Any]:
    """The song at its own rate, stereo, streamed into a temporary memory map (flat memory in its length; the
    file is removed when the block ends, and by the next run if this process is killed)."""
    from engine.audio import open_audio_stream

    with open_audio_stream(path, None, 2) as audio:
        yield audio


def separate_file(options: _Options, path: Path, out_dir: Path | None = None) -> list[Path]:
    """Separate one file into ``out_dir/<song>/<stem>.<format>`` as one set (see the module docstring), or into
    ``out_dir/<song>.stem.mp4``; returns the written paths. ``out_dir`` defaults to ``-o``. Raises ShotokuError
    (AudioLoadError, AudioSaveError, ...) naming the file and the reason."""
    from engine.separation.stemset import StemSetWriter, song_folder_name

    args = options.args
    out_dir = args.out if out_dir is None else out_dir
    with _decoded(path) as audio:
        for note in audio.notes:
            say(f"shotoku: {path.name}: {note}")
        separator = options.separator(audio.duration_seconds)
        references = _references(separator, args.reference, audio.samplerate)
        song = song_folder_name(path)
        if args.format == STEM_MP4:
            return [_write_stem_file(options, separator, audio, path, out_dir / f"{song}.{STEM_MP4}", references)]
        info = {"input": os.fsdecode(path.absolute()), "model": options.names, "quality": args.quality,
                "weights_sha256": options.card.weights_sha256, "samplerate": int(audio.samplerate),
                "n_samples": int(audio.samples.shape[-1])}  # fmt: skip
        with StemSetWriter(out_dir, song, info) as stems_out:
            _write_stems(options, separator, audio, path, stems_out, references)
            return stems_out.commit()


def _references(separator: Separator, reference_dir: Path | None, samplerate: int) -> dict | None:
    if not separator.needs_references:
        return None
    from engine.audio import load_audio
    from engine.evaluate.folders import stem_files

    assert reference_dir is not None
    files = stem_files(reference_dir, separator.sources)
    missing = [stem for stem in separator.sources if stem not in files]
    if missing:
        raise AudioLoadError(reference_dir, f"reference stem(s) {', '.join(missing)} not found in this folder")
    return {stem: load_audio(file, samplerate, 2).samples for stem, file in files.items()}


def _bar(options: _Options, path: Path) -> tuple[Any, Any]:
    """The song's progress line (``[3/20] name`` in a batch; none in a --jobs worker) and its callback."""
    from engine.progress import ProgressBar
    from engine.separation.apply import Progress

    count = f"[{options.position}/{options.total}] " if options.total > 1 else ""
    bar = ProgressBar(f"{count}{display_text(path.name)[:28]:28s}", enabled=not options.quiet)

    def progress(p: Progress) -> None:
        bar.update(p.fraction, f"chunk {p.done_chunks}/{p.n_chunks}")

    return bar, progress


def _write_stem_file(options: _Options, separator: Separator, audio: Any, path: Path, target: Path,
                     references: dict | None) -> Path:  # fmt: skip
    """Stream the mixture (the master track) and the four stems into a STEM file at ``target`` (atomic)."""
    from engine.audio._tags import read_tags
    from engine.audio.stem_mp4 import STEM_ORDER, StemMp4Writer

    problem = _stem_file_problem(list(separator.sources))
    if problem is not None:
        raise AudioSaveError(target, problem)
    order = [separator.sources.index(name) for name in STEM_ORDER]
    bar, progress = _bar(options, path)
    writer = StemMp4Writer(target, int(audio.samplerate), tags=read_tags(path))
    try:
        for stems, mix_block in separator.iter_stems(audio.samples, audio.samplerate, progress, None, references):
            writer.write(mix_block, stems[order])
        bar.close()
        return writer.commit()
    finally:
        bar.close()
        writer.abort()


def _write_stems(options: _Options, separator: Separator, audio: Any, path: Path, stems_out: Any,
                 references: dict | None) -> None:  # fmt: skip
    """Stream the separated blocks into one writer per stem in the staging folder, and close them there."""
    from engine.audio import AudioFileWriter
    from engine.separation.outputs import select_outputs

    args, wanted = options.args, options.wanted
    bar, progress = _bar(options, path)

    writers: dict[str, AudioFileWriter] = {}
    name = ""
    try:
        for stems, mix_block in separator.iter_stems(audio.samples, audio.samplerate, progress, None, references):
            outputs = select_outputs(stems, mix_block, separator.sources, wanted, args.two_stems)
            for name, block in outputs.items():
                if name not in writers:
                    writers[name] = AudioFileWriter(stems_out.path_for(name, f"{name}.{args.format}"),
                                                    audio.samplerate, block.shape[0], format=args.format,
                                                    bit_depth=args.bit_depth)  # fmt: skip
                writers[name].write(block)
        bar.close()
        for name in writers:
            writers[name].commit()  # closed and flushed, still in the staging folder
    except AudioSaveError as err:  # name the stem's final path, not the hidden staging file
        raise AudioSaveError(stems_out.target / f"{name}.{args.format}", err.reason) from None
    finally:
        bar.close()
        for writer in writers.values():
            writer.abort()
