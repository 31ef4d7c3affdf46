#!/bin/sh
# Builds the proa-versus-libuv benchmarks (release, no sanitizers) in
# build/bench and runs them; the results come out as Markdown on stdout.
# Arguments go to proa_bench (--rounds N, --duration S, --idle N, ...).
# In order: TCP echo, idle connections, UDP ping-pong and pummel, tasks.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build/bench"

generator=""
if command -v ninja >/dev/null 2>&1; then
  generator="-G Ninja"
fi

# Progress goes to stderr so that stdout holds only the tables.
# shellcheck disable=SC2086 # $generator is empty or two words on purpose
cmake -S "$root" -B "$build" $generator -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS= -DPROA_BUILD_BENCH=ON -DPROA_BUILD_TESTS=OFF \
  -DPROA_BUILD_SAMPLES=OFF -DPROA_BUILD_SHARED=OFF >&2
cmake --build "$build" --target proa_bench -j "$(nproc 2>/dev/null || echo 2)" >&2

# The driver bounds every step itself; this is only a last resort.
exec timeout 900 "$build/tests/bench/proa_bench" "$@"
