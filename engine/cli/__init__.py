"""The ``shotoku`` command line: a thin layer over the engine.

Every subcommand is a module ``engine/cli/cmd_<name>.py`` exposing ``add_parser(subparsers)`` and ``run(args)``;
they are discovered here, so adding a command touches no other file. Exit codes: 0 success, 1 failure with a
one-line reason on stderr, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, e.g. ``timeout``).

SIGTERM and SIGHUP are turned into an exception in the main thread (:class:`Terminated`), so a command stopped by
``kill`` or ``timeout`` cleans up as after Ctrl-C (``finally`` blocks run: temporary files are removed).
File names are printed as :func:`display_text` shows them: control characters (a newline in a name) escaped and
bytes that are not UTF-8 as ``\\xNN``, so every message stays one line and never fails to print.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from engine import __version__
from engine.errors import ShotokuError

log = logging.getLogger("shotoku")

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM or SIGHUP (cleanup runs as after Ctrl-C)."""


def display_text(text: object) -> str:
    """``text`` (often a path) as one printable line: control characters escaped (``\\n``, ``\\x07``), bytes of a
    name that is not UTF-8 (surrogate escapes) as ``\\xNN``; everything else, unicode included, unchanged."""
    out = []
    for char in str(text):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape of a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 32 or code == 127 or 0x80 <= code < 0xA0 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def say(message: str, stream=None) -> None:
    """Print ``message`` (made one line by :func:`display_text`) to ``stream`` (default stderr), whatever its
    encoding can hold."""
    stream = stream or sys.stderr
    text = display_text(message)
    try:
        print(text, file=stream, flush=True)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream, flush=True)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While the command runs, SIGTERM/SIGHUP raise :class:`Terminated` in the main thread (once: a second signal
    during the cleanup is ignored). Restores the previous handlers (``main`` may run inside another program). A
    forked worker inherits the handler; there the signal keeps its default action (the worker ends quietly, as
    ``multiprocessing.Pool.terminate`` expects, instead of printing a traceback of :class:`Terminated`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    previous = {}
    owner = os.getpid()

    def handler(signum: int, _frame: object) -> None:
        if os.getpid() != owner:  # a forked child: die of the signal, as without the handler
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        for name in names:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        raise Terminated(signal.Signals(signum).name)

    for name in names:
        previous[name] = signal.signal(getattr(signal, name), handler)
    try:
        yield
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


def _subcommand_modules() -> list:
    import engine.cli as package

    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("cmd_"))
    return [importlib.import_module(f"engine.cli.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    """The full argparse tree, one subparser per ``cmd_*`` module."""
    parser = argparse.ArgumentParser(
        prog="shotoku",
        description="Separate songs into stems (vocals, drums, bass, other), remix and evaluate them. "
        "Run without arguments to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"shotoku {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _subcommand_modules():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="shotoku: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        with _signals_raise():
            return int(args.run(args))
    except ShotokuError as err:
        say(f"shotoku: error: {err}")
        return 1
    except Terminated as err:
        say(f"shotoku: terminated ({err})")
        return 143
    except KeyboardInterrupt:
        say("shotoku: interrupted")
        return 130
    except Exception as err:  # noqa: BLE001 - the last resort: a bug still gets one line, not a traceback
        log.info("the traceback:", exc_info=True)
        say(f"shotoku: error: {unexpected(err)}")
        return 1


def unexpected(err: BaseException) -> str:
    """The one line shown for an exception no code expected (a bug): its type and message, and how to see more."""
    return f"unexpected {type(err).__name__}: {err} (a bug: please report it; `shotoku -v ...` shows where)"
