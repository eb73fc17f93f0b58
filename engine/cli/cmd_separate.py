"""``shotoku separate FILE...``: separate songs into stem files, streaming blocks to disk.

Usage errors (bad option values, an unusable ``--device``, stems the model does not have, an oracle model without
``--reference``) go through argparse's ``parser.error``: one line naming the option and the reason, exit 2. Errors
about a file (unreadable audio, missing reference stems) are ``shotoku: error: <file>: <reason>``, exit 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.audio import AudioFileWriter, load_audio
from engine.errors import AudioLoadError, ShotokuError
from engine.evaluate.folders import stem_files
from engine.models.base import needs_references
from engine.models.catalogue import default_model_name, get_card, load_from_card
from engine.progress import ProgressBar
from engine.separation.apply import Progress
from engine.separation.device import DEVICE_CHOICES, describe_device, select_device
from engine.separation.separator import Separator, check_outputs, select_outputs

log = logging.getLogger(__name__)

FORMATS = ("wav", "flac", "mp3", "ogg")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "separate",
        help="separate songs into stems",
        description="Separate each FILE into stems written to DIR/<song>/<stem>.<format>.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", type=Path, help="audio files (wav, flac, mp3, ogg, m4a, ...)")
    p.add_argument("-o", "--out", type=Path, default=Path("separated"), metavar="DIR", help="output folder")
    p.add_argument("--model", default=None, help="model name (see `shotoku models`; default: the default model)")
    p.add_argument("--stems", default=None, help="comma-separated subset of stems, e.g. vocals,drums")
    p.add_argument("--two-stems", default=None, metavar="STEM", help="write STEM and no_STEM (mixture minus STEM)")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default: auto, the best available)")
    p.add_argument("--format", default="wav", choices=FORMATS)
    p.add_argument("--bit-depth", default=None, help="16, 24 or float (wav/flac)")
    p.add_argument("--segment", type=float, default=None, metavar="SECONDS", help="chunk length")
    p.add_argument("--overlap", type=float, default=0.25, help="chunk overlap fraction (0..0.9)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--reference", type=Path, default=None, metavar="DIR",
        help="folder with the true stems (<stem>.wav/.flac), for the oracle models irm and ibm",
    )
    p.set_defaults(run=run, parser=p)


def _usage_errors(args: argparse.Namespace) -> str | None:
    """What is wrong with the options themselves (checked before any model or file is loaded), or None."""
    if not 0.0 <= args.overlap < 0.95:
        return f"--overlap {args.overlap}: must be between 0 and 0.95"
    if args.segment is not None and args.segment <= 0:
        return f"--segment {args.segment}: must be positive"
    return None


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    problem = _usage_errors(args)
    if problem is not None:
        parser.error(problem)
    try:
        device = select_device(args.device)
    except ShotokuError as err:
        parser.error(f"--device: {err}")
    card = get_card(args.model or default_model_name())
    model = load_from_card(card)
    wanted = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None
    try:
        check_outputs(list(model.sources), wanted, args.two_stems)
    except ShotokuError as err:
        parser.error(f"model {card.name!r}: {err}")
    if needs_references(model) and args.reference is None:
        parser.error(f"model {card.name!r} is an oracle: give the true stems with --reference DIR")
    separator = Separator(model, device=device, segment_seconds=args.segment, overlap=args.overlap,
                          n_threads=args.threads)  # fmt: skip
    print(f"shotoku: model {card.name} on {describe_device(separator.device)}", file=sys.stderr)
    failures = 0
    for path in args.files:
        try:
            written = separate_file(separator, path, args.out, wanted, args.two_stems, args.format,
                                    args.bit_depth, args.reference)
        except AudioLoadError as err:  # one bad file does not stop the others
            print(f"shotoku: error: {err}", file=sys.stderr)
            failures += 1
            continue
        for out in written:
            print(out)
    if failures:
        if len(args.files) > 1:
            print(f"shotoku: {failures} of {len(args.files)} files failed", file=sys.stderr)
        return 1
    return 0


def separate_file(
    separator: Separator,
    path: Path,
    out_dir: Path,
    wanted: list[str] | None,
    two_stems: str | None,
    fmt: str,
    bit_depth: str | int | None,
    reference_dir: Path | None = None,
) -> list[Path]:
    """Separate one file into ``out_dir/<song>/<stem>.<fmt>``; returns the written paths.

    Blocks are streamed to temporary files that replace the targets only when every stem is complete, so an
    interrupted run never leaves a half-written stem under its final name.
    """
    audio = load_audio(path, samplerate=None, n_channels=2)
    for note in audio.notes:
        print(f"shotoku: {path.name}: {note}", file=sys.stderr)
    references = None
    if separator.needs_references:
        assert reference_dir is not None
        files = stem_files(reference_dir, separator.sources)
        missing = [stem for stem in separator.sources if stem not in files]
        if missing:
            raise AudioLoadError(reference_dir, f"reference stem(s) {', '.join(missing)} not found in this folder")
        references = {stem: load_audio(path, audio.samplerate, 2).samples for stem, path in files.items()}
    song = path.name.removesuffix(".stem.mp4").rsplit(".", 1)[0]
    target_dir = out_dir / song
    bar = ProgressBar(f"{path.name[:28]:28s}")

    def progress(p: Progress) -> None:
        bar.update(p.fraction, f"chunk {p.done_chunks}/{p.n_chunks}")

    writers: dict[str, AudioFileWriter] = {}
    try:
        for stems, mix_block in separator.iter_stems(audio.samples, audio.samplerate, progress, None, references):
            outputs = select_outputs(stems, mix_block, separator.sources, wanted, two_stems)
            for name, block in outputs.items():
                if name not in writers:
                    writers[name] = AudioFileWriter(
                        target_dir / f"{name}.{fmt}", audio.samplerate, block.shape[0], format=fmt,
                        bit_depth=bit_depth,
                    )
                writers[name].write(block)
        bar.close()
        return [writer.commit() for writer in writers.values()]
    finally:
        bar.close()
        for writer in writers.values():
            writer.abort()
