#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 20), starting from
# the committed corpus in fuzz/corpus/TARGET. New inputs go to a scratch
# directory, so the committed corpus changes only when you merge on purpose:
#
#   fuzz/run.sh            # CI: about a minute in all
#   fuzz/run.sh 3600       # a long run: an hour per target
#   cargo +nightly fuzz cmin TARGET   # (in fuzz/) fold a long run's finds back in
#
# A crash stops the run with libFuzzer's report and the input saved under
# fuzz/artifacts/TARGET/; reproduce with `cargo +nightly fuzz run TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  echo "fuzz: $target for ${seconds}s"
  log="$scratch/$target.log"
  if ! cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log"
done
