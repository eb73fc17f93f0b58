#!/usr/bin/env bash
# Start a JACK server on the dummy driver (real-time pacing without a sound card) and print its PID.
# Usage: scripts/start_jack.sh [RATE] [PERIOD]      Stop it with: kill <PID>
# Needs jackd2 (Debian/Ubuntu: apt-get install -y --no-install-recommends jackd2 libportaudio2).
set -euo pipefail
rate="${1:-44100}"
period="${2:-512}"
command -v jackd >/dev/null || { echo "start_jack.sh: jackd is not installed (apt-get install jackd2)" >&2; exit 1; }
JACK_NO_AUDIO_RESERVATION=1 nohup jackd --no-realtime -d dummy -r "$rate" -p "$period" >/tmp/jackd-dummy.log 2>&1 &
pid=$!
if ! jack_wait -w -t 10 >/dev/null; then
    echo "start_jack.sh: jackd did not come up; see /tmp/jackd-dummy.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
fi
echo "$pid"
