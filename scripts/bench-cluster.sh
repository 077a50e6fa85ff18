#!/usr/bin/env bash
# Figures for docs/benchmarks.md "Cluster": `sluice bench` against one broker and against a
# three-broker cluster (etcd) at replication factor 1 and 3, end-to-end latency at 10,000
# records/s at RF 3, the time from a controller's SIGKILL to the next successful
# CreateTopics, and from a partition leader's SIGKILL to the first acknowledged produce on its
# successor (10 kills).
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

# bench NAME [RF]
bench() {
  $BIN bench produce --bootstrap 127.0.0.1:19901 --topic "bench-$1" --partitions 12 \
    --replication-factor="${2:--1}" --producers 3 --duration "$SECS" --progress-interval 0 --output json |
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

echo "== three brokers (etcd, RF 3), 12 partitions, 1 KB records, acks=all, 3 producers"
for run in $(seq "$RUNS"); do
  start_etcd
  ETCD=(--etcd http://127.0.0.1:23790 --cluster-name bench)
  for id in 1 2 3; do start_broker $id "${ETCD[@]}"; done
  bench "rf3-$run" 3
  stop_all
done

echo "== three brokers (etcd, RF 3), end to end at 10,000 records/s, 1 KB records, 12 partitions"
start_etcd
for id in 1 2 3; do start_broker $id --etcd http://127.0.0.1:23790 --cluster-name e2e; done
# Created first, so the figures are of a running cluster, not of followers picking up a new topic.
$BIN bench produce --bootstrap 127.0.0.1:19901 --topic e2e --partitions 12 --replication-factor 3 \
  --records 1 --progress-interval 0 >/dev/null
sleep 2
$BIN bench end-to-end --bootstrap 127.0.0.1:19901 --topic e2e --partitions 12 --replication-factor 3 \
  --rate 10000 --duration "$SECS" --progress-interval 0 --output json |
  python3 -c '
import json, sys
r = json.load(sys.stdin)["consume"]
l = r["latency_ms"]
print("end to end: p50 %s ms  p99 %s ms  (%.0f rec/s consumed)" % (l["p50"], l["p99"], r["records_per_sec"]))'
stop_all

echo "== partition leader SIGKILL -> first acknowledged produce on its successor (RF 3, broker.session.timeout.ms=3000)"
start_etcd
printf '"broker.session.timeout.ms" = 3000\n' >"$WORK/fast.toml"
declare -A LEADER_PIDS
FAST=(--etcd http://127.0.0.1:23790 --cluster-name failover-leader --config "$WORK/fast.toml")
for id in 1 2 3; do start_broker $id "${FAST[@]}"; LEADER_PIDS[$id]=$BROKER_PID; done
$BIN bench produce --bootstrap 127.0.0.1:19901 --topic fo --partitions 1 --replication-factor 3 \
  --records 1 --progress-interval 0 >/dev/null
TIMES=()
for round in $(seq 10); do
  via=1; [ -z "${LEADER_PIDS[1]:-}" ] && via=2
  leader=$($BIN cluster status --bootstrap "127.0.0.1:1990$via" --output json |
    python3 -c 'import json,sys; print([b["node_id"] for b in json.load(sys.stdin)["brokers"] if b["leader_partitions"] > 0][0])')
  other=$(( leader % 3 + 1 ))
  start=$(date +%s.%N)
  kill -9 "${LEADER_PIDS[$leader]}"
  until $BIN bench produce --bootstrap "127.0.0.1:1990$other" --topic fo --records 1 \
      --request-timeout-ms 2000 --progress-interval 0 >/dev/null 2>&1; do sleep 0.05; done
  end=$(date +%s.%N)
  TIMES+=("$(python3 -c "print(f'{$end-$start:.2f}')")")
  start_broker "$leader" "${FAST[@]}"; LEADER_PIDS[$leader]=$BROKER_PID
  # Back in sync before the next kill.
  until [ "$($BIN cluster status --bootstrap "127.0.0.1:1990$other" --output json |
      python3 -c 'import json,sys; print(len(json.load(sys.stdin)["under_replicated_partitions"]))')" = 0 ]; do sleep 0.2; done
done
printf '%s\n' "${TIMES[@]}" | sort -n | python3 -c '
import sys
t = [float(x) for x in sys.stdin]
print("leader kill -> next ack: median %.2f s, worst %.2f s, all %s" % (t[len(t)//2], t[-1], t))'
stop_all

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
