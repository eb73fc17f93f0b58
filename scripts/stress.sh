#!/usr/bin/env bash
# Keep the CPU cores busy, as another program on a musician's machine would, until told to stop.
#
#   scripts/stress.sh [N]        N busy-loop load processes (default: one per core), until SIGINT/SIGTERM/SIGHUP
#   SHOTOKU_LOAD_SECONDS=S       stop by itself after S seconds (default: run until a signal)
#
# Uses `stress-ng --cpu N` when it is installed (scripts/setup.sh installs it), else N shell busy loops. Prints
# one line "stress: load PIDs: ..." (stdout) once the load runs; every load process is stopped by its PID when
# this script gets a signal or its time is up. The load runs at this script's own niceness: run it under the same
# `nice` as the program it competes with (scripts/test_busy.sh does).
set -euo pipefail

n=${1:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 2)}
case $n in '' | *[!0-9]* | 0) echo "stress: N must be a positive integer, got '$n'" >&2; exit 2 ;; esac
seconds=${SHOTOKU_LOAD_SECONDS:-0}
case $seconds in '' | *[!0-9]*) echo "stress: SHOTOKU_LOAD_SECONDS must be whole seconds" >&2; exit 2 ;; esac

pids=()
stop() {
  trap - INT TERM HUP EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
  echo "stress: load stopped" >&2
}
trap 'stop; exit 0' INT TERM HUP
trap stop EXIT

if command -v stress-ng >/dev/null 2>&1; then
  limit=()
  [ "$seconds" -gt 0 ] && limit=(--timeout "${seconds}s")
  stress-ng --cpu "$n" --cpu-load 100 --quiet "${limit[@]}" &
  pids+=("$!")
  sleep 0.3  # its workers: listed for the record (stopping the parent stops them)
  workers=$(pgrep -P "${pids[0]}" 2>/dev/null | tr '\n' ' ' || true)
  echo "stress: load PIDs: ${pids[0]} (stress-ng --cpu $n; workers ${workers:-starting})"
else
  for _ in $(seq "$n"); do
    sh -c 'trap "exit 0" TERM; while :; do :; done' &
    pids+=("$!")
  done
  echo "stress: load PIDs: ${pids[*]} ($n shell busy loops; stress-ng not installed)"
  if [ "$seconds" -gt 0 ]; then
    sleep "$seconds" &
    pids+=("$!")  # the first to end ends the wait below: the loops are then stopped like on a signal
  fi
fi

# Until a signal, or until the first of them ends (the time limit): the EXIT trap then stops the rest.
if [ "${BASH_VERSINFO[0]}" -ge 5 ]; then wait -n "${pids[@]}" 2>/dev/null || true; else wait "${pids[-1]}" || true; fi
