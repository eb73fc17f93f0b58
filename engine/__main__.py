"""``python -m engine``: the headless command line (same as ``shotoku`` with a subcommand)."""

from engine.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
