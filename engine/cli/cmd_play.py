"""``shotoku play FILE``: play a live remix through PortAudio while the song separates in the background.

Example: ``shotoku play song.flac --gain vocals=-inf --gain drums=+3 --pan bass=-0.5``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import PlaybackError

if TYPE_CHECKING:
    from engine.playback.mix import MixState


def _stem_value(text: str) -> tuple[str, float]:
    stem, sep, value = text.partition("=")
    if not sep or not stem:
        raise argparse.ArgumentTypeError(f"expected STEM=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number (use -inf to silence a stem)") from None
    if math.isnan(number):
        raise argparse.ArgumentTypeError("NaN is not a gain")
    return stem.strip(), number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``play``."""
    p = subparsers.add_parser(
        "play", help="play a song as a live remix of its stems",
        description="Play FILE at once; stems separate in the background (cached on disk) and the remix settings "
        "apply to each part of the song as soon as it is separated.",
    )
    p.add_argument("file", nargs="?", help="audio file to play")
    p.add_argument("--model", help="separation model (default: the default model)")
    p.add_argument("--gain", action="append", type=_stem_value, default=[], metavar="STEM=DB",
                   help="stem gain in dB, -60 or below (or -inf) silences it (repeatable), e.g. --gain vocals=-inf")
    p.add_argument("--pan", action="append", type=_stem_value, default=[], metavar="STEM=PAN",
                   help="stem balance from -1 (left) to 1 (right) (repeatable)")
    p.add_argument("--mute", action="append", default=[], metavar="STEM", help="mute a stem (repeatable)")
    p.add_argument("--solo", action="append", default=[], metavar="STEM", help="solo a stem (repeatable)")
    p.add_argument("--master", type=float, default=0.0, metavar="DB",
                   help="master gain in dB (default 0; -60 or below silences)")
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="start position")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    p.add_argument("--loop", nargs=2, type=float, metavar=("A", "B"), help="loop from A to B seconds")
    p.add_argument("--device", help="output device index or name fragment (default: the system default)")
    p.add_argument("--latency", choices=("robust", "low"), default="robust", help="output latency preset")
    p.add_argument("--threads", type=int, default=None,
                   help="separation threads (default: 1 on up to 4 cores, else (cores - 2) / 2: more threads "
                   "than free cores collapse on a busy machine)")
    p.add_argument("--list-devices", action="store_true", help="list output devices and exit")
    p.set_defaults(run=run)


def _list_devices() -> int:
    from engine.playback.stream import backend_error, list_output_devices

    if backend_error():
        raise PlaybackError(backend_error() or "")
    devices = list_output_devices()
    if not devices:
        print("no audio output devices found")
        return 1
    for d in devices:
        mark = "*" if d.is_default else " "
        print(f"{mark} {d.index:3d}  {d.name}  ({d.hostapi}, {d.max_output_channels} ch, {d.default_samplerate} Hz)")
    return 0


def _model_samplerate(name: str | None) -> int:
    """The rate the song is decoded at: the model's (its card; no weights are loaded here), else 44.1 kHz."""
    from engine.errors import ModelLoadError
    from engine.models.cards import default_model_name, get_card

    try:
        return int(get_card(name or default_model_name()).samplerate)
    except ModelLoadError:  # the session says what is wrong with the model when it opens the song
        return 44100


@contextmanager
def _decoded(path: str, samplerate: int) -> Iterator[Any]:
    """The song, decoded before any audio output opens (a bad file is refused here: exit 1, no device touched),
    streamed into a temporary memory map at the model's rate and kept for as long as it plays."""
    from engine.audio import open_audio_stream

    with open_audio_stream(path, samplerate, 2) as audio:
        yield audio


def _separation_failure(session: Any) -> str | None:
    """Why the background separation stopped (its one-line ``error``), or None while it runs or succeeded."""
    separation = session.separation
    error = separation.error if separation is not None else None
    return str(error) if error else None


def run(args: argparse.Namespace) -> int:
    """Play until the song (or ``--duration``) ends; Ctrl-C stops. Exit 1 when the file cannot be played or the
    separation fails (its reason on stderr)."""
    if args.list_devices:
        return _list_devices()
    if not args.file:
        print("shotoku play: error: FILE is required (or --list-devices)", file=sys.stderr)
        return 2
    from engine.cli import say

    with _decoded(args.file, _model_samplerate(args.model)) as audio:
        for note in audio.notes:
            say(f"shotoku play: {Path(args.file).name}: {note}")
        return _play(args, audio)


def _play(args: argparse.Namespace, audio: Any) -> int:
    from engine.cli import display_text, say
    from engine.playback.session import PlaybackSession, SessionState
    from engine.playback.tuning import tune_process_for_playback

    previous_interval = tune_process_for_playback()
    session = PlaybackSession(model=args.model, device=args.device, latency=args.latency,
                              worker_threads=args.threads)
    try:
        if session.state == SessionState.NO_OUTPUT:
            raise PlaybackError(session.message or "no audio output")
        session.open(audio, play=False)
        session.title = display_text(Path(args.file).name)
        try:
            session.apply_mix(_mix_from_options(session.mix, args))
        except ValueError as err:
            print(f"shotoku play: error: {err}", file=sys.stderr)
            return 2
        if args.loop:
            session.set_loop(*args.loop)
        if args.start:
            session.seek(args.start)
        session.play()
        started = time.monotonic()
        tty = sys.stderr.isatty()
        last_line = 0.0
        while True:
            time.sleep(0.1)
            failure = _separation_failure(session)
            if failure is not None:
                if tty:
                    sys.stderr.write("\n")
                say(f"shotoku play: error: separation failed: {failure}")
                return 1
            state = session.state
            if state in (SessionState.DEVICE_LOST, SessionState.NO_OUTPUT):
                raise PlaybackError(session.message or "audio output lost")
            if state == SessionState.STOPPED:
                break
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
            now = time.monotonic()
            if now - last_line >= (0.25 if tty else 5.0):
                last_line = now
                line = (f"{session.title}  {_clock(session.position_seconds)} / {_clock(session.duration_seconds)}"
                        f"  separated {100 * session.separated_fraction:3.0f}%  underruns {session.underruns}")
                sys.stderr.write(("\r" + line) if tty else (line + "\n"))
                sys.stderr.flush()
        if tty:
            sys.stderr.write("\n")
        if session.message:
            say(f"shotoku play: {session.message}")
        return 0
    finally:
        session.close()
        sys.setswitchinterval(previous_interval)  # main() may run inside another program (the tests)


def _mix_from_options(mix: MixState, args: argparse.Namespace) -> MixState:
    """``mix`` (the session's, one strip per stem) with ``--gain``, ``--pan``, ``--mute``, ``--solo`` and
    ``--master`` applied. Raises ValueError naming an unknown stem."""
    for stem, db in args.gain:
        mix.strip_for(stem).gain_db = db
    for stem, pan in args.pan:
        mix.strip_for(stem).pan = max(-1.0, min(1.0, pan))
    for stem in args.mute:
        mix.strip_for(stem).mute = True
    for stem in args.solo:
        mix.strip_for(stem).solo = True
    mix.master_db = args.master
    return mix


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"
