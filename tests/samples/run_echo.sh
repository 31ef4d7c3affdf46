#!/usr/bin/env bash
# Runs echo_server, points a client at the port it prints, then stops the
# server with SIGINT and checks that everything exited 0.
#   run_echo.sh "EMULATOR" SERVER CLIENT PROTO HOST [CLIENT ARGS...]
# EMULATOR is empty natively and "wine" for the Windows build (Wine turns
# SIGINT into Ctrl-C for a console program).
set -u
emulator=$1 server=$2 client=$3 proto=$4 host=$5
shift 5
out=$(mktemp)
trap 'rm -f "$out"; [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null' EXIT

# shellcheck disable=SC2086
$emulator "$server" "--$proto" "$host:0" >"$out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  grep -q "^listening on $proto " "$out" && break
  kill -0 "$pid" 2>/dev/null || { echo "server died:"; cat "$out"; exit 1; }
  sleep 0.1
done
line=$(grep -m1 "^listening on $proto " "$out" | tr -d '\r')
[ -n "$line" ] || { echo "server never said where it listens:"; cat "$out"; exit 1; }
[ "$(grep -c '^listening on' "$out")" = 1 ] || { echo "more than one line"; exit 1; }
addr=${line#listening on $proto }
echo "server: $line"

# shellcheck disable=SC2086
$emulator "$client" "--$proto" "$addr" "$@"
rc=$?
[ "$rc" = 0 ] || { echo "client failed ($rc)"; cat "$out"; exit 1; }

kill -INT "$pid"
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  echo "server ignored SIGINT"
  exit 1
fi
wait "$pid"
src=$?
pid=
[ "$src" = 0 ] || { echo "server exited $src:"; cat "$out"; exit 1; }
echo "server stopped cleanly"
