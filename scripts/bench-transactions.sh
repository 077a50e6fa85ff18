#!/usr/bin/env bash
# The transaction figures of docs/benchmarks.md, measured in one run on one broker
# (defaults): 1 KB records produced with acks=all, plain (idempotence off, as `sluice bench`
# sends) and transactional with RECORDS_PER_TXN records per transaction, each RUNS times,
# alternating, with 1 and 4 producers over 4 partitions. Prints a table row per producer count.
#
#   cargo build --release && scripts/bench-transactions.sh     # RUNS=3, RECORDS=500000
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/sluice}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-500000}
RECORDS_PER_TXN=${RECORDS_PER_TXN:-100}
DATA=${DATA:-/tmp/sluice-txn-bench}
PORT=${PORT:-19194}
BOOT=127.0.0.1:$PORT
OUT=$(mktemp -d)

rm -rf "$DATA" && mkdir -p "$DATA" && sync && sleep 3
"$BIN" serve --data-dir "$DATA" --listen "$BOOT" --http-listen off >"$OUT/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER; wait $BROKER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do
  grep -q "listener ready" "$OUT/broker.log" && break
  sleep 0.05
done

bench() { "$BIN" bench produce --bootstrap "$BOOT" --progress-interval 0 --output json \
  --partitions 4 --record-size 1024 --records "$RECORDS" "$@"; }
# A figure of the summary, by its path under "produce" (a.b for nested fields).
field() { python3 -c "import json,sys,functools; v=functools.reduce(lambda d,k: d[k], '$1'.split('.'), json.load(sys.stdin)['produce']); print(round(v, 2))"; }

# The first transaction creates __transaction_state (50 partitions): not counted.
RECORDS=1000 bench --topic warm --transaction-records 100 >/dev/null

echo "| producers | acks=all records/s | transactional records/s ($RECORDS_PER_TXN per transaction) | p50 / p99 ms plain | p50 / p99 ms transactional |"
echo "|---|---|---|---|---|"
for producers in 1 4; do
  plain=() txn=() plain_lat=() txn_lat=()
  for run in $(seq "$RUNS"); do
    p=$(bench --topic "plain-$producers-$run" --producers "$producers")
    t=$(bench --topic "txn-$producers-$run" --producers "$producers" --transaction-records "$RECORDS_PER_TXN")
    plain+=("$(echo "$p" | field records_per_sec)")
    txn+=("$(echo "$t" | field records_per_sec)")
    plain_lat+=("$(echo "$p" | field latency_ms.p50)/$(echo "$p" | field latency_ms.p99)")
    txn_lat+=("$(echo "$t" | field latency_ms.p50)/$(echo "$t" | field latency_ms.p99)")
  done
  join() { local out=$1; shift; for x in "$@"; do out="$out, $x"; done; echo "$out"; }
  echo "| $producers | $(join "${plain[@]}") | $(join "${txn[@]}") | $(join "${plain_lat[@]}") | $(join "${txn_lat[@]}") |"
done
