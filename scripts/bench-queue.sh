#!/usr/bin/env bash
# The queue figures of docs/benchmarks.md, measured in one run: one broker (defaults, so
# every state write is fsynced), one topic of one partition, read by plain fetches (as a
# consumer group member reads) and as a queue by 1 and 4 share consumers, each RUNS times,
# alternating, on the same topic. Prints a table row per size.
#
#   cargo build --release && scripts/bench-queue.sh        # RUNS=3, RECORDS=2000000
#   SHARE_ARGS="--share-max-records 2000" scripts/bench-queue.sh   # bigger polls
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/sluice}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-2000000}
DATA=${DATA:-/tmp/sluice-queue-bench}
PORT=${PORT:-19193}
BOOT=127.0.0.1:$PORT
OUT=$(mktemp -d)
SHARE_ARGS=${SHARE_ARGS:-}

rm -rf "$DATA" && mkdir -p "$DATA" && sync && sleep 3
"$BIN" serve --data-dir "$DATA" --listen "$BOOT" >"$OUT/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER; wait $BROKER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do
  grep -q "listener ready" "$OUT/broker.log" && break
  sleep 0.05
done

bench() { "$BIN" bench --bootstrap "$BOOT" --progress-interval 0 --output json "$@"; }
rate() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["consume"]["records_per_sec"]))'; }

# The first share group creates __share_group_state (50 partitions): not counted.
bench produce --topic warm --records 1000 --record-size 100 >/dev/null
bench share --topic warm >/dev/null

echo "| records | consume (plain fetches) | share, 1 consumer | share, 4 consumers |"
echo "|---|---|---|---|"
for size in 1024 100; do
  topic=q$size
  bench produce --topic "$topic" --records "$RECORDS" --record-size "$size" >/dev/null
  # Let the produced gigabytes reach the disk: a state write's fsync would queue behind them.
  sync && sleep 5
  consume=() one=() four=()
  for _ in $(seq "$RUNS"); do
    consume+=("$(bench consume --topic "$topic" | rate)")
    # shellcheck disable=SC2086 # SHARE_ARGS is a list of options
    one+=("$(bench share --topic "$topic" --consumers 1 $SHARE_ARGS | rate)")
    # shellcheck disable=SC2086
    four+=("$(bench share --topic "$topic" --consumers 4 $SHARE_ARGS | rate)")
  done
  join() { local out=$1; shift; for x in "$@"; do out="$out, $x"; done; echo "$out"; }
  echo "| $RECORDS x $size B | $(join "${consume[@]}") | $(join "${one[@]}") | $(join "${four[@]}") |"
done
