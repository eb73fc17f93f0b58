#!/usr/bin/env bash
# Set up everything Shotoku needs on a Debian/Ubuntu machine: system packages (when root, else the exact apt
# command is printed and the rest still works), a virtual environment in .venv, and the project in it.
#
#   SHOTOKU_SKIP_APT=1     do not touch system packages
#   TORCH_SPEC=...         torch requirement (default torch==2.13.0, the CPU build these machines have)
#   TORCH_INDEX_URL=...    index for torch, e.g. https://download.pytorch.org/whl/cu128 for a CUDA build
#   PYTHON=python3.12      interpreter to build the venv from (3.11+)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv libportaudio2 jackd2 ffmpeg            # venv, playback, JACK dummy driver for tests, m4a/mp4 decode
  stress-ng                                           # scripts/test_busy.sh: the tests with every core kept busy
  fluidsynth fluid-soundfont-gm espeak-ng             # training data: instruments and sung vocals
  festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k   # a second voice engine (~9 MB)
  xvfb xauth xdotool libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libegl1 libgl1 libfontconfig1 libdbus-1-3
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && [ "${SHOTOKU_SKIP_APT:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: these system packages are missing; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "setup: continuing; playback, training data and GUI tests need them." >&2
  fi
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }

stamp_src=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp=.venv/.shotoku-installed-$stamp_src
if [ -f "$stamp" ] && [ -x .venv/bin/shotoku ]; then  # installed, and nobody removed the entry point since
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24" 2>/dev/null || true
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  # A GPU user installs a CUDA build of torch into .venv first (see README); we keep whatever torch is there.
  echo "setup: installing ${TORCH_SPEC:-torch==2.13.0}"
  .venv/bin/python -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC:-torch==2.13.0}"
fi
echo "setup: installing Shotoku and its dependencies into .venv"
.venv/bin/python -m pip install -q -e ".[train,test,package]"
rm -f .venv/.shotoku-installed-*
touch "$stamp"
echo "setup: done"
