#!/usr/bin/env bash
# Runs cat_pipe with stdin and stdout each a pipe or a regular file and
# checks that the bytes come out unchanged (sha256) and that it exits 0;
# that an empty stdin gives an empty stdout; that a reader going away gives
# exit 1 and a message, never a death by SIGPIPE. With MAX_RSS_MIB (native
# runs, /usr/bin/time) it also copies 64 times MIB through pipes and checks
# that the peak memory stayed under MAX_RSS_MIB.
#   run_cat_pipe.sh "EMULATOR" PROGRAM MIB [MAX_RSS_MIB]
# EMULATOR is empty natively and "wine" for the Windows build: there stdin
# and stdout are Linux pipes or files behind Windows handles that were not
# opened for overlapped I/O.
set -u -o pipefail
emulator=$1 program=$2 mib=$3 max_rss=${4:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
head -c $((mib * 1048576)) /dev/urandom >"$dir/in"
want=$(sha256sum <"$dir/in" | cut -d' ' -f1)
# ASan's quarantine would hold freed memory back and hide what is in use.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0"

copy() { # how stdin-stdout are connected
  # shellcheck disable=SC2086
  case $1 in
  pipe-pipe) cat "$dir/in" | $emulator "$program" | cat >"$dir/out" ;;
  file-file) $emulator "$program" <"$dir/in" >"$dir/out" ;;
  file-pipe) $emulator "$program" <"$dir/in" | cat >"$dir/out" ;;
  pipe-file) cat "$dir/in" | $emulator "$program" >"$dir/out" ;;
  esac
}

for how in pipe-pipe file-file file-pipe pipe-file; do
  copy "$how" || { echo "$how: exit status $?"; exit 1; }
  got=$(sha256sum <"$dir/out" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "$how: the bytes differ"; exit 1; }
  echo "$how: $mib MiB copied"
done

# shellcheck disable=SC2086
$emulator "$program" </dev/null >"$dir/out" || { echo "empty: failed"; exit 1; }
[ -s "$dir/out" ] && { echo "empty: output from no input"; exit 1; }

# The reader goes away: exit 1 (not 141, SIGPIPE) with a message.
# shellcheck disable=SC2086
$emulator "$program" <"$dir/in" 2>"$dir/err" | head -c 10 >/dev/null
rc=${PIPESTATUS[0]}
[ "$rc" = 1 ] || { echo "reader gone: exit status $rc"; cat "$dir/err"; exit 1; }
grep -q "^cat_pipe: write: " "$dir/err" ||
  { echo "reader gone: no message"; cat "$dir/err"; exit 1; }
echo "reader gone: $(tr -d '\r' <"$dir/err")"

if [ -n "$max_rss" ]; then
  for _ in $(seq 64); do cat "$dir/in"; done |
    /usr/bin/time -f %M -o "$dir/rss" "$program" >/dev/null ||
    { echo "$((64 * mib)) MiB: failed"; exit 1; }
  rss=$(($(tail -n1 "$dir/rss") / 1024))
  echo "$((64 * mib)) MiB through pipes, peak memory $rss MiB"
  [ "$rss" -le "$max_rss" ] || { echo "more than $max_rss MiB"; exit 1; }
fi
