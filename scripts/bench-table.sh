#!/usr/bin/env bash
# The figures of docs/benchmarks.md. Each configuration runs RUNS times, each time against a
# fresh broker on a fresh data directory; the table shows the median run (by throughput).
#
#   cargo build --release && scripts/bench-table.sh            # RUNS=3 by default
#
# Needs nothing but the sluice binary and python3 (for the medians).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/sluice}
RUNS=${RUNS:-3}
DATA=${DATA:-/tmp/sluice-bench-data}
PORT=${PORT:-19192}
BOOT=127.0.0.1:$PORT
OUT=$(mktemp -d)
BROKER=

start_broker() {
  rm -rf "$DATA" && mkdir -p "$DATA"
  # Deleting the last run's gigabytes makes the disk discard them; let that pass first,
  # or the next run's fsyncs queue behind it (seen as 100 ms stalls on a virtual disk).
  sync && sleep 3
  "$BIN" serve --data-dir "$DATA" --listen "$BOOT" >"$OUT/broker.log" 2>&1 &
  BROKER=$!
  for _ in $(seq 100); do
    grep -q "listener ready" "$OUT/broker.log" && return
    sleep 0.05
  done
  echo "broker did not start" >&2
  exit 1
}

stop_broker() {
  kill "$BROKER" && wait "$BROKER" || true
}
trap stop_broker EXIT

bench() { "$BIN" bench --bootstrap "$BOOT" --progress-interval 0 --output json "$@"; }

# Prints one table row from the JSON summaries given: the median run by records/s, or by
# p99 latency for the latency rows (BY=p99), with every run's figure in brackets.
row() {
  local label=$1 side=$2
  shift 2
  python3 - "$label" "$side" "${BY:-throughput}" "$@" <<'PY'
import json, sys
label, side, by, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
runs = [json.load(open(f)) for f in files]
if by == "p99":
    runs.sort(key=lambda r: r[side]["latency_ms"]["p99"])
else:
    runs.sort(key=lambda r: r[side]["records_per_sec"])
m = runs[len(runs) // 2][side]
lat = m["latency_ms"] or {}
fmt = lambda k: f'{lat[k]:.2f}' if k in lat else "-"
if by == "p99":
    p99s = ", ".join(f'{r[side]["latency_ms"]["p99"]:.2f}' for r in runs)
    print(f'| {label} | {m["records_per_sec"]:,.0f} | {m["mb_per_sec"]:.0f} | {fmt("p50")} | {fmt("p99")} ({p99s}) | {fmt("p99_9")} | {fmt("max")} |')
else:
    rates = ", ".join(f'{r[side]["mb_per_sec"]:.0f}' for r in runs)
    print(f'| {label} | {m["records_per_sec"]:,.0f} | {m["mb_per_sec"]:.0f} ({rates}) | {fmt("p50")} | {fmt("p99")} | {fmt("p99_9")} | {fmt("max")} |')
PY
}

header() {
  echo
  if [[ ${BY:-} == p99 ]]; then
    echo "| $1 | records/s | MB/s | p50 ms | p99 ms (runs) | p99.9 ms | max ms |"
  else
    echo "| $1 | records/s | MB/s (runs) | p50 ms | p99 ms | p99.9 ms | max ms |"
  fi
  echo "|---|---|---|---|---|---|---|"
}

produce_row() {
  local label=$1
  shift
  for r in $(seq "$RUNS"); do
    start_broker
    bench produce --topic t "$@" >"$OUT/p$r.json"
    stop_broker
  done
  row "$label" produce "$OUT"/p*.json
  rm -f "$OUT"/p*.json
}

# ONLY=produce|partitions|consume|latency runs one section.
want() { [[ -z ${ONLY:-} || ${ONLY} == "$1" ]]; }

if want produce; then
header "produce (acks latency)"
for size in 100 1024; do
  records=$((size == 100 ? 5000000 : 2000000))
  for acks in 1 all; do
    for parts in 1 8; do
      produce_row "${size} B, acks=$acks, $parts partition(s)" --record-size $size \
        --records $records --acks $acks --partitions $parts
    done
  done
done

fi

if want partitions; then
header "produce, 1 KB, acks=all, 256 KB batches, by partitions"
for parts in 1 10 100 1000; do
  produce_row "$parts partitions" --records 1000000 --partitions $parts --batch-size 262144
done
fi

if want consume; then
header "consume from a warm log (1 KB records)"
start_broker
bench produce --topic c --records 2000000 >/dev/null
for r in $(seq "$RUNS"); do bench consume --topic c >"$OUT/c$r.json"; done
stop_broker
row "2,000,000 records, 1 partition" consume "$OUT"/c*.json
fi

if want latency; then
BY=p99
header "end-to-end, 1 KB, acks=all, linger 1 ms"
# 10,000 records/s (the target), then 10%, 50% and 90% of the peak of 1 KB acks=all above.
for rate in ${RATES:-10000 36000 181000 327000}; do
  for r in $(seq "$RUNS"); do
    start_broker
    bench end-to-end --topic e --rate $rate --duration 10 --linger-ms 1 >"$OUT/e$r.json"
    stop_broker
  done
  row "$rate records/s" consume "$OUT"/e*.json
  rm -f "$OUT"/e*.json
done
fi
