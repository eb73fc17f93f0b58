#!/usr/bin/env bash
# Run the tests while every core is kept busy by another process (scripts/stress.sh), as on a musician's machine
# that is doing other work. The load is stopped at the end whatever happens (failure, Ctrl-C, SIGTERM).
#
#   scripts/test_busy.sh                    the README's test command (make test) under load
#   scripts/test_busy.sh PYTEST_ARGS...     .venv/bin/python -m pytest PYTEST_ARGS... under load
#   SHOTOKU_LOAD=N                          load processes (default: one per core)
#   SHOTOKU_BUSY_RUNS=K                     run K times in a row, stopping at the first failure (default 1)
#
# The load runs at this script's niceness, so `nice -n 10 scripts/test_busy.sh ...` makes the tests and the load
# compete as equals. Exit status: the tests' (the first failing run's).
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}

runs=${SHOTOKU_BUSY_RUNS:-1}
case $runs in '' | *[!0-9]* | 0) echo "test_busy: SHOTOKU_BUSY_RUNS must be a positive integer" >&2; exit 2 ;; esac

load_pid=""
test_pid=""
stop_tests() {  # on a signal: the tests run in the background (so the trap runs at once), stop them too
  if [ -n "$test_pid" ]; then
    kill -TERM "$test_pid" 2>/dev/null || true
    wait "$test_pid" 2>/dev/null || true
  fi
}
stop_load() {
  if [ -n "$load_pid" ]; then
    kill -TERM "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
    load_pid=""
  fi
}
trap stop_load EXIT
trap 'stop_tests; stop_load; exit 130' INT
trap 'stop_tests; stop_load; exit 143' TERM
trap 'stop_tests; stop_load; exit 129' HUP

bash scripts/stress.sh ${SHOTOKU_LOAD:+"$SHOTOKU_LOAD"} &
load_pid=$!
sleep 1  # the load is running (stress.sh has printed its PIDs)
if ! kill -0 "$load_pid" 2>/dev/null; then
  echo "test_busy: the load did not start" >&2
  exit 1
fi

status=0
for run in $(seq "$runs"); do
  echo "== test_busy: run $run of $runs, under load (PID $load_pid)"
  if [ $# -eq 0 ]; then
    make test &
  else
    .venv/bin/python -m pytest "$@" &
  fi
  test_pid=$!
  wait "$test_pid" || status=$?
  test_pid=""
  if [ "$status" -ne 0 ]; then
    echo "== test_busy: run $run failed (exit $status)"
    break
  fi
done
stop_load
exit "$status"
