#!/usr/bin/env bash
# Runs fuzz targets for a time budget each (seconds, default 60), one after
# the other: all of them, or those named after the budget. Uses the nightly toolchain when installed, else stable with
# RUSTC_BOOTSTRAP and no sanitizer.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(reference engine review)
if cargo +nightly --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=address
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  sanitizer=none
fi
# The fuzz workspace builds from its committed lock file: a stale one fails
# here rather than being rewritten (cargo fuzz has no --locked of its own).
cargo fetch --locked
lock=$(mktemp)
cp Cargo.lock "$lock"
trap 'rm -f "$lock"' EXIT
for target in "${targets[@]}"; do
  # A scratch copy of the seed corpus: new inputs do not land in the repo.
  work=$(mktemp -d)
  cp -r "corpus/$target/." "$work/"
  echo "== fuzzing $target for ${seconds}s"
  log="$work.log"
  status=0
  "${fuzz[@]}" run --sanitizer "$sanitizer" "$target" "$work" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss|SUMMARY|==[0-9]+==ERROR)' "$log" || tail -20 "$log"
  rm -rf "$work" "$log"
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
cmp -s Cargo.lock "$lock" || { echo "fuzz/Cargo.lock changed during the run: commit it current" >&2; exit 1; }
