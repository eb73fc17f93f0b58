#!/usr/bin/env bash
# Run the whole test suite: lint, then pytest (engine tests without Qt, app tests offscreen).
# Tests start what they need themselves (JACK's dummy driver for the playback tests). The PyInstaller build
# and its smoke test run first (about 3 minutes; SHOTOKU_SKIP_PACKAGE=1 skips them for a quick local run), so
# pytest's frozen-app test has a bundle to run.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen
export PYTHONUNBUFFERED=1
echo "== ruff"
.venv/bin/ruff check .
if [ "${SHOTOKU_SKIP_PACKAGE:-0}" != 1 ]; then
  echo "== packaged build (PyInstaller) and its smoke test"
  bash packaging/build.sh
fi
echo "== pytest"
.venv/bin/python -m pytest -q -ra "$@"
