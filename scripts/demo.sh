#!/usr/bin/env bash
# The README's first command: install what is missing, build, run the demos.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages cmake ninja-build gcc g++ make pkg-config
cmake --preset release >/dev/null
cmake --build --preset release
bin=build/release/samples
echo "==> hello_world"
"$bin/hello_world"
echo "==> an echo server, the callback client and the task client"
bash tests/samples/run_echo.sh "" "$bin/echo_server" "$bin/echo_client" \
  tcp 127.0.0.1 --size 100000 --count 100
bash tests/samples/run_echo.sh "" "$bin/echo_server" "$bin/task_echo_client" \
  tcp 127.0.0.1 --size 100000 --count 100
echo "==> display_date (five seconds)"
"$bin/display_date"
