#!/usr/bin/env bash
# Figures for docs/benchmarks.md "Cluster": `sluice bench` against one broker and against a
# three-broker cluster (etcd, replication factor 1) on this machine, then the time from a
# controller's SIGKILL to the next successful CreateTopics.
#
#   scripts/bench-cluster.sh [SECONDS] [RUNS]     # default 15 s per run, 3 runs each
#
# Needs etcd (Debian's etcd-server) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}
RUNS=${2:-3}
BIN=target/release/sluice
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

start_etcd() {
  etcd --data-dir "$WORK/etcd" --listen-client-urls http://127.0.0.1:23790 \
    --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
    >"$WORK/etcd.log" 2>&1 &
  PIDS+=($!)
  until curl -fs http://127.0.0.1:23790/health >/dev/null 2>&1; do sleep 0.1; done
}

# start_broker ID [etcd args...]; sets BROKER_PID
start_broker() {
  local id=$1; shift
  $BIN serve --node-id "$id" --listen "127.0.0.1:1990$id" --data-dir "$WORK/data-$id" "$@" \
    >"$WORK/broker-$id.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  until (exec 3<>"/dev/tcp/127.0.0.1/1990$id") 2>/dev/null; do sleep 0.05; done
}

bench() {
  $BIN bench produce --bootstrap 127.0.0.1:19901 --topic "bench-$1" --partitions 12 \
    --producers 3 --duration "$SECS" --progress-interval 0 --output json |
    python3 -c '
import json, sys
r = json.load(sys.stdin)["produce"]
print("%.0f rec/s  %.1f MB/s  p99 %s ms" % (r["records_per_sec"], r["mb_per_sec"], r["latency_ms"]["p99"]))'
}

stop_all() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  rm -rf "$WORK"/data-* "$WORK/etcd"
  sleep 2
}

echo "== one broker (embedded), 12 partitions, 1 KB records, acks=all, 3 producers"
for run in $(seq "$RUNS"); do
  start_broker 1
  bench "single-$run"
  stop_all
done

echo "== three brokers (etcd, RF 1), 12 partitions, 1 KB records, acks=all, 3 producers"
for run in $(seq "$RUNS"); do
  start_etcd
  ETCD=(--etcd http://127.0.0.1:23790 --cluster-name bench)
  for id in 1 2 3; do start_broker $id "${ETCD[@]}"; done
  bench "cluster-$run"
  stop_all
done

echo "== controller SIGKILL -> next successful CreateTopics (broker.session.timeout.ms default)"
start_etcd
declare -A BROKER_PIDS
for id in 1 2 3; do start_broker $id --etcd http://127.0.0.1:23790 --cluster-name failover; BROKER_PIDS[$id]=$BROKER_PID; done
sleep 1
controller=$($BIN cluster status --bootstrap 127.0.0.1:19901 --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["controller_id"])')
survivor=$(( controller % 3 + 1 ))
start=$(date +%s.%N)
kill -9 "${BROKER_PIDS[$controller]}"
until $BIN bench produce --bootstrap "127.0.0.1:1990$survivor" --topic after-kill --records 1 \
    --progress-interval 0 >/dev/null 2>&1; do sleep 0.1; done
end=$(date +%s.%N)
echo "controller $controller killed; CreateTopics through broker $survivor succeeded after $(python3 -c "print(f'{$end-$start:.2f}')") s"
