#!/usr/bin/env bash
# Runs echo_server, points a client at the port it prints, then stops the
# server with SIGINT and checks that everything exited 0.
#   run_echo.sh "EMULATOR" SERVER CLIENT PROTO HOST [CLIENT ARGS...]
# PROTO is tcp, udp, unix, pipe, or several joined by '+' (tcp+udp): the
# server is started with one flag per protocol (printing one line each) and
# the client runs once per protocol, with the same CLIENT ARGS. HOST is for
# tcp and udp; unix gets a socket path in a temporary directory, pipe a
# name (that path natively, a pipe name under Wine).
# EMULATOR is empty natively and "wine" for the Windows build (Wine turns
# SIGINT into Ctrl-C for a console program).
# Exits 77 (a skip) where the build cannot serve PROTO: unix under Wine
# (Wine 8 has no AF_UNIX).
set -u
emulator=$1 server=$2 client=$3 protos=$4 host=$5
shift 5
out=$(mktemp)
dir=$(mktemp -d)
trap 'rm -f "$out"; rm -rf "$dir"; [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null' EXIT

IFS=+ read -r -a list <<<"$protos"
flags=()
for proto in "${list[@]}"; do
  case $proto in
  tcp | udp) flags+=("--$proto" "$host:0") ;;
  unix)
    if [ -n "$emulator" ]; then
      echo "skipped: Wine has no AF_UNIX"
      exit 77
    fi
    flags+=(--unix "$dir/echo.sock")
    ;;
  pipe)
    if [ -n "$emulator" ]; then
      flags+=(--pipe "proa-echo-$$")
    else
      flags+=(--pipe "$dir/echo-pipe.sock")
    fi
    ;;
  *) echo "unknown protocol '$proto'"; exit 2 ;;
  esac
done

# shellcheck disable=SC2086
$emulator "$server" "${flags[@]}" >"$out" 2>&1 &
pid=$!
ready() {
  local proto
  for proto in "${list[@]}"; do
    grep -q "^listening on $proto " "$out" || return 1
  done
}
for _ in $(seq 1 300); do
  ready && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "server died:"; cat "$out"; exit 1
  fi
  sleep 0.1
done
ready || { echo "server never said where it listens:"; cat "$out"; exit 1; }
[ "$(grep -c '^listening on' "$out")" = "${#list[@]}" ] ||
  { echo "not one line per protocol:"; cat "$out"; exit 1; }

for proto in "${list[@]}"; do
  [ "$(grep -c "^listening on $proto " "$out")" = 1 ] ||
    { echo "more than one $proto line"; cat "$out"; exit 1; }
  line=$(grep -m1 "^listening on $proto " "$out" | tr -d '\r')
  addr=${line#"listening on $proto "}
  echo "server: $line"
  # shellcheck disable=SC2086
  $emulator "$client" "--$proto" "$addr" "$@"
  rc=$?
  [ "$rc" = 0 ] || { echo "$proto client failed ($rc)"; cat "$out"; exit 1; }
done

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
