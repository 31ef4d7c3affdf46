#!/usr/bin/env bash
# The README's second command: the whole test suite. Native with ASan+UBSan
# (once per Unix poller, plus the task tests over ucontext), then cross-built
# for Windows and run under Wine (iocp, plus the task tests over Fibers),
# then the task switch and the loop core cross-built for aarch64 and run
# under qemu-user. Installs what is missing first; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

JOBS=${JOBS:-$(nproc)}
ensure_packages $NATIVE_PACKAGES $WINDOWS_PACKAGES $ARM_PACKAGES

logs=build/test-logs
mkdir -p "$logs"
started=$(date +%s)

echo "==> native: configure and build (ASan + UBSan)"
cmake --preset asan >/dev/null
cmake --build --preset asan
echo "==> native: tests (every poller)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan -j"$JOBS" 2>&1 | tee "$logs/native.log"

echo "==> windows: configure and build (mingw-w64)"
cmake --preset mingw >/dev/null
cmake --build --preset mingw
echo "==> windows: tests under Wine"
export WINEDEBUG=-all
export WINEPREFIX=${WINEPREFIX:-$HOME/.wine-proa}
# A persistent wineserver makes each test's start ~0.2 s instead of 1-3 s.
# wineboot starts Wine's background services now, detached from any pipe:
# started by the first test instead, they would inherit ctest's output pipe
# and keep it open until ctest gives up on the test.
# The server needs the prefix folder to exist; wineboot fills it in.
mkdir -p "$WINEPREFIX"
wineserver -p
trap 'wineserver -k 2>/dev/null || true' EXIT
wineboot -i </dev/null >/dev/null 2>&1
ctest --preset mingw -j"$JOBS" 2>&1 | tee "$logs/windows.log"

echo "==> aarch64: cross build; the task switch and the loop under qemu-user"
cmake --preset aarch64 >/dev/null
cmake --build --preset aarch64
ctest --preset aarch64 -j"$JOBS" -R '[.](Task|Loop|Future|Timer)[A-Za-z]*[.]' 2>&1 |
  tee "$logs/aarch64.log"

# One closing line over every run (ctest already failed the script above
# if any test failed, through pipefail). Skipped tests (each names its
# reason) are counted apart, never as passed.
count() { grep -Eo "tests passed, [0-9]+ tests failed out of [0-9]+" "$1" | tail -1; }
total() { count "$1" | awk '{print $NF}'; }
failed() { count "$1" | awk '{print $3}'; }
skipped() { grep -Ec '^[[:space:]]*[0-9]+ - .*\(Skipped\)$' "$1" || true; }
n=0 f=0 s=0
for run in native windows aarch64; do
  n=$((n + $(total "$logs/$run.log")))
  f=$((f + $(failed "$logs/$run.log")))
  s=$((s + $(skipped "$logs/$run.log")))
  echo "$run: $(count "$logs/$run.log"), $(skipped "$logs/$run.log") skipped"
done
echo "wall time: $(($(date +%s) - started)) s"
echo "$((n - f - s)) passed, $f failed, $s skipped"
