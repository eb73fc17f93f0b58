#!/usr/bin/env bash
# Run the whole test suite: lint, then pytest (engine tests without Qt, app tests offscreen).
# Tests start what they need themselves (JACK's dummy driver for the playback tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen
export PYTHONUNBUFFERED=1
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
.venv/bin/python -m pytest -q -ra "$@"
