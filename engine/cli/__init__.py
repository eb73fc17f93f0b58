"""The ``shotoku`` command line: a thin layer over the engine.

Every subcommand is a module ``engine/cli/cmd_<name>.py`` exposing ``add_parser(subparsers)`` and ``run(args)``;
they are discovered here, so adding a command touches no other file. Exit codes: 0 success, 1 failure with a
one-line reason on stderr, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from engine import __version__
from engine.errors import ShotokuError

log = logging.getLogger("shotoku")


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
        return int(args.run(args))
    except ShotokuError as err:
        print(f"shotoku: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("shotoku: interrupted", file=sys.stderr)
        return 130
