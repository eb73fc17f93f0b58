#!/usr/bin/env bash
# Build the one-folder app dist/shotoku with PyInstaller, then smoke-test it. Exits non-zero on any failure.
#
#   packaging/build.sh              build + smoke test
#   packaging/build.sh --no-build   smoke-test an existing dist/shotoku
#
# Environment: PYTHON (default .venv/bin/python), SHOTOKU_PORTAUDIO (path of libportaudio.so.2 to bundle).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$ROOT/.venv/bin/python}
APP=$ROOT/dist/shotoku/shotoku
TMP=$(mktemp -d "${TMPDIR:-/tmp}/shotoku-smoke.XXXXXX")
cleanup() {
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "build.sh: FAILED: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }

if [[ "${1:-}" != "--no-build" ]]; then
    "$PY" -m PyInstaller --version >/dev/null 2>&1 || fail "PyInstaller missing: $PY -m pip install 'pyinstaller>=6.10'"
    step "building dist/shotoku (PyInstaller $("$PY" -m PyInstaller --version))"
    start=$(date +%s)
    nice -n 10 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" "$ROOT/packaging/shotoku.spec" \
        || fail "PyInstaller"
    echo "build time: $(( $(date +%s) - start )) s"
fi
[[ -x "$APP" ]] || fail "$APP was not built"
echo "folder size: $(du -sh "$ROOT/dist/shotoku" | cut -f1) ($(find "$ROOT/dist/shotoku" -type f | wc -l) files)"

export QT_QPA_PLATFORM=offscreen
export SHOTOKU_CACHE=$TMP/cache SHOTOKU_CONFIG=$TMP/config   # never touch the builder's own settings

step "bundled PortAudio"
ls "$ROOT"/dist/shotoku/_internal/libportaudio.so* || fail "libportaudio.so.2 is not in the bundle"

step "bundled colour map (the spectrogram lanes use pyqtgraph's magma)"
ls "$ROOT"/dist/shotoku/_internal/pyqtgraph/colors/maps/magma.csv || fail "pyqtgraph's magma.csv is not in the bundle"

step "shotoku --version"
TIMEFORMAT='start-up and exit: %R s'
time "$APP" --version || fail "--version"

step "shotoku models"
"$APP" models || fail "models"

step "shotoku separate (oracle IRM on the demo song)"
DEMO=$ROOT/resources/demo
if [[ ! -f "$DEMO/mixture.flac" ]]; then
    echo "resources/demo/mixture.flac missing: making a 5 s synthetic song in $TMP/demo"
    DEMO=$TMP/demo
    "$PY" - "$DEMO" <<'PY' || fail "could not make the synthetic demo"
import sys
import numpy as np
sys.path.insert(0, ".")
from engine.audio import save_audio
folder = sys.argv[1]
t = np.arange(5 * 44100) / 44100
rng = np.random.default_rng(0)
stems = {
    name: (0.2 * np.sin(2 * np.pi * freq * t) * np.ones((2, 1)) + 0.02 * rng.standard_normal((2, t.size))).astype(np.float32)
    for name, freq in [("vocals", 440.0), ("drums", 100.0), ("bass", 55.0), ("other", 880.0)]
}
for name, samples in stems.items():
    save_audio(f"{folder}/{name}.flac", samples, 44100)
save_audio(f"{folder}/mixture.flac", sum(stems.values()), 44100)
PY
fi
start=$(date +%s)
"$APP" separate "$DEMO/mixture.flac" --model irm --reference "$DEMO" -o "$TMP/out" || fail "separate"
echo "separate: $(( $(date +%s) - start )) s"
"$PY" - "$DEMO/mixture.flac" "$TMP/out/mixture" <<'PY' || fail "the separated stems are wrong"
import sys
from pathlib import Path
import numpy as np
import soundfile as sf
mixture, rate = sf.read(sys.argv[1], dtype="float32")
stems = sorted(Path(sys.argv[2]).glob("*.wav"))
names = sorted(p.stem for p in stems)
assert names == ["bass", "drums", "other", "vocals"], names
total = 0
for path in stems:
    audio, stem_rate = sf.read(path, dtype="float32")
    assert stem_rate == rate and audio.shape == mixture.shape, (path, audio.shape, mixture.shape)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3, path
    total = total + audio
error = 10 * np.log10(np.sum(mixture**2) / max(np.sum((total - mixture) ** 2), 1e-20))
print(f"4 stems, {mixture.shape[0] / rate:.1f} s each; their sum matches the mixture at {error:.1f} dB SNR")
assert error > 20, error  # ratio masks sum to one: the stems must add back up to the mixture
PY

step "shotoku separate an .m4a (ffmpeg run from the frozen app)"
if command -v ffmpeg >/dev/null && [[ -f "$ROOT/resources/models/tiny/card.json" ]]; then
    ffmpeg -nostdin -v error -y -t 5 -i "$DEMO/mixture.flac" -c:a aac "$TMP/short.m4a" || fail "ffmpeg could not make the .m4a"
    "$APP" separate "$TMP/short.m4a" --model tiny --format flac -o "$TMP/out" || fail "separate .m4a"
    "$PY" - "$TMP/out/short" <<'PY' || fail "the stems of the .m4a are wrong"
import sys
from pathlib import Path
import soundfile as sf
infos = [sf.info(str(p)) for p in sorted(Path(sys.argv[1]).glob("*.flac"))]
assert len(infos) == 4 and all(4.9 < i.duration < 5.2 for i in infos), infos
print(f"4 stems of {infos[0].duration:.2f} s from the .m4a")
PY
else
    echo "skipped: needs ffmpeg on PATH and the 'tiny' test model"
fi

step "GUI starts offscreen, opens the demo song, plays it, and uses the bundled PortAudio"
# The app itself reports what it did when it took its screenshot (app/gui.py: SHOTOKU_SCREENSHOT_REPORT), so this
# waits for the app, not for a guessed number of seconds; `timeout` only catches a hang.
rm -f "$TMP/gui.png" "$TMP/gui.json"
start=$(date +%s)
# (JACK_DEFAULT_SERVER: not a JACK server that tests may be starting and stopping on this machine meanwhile.)
SHOTOKU_SCREENSHOT=$TMP/gui.png SHOTOKU_SCREENSHOT_REPORT=$TMP/gui.json SHOTOKU_SCREENSHOT_DELAY=10 \
    JACK_DEFAULT_SERVER=shotoku-smoke-no-such-server JACK_NO_START_SERVER=1 timeout 300 "$APP" >"$TMP/gui.log" 2>&1 && status=0 || status=$?
echo "GUI ran $(( $(date +%s) - start )) s, exit status $status"
if [[ $status -ne 0 || ! -s "$TMP/gui.json" ]]; then
    tail -n 40 "$TMP/gui.log" >&2
    fail "the GUI did not start, take its screenshot and quit by itself (status $status; 124: still running after 300 s)"
fi
grep -q "Traceback" "$TMP/gui.log" && { cat "$TMP/gui.log" >&2; fail "the GUI printed a traceback"; }
"$PY" - "$TMP/gui.json" "$ROOT/dist/shotoku/_internal" <<'PY' || fail "the GUI's report is wrong"
import json
import sys
from pathlib import Path
report = json.loads(Path(sys.argv[1]).read_text())
bundle = Path(sys.argv[2]).resolve()
print(json.dumps(report, indent=1))
assert report["saved"] and Path(report["screenshot"]).stat().st_size > 10_000, "no screenshot"
library = report["portaudio"]
assert library, f"PortAudio was not loaded: {report['portaudio_error']}"
assert Path(library).resolve().is_relative_to(bundle), f"PortAudio came from {library}, not from the bundle {bundle}"
assert report["song"], "the demo song was not opened"
assert report["playing"], "the demo song does not play at once"
print(f"PortAudio loaded from the bundle: {library}")
PY
if [[ -s "$TMP/gui.log" ]]; then echo "GUI output:"; tail -n 20 "$TMP/gui.log"; fi

echo
echo "build.sh: all smoke tests passed"
