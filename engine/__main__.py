"""``python -m engine``: the headless command line (same as ``shotoku`` with a subcommand)."""

from engine.cli import main

raise SystemExit(main())
