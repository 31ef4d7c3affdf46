#!/usr/bin/env bash
# Starts the signals sample, sends it SIGNAL once it is ready, and checks
# that it printed the signal and exited 0.
#   run_signals.sh "EMULATOR" PROGRAM SIGNAL NAME
set -u
emulator=$1 program=$2 sig=$3 name=$4
out=$(mktemp)
trap 'rm -f "$out"; [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null' EXIT
# shellcheck disable=SC2086
$emulator "$program" >"$out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  grep -q "^pid " "$out" && break
  kill -0 "$pid" 2>/dev/null || { echo "exited early:"; cat "$out"; exit 1; }
  sleep 0.1
done
kill "-$sig" "$pid"
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && { echo "still running after SIG$sig"; exit 1; }
wait "$pid"
rc=$?
pid=
cat "$out"
[ "$rc" = 0 ] || { echo "exit status $rc"; exit 1; }
grep -q "got signal $name: exit" "$out" || { echo "no 'got signal $name'"; exit 1; }
