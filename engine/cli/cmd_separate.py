"""``shotoku separate FILE...``: separate songs into stem files, streaming blocks to disk.

Usage errors (bad option values, an unusable ``--device``, stems the model does not have, an oracle model without
``--reference``, two inputs that would share one song folder) go through argparse's ``parser.error``: one line
naming the option and the reason, exit 2, before any file is read. Errors about a file (unreadable audio, missing
reference stems, a full disk) are ``shotoku: error: <file>: <reason>``, exit 1; one bad file does not stop the
others.

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

FORMATS = ("wav", "flac", "mp3", "ogg")
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
    p.add_argument("files", nargs="+", metavar="FILE", type=Path, help="audio files (wav, flac, mp3, ogg, m4a, ...)")
    p.add_argument("-o", "--out", type=Path, default=Path("separated"), metavar="DIR", help="output folder")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", default=None, help="model name (see `shotoku models`; default: the default model)")
    model.add_argument("--model-dir", type=Path, default=None, metavar="DIR",
                       help="a model folder outside the registry (its card.json and weights.safetensors)")
    p.add_argument("--stems", default=None, help="comma-separated subset of stems, e.g. vocals,drums")
    p.add_argument("--two-stems", default=None, metavar="STEM", help="write STEM and no_STEM (mixture minus STEM)")
    p.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)
    p.add_argument("--format", default="wav", choices=FORMATS)
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
    if args.quality == "best" and args.model_dir is not None:
        return "--quality best chooses among the bundled models: it does not take --model-dir"
    if args.model is not None and (not MODEL_NAME.fullmatch(args.model) or ".." in args.model):
        return (f"--model {display_text(args.model)!r}: a model name is a name from `shotoku models`, not a path "
                "(use --model-dir DIR for a model folder)")  # fmt: skip
    return None


def plan_batch(files: list[Path]) -> tuple[list[Path], list[str], str | None]:
    """The files to separate (one file given twice is separated once), notes, and the collision that refuses the
    batch, if any: two different files whose song folders are the same (compared case-insensitively, as macOS and
    Windows file systems do) would overwrite each other's stems."""
    from engine.separation.stemset import song_folder_name

    kept: list[Path] = []
    notes: list[str] = []
    owner: dict[str, Path] = {}
    for path in files:
        key = song_folder_name(path).casefold()
        first = owner.get(key)
        if first is None:
            owner[key] = path
            kept.append(path)
        elif _same_file(first, path):
            notes.append(f"{path}: given more than once; separated once")
        else:
            return kept, notes, (
                f"{first} and {path} would both be written to the song folder {song_folder_name(path)!r}: "
                "separate them in two runs with different -o folders, or rename one"
            )
    return kept, notes, None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


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
    files, notes, collision = plan_batch(list(args.files))
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
    if card.needs_references and args.reference is None:
        parser.error(f"model {card.name!r} is an oracle: give the true stems with --reference DIR")
    for note in notes:
        say(f"shotoku: {note}")
    _remove_stale(args.out)
    options = _Options(card, device, args, wanted)
    failures = 0
    for path in files:
        try:
            written = separate_file(options, path)
        except ModelLoadError:
            raise  # the model is broken for every file: stop here (exit 1)
        except ShotokuError as err:  # one bad file does not stop the others
            message = str(err)
            if str(path) not in message:
                message = f"{path}: {message}"
            say(f"shotoku: error: {message}")
            failures += 1
            continue
        except Exception as err:  # noqa: BLE001 - a bug on one file: say so, go on with the others
            log.info("the traceback:", exc_info=True)
            say(f"shotoku: error: {path}: {unexpected(err)}")
            failures += 1
            continue
        for out in written:
            _print_path(out)
    if failures:
        if len(files) > 1:
            say(f"shotoku: {failures} of {len(files)} files failed")
        return 1
    return 0


class _Options:
    """What every file of the batch shares; the model is loaded for the first file that decodes."""

    def __init__(self, card: ModelCard, device: Any, args: argparse.Namespace, wanted: list[str] | None) -> None:
        self.card, self.device, self.args, self.wanted = card, device, args, wanted
        self._separator: Separator | None = None
        self.names = card.name  # the model, or the best plan's models joined by "+"

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


def separate_file(options: _Options, path: Path) -> list[Path]:
    """Separate one file into ``out/<song>/<stem>.<format>`` as one set (see the module docstring); returns the
    written paths. Raises ShotokuError (AudioLoadError, AudioSaveError, ...) naming the file and the reason."""
    from engine.separation.stemset import StemSetWriter, song_folder_name

    args = options.args
    with _decoded(path) as audio:
        for note in audio.notes:
            say(f"shotoku: {path.name}: {note}")
        separator = options.separator(audio.duration_seconds)
        references = _references(separator, args.reference, audio.samplerate)
        song = song_folder_name(path)
        info = {"input": os.fsdecode(path.absolute()), "model": options.names, "quality": args.quality,
                "weights_sha256": options.card.weights_sha256, "samplerate": int(audio.samplerate),
                "n_samples": int(audio.samples.shape[-1])}  # fmt: skip
        with StemSetWriter(args.out, song, info) as stems_out:
            _write_stems(separator, audio, path, stems_out, args, options.wanted, references)
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


def _write_stems(separator: Separator, audio: Any, path: Path, stems_out: Any, args: argparse.Namespace,
                 wanted: list[str] | None, references: dict | None) -> None:  # fmt: skip
    """Stream the separated blocks into one writer per stem in the staging folder, and close them there."""
    from engine.audio import AudioFileWriter
    from engine.progress import ProgressBar
    from engine.separation.apply import Progress
    from engine.separation.outputs import select_outputs

    bar = ProgressBar(f"{display_text(path.name)[:28]:28s}")

    def progress(p: Progress) -> None:
        bar.update(p.fraction, f"chunk {p.done_chunks}/{p.n_chunks}")

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
