#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/) for longer than the test command's smoke runs.
#
#   scripts/fuzz.sh [SECONDS]     # each target, default 60
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain it builds with
# RUSTC_BOOTSTRAP=1 and no sanitizer. A crash is saved under fuzz/artifacts/<target>/: copy
# it into fuzz/regressions/<target>/, where the test command replays it, and fix the code.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-60}
export RUSTC_BOOTSTRAP=1
for target in request_decode batch_validation; do
  echo "== $target for ${SECONDS_EACH}s"
  cargo fuzz run --sanitizer none "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536
done
