"""The ``shotoku`` entry point: no arguments (or audio files) open the desktop app; a subcommand runs the CLI.

``-v``/``--verbose`` may accompany either: ``shotoku -v`` opens the app with verbose logging, ``shotoku -v
separate ...`` runs the CLI verbosely. ``--version`` and ``--help`` are the CLI's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

VERBOSE_FLAGS = ("-v", "--verbose")


def _is_gui_request(argv: Sequence[str]) -> bool:
    """True for ``shotoku``, ``shotoku gui [FILE]`` and ``shotoku FILE...`` (existing files, no subcommand)."""
    if not argv:
        return True
    if argv[0] == "gui":
        return True
    return all(not a.startswith("-") and Path(a).is_file() for a in argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GUI or the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = [a for a in argv if a not in VERBOSE_FLAGS]
    if _is_gui_request(rest):
        files = rest[1:] if rest and rest[0] == "gui" else rest
        from app.gui import run_gui  # Qt is imported only when the window is wanted

        return run_gui(files, verbose=len(rest) != len(argv))
    from engine.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
