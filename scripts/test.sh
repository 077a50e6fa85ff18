#!/usr/bin/env bash
# The test command: installs what the tests need, then runs them.
#
#   scripts/test.sh               # everything
#   scripts/test.sh -p sluice     # arguments go to `cargo test`
#   scripts/test.sh --setup-only  # install, run nothing
#
# The end-to-end tests talk to the real broker with kcat and Python clients (kafka-python,
# confluent-kafka), run clusters against a real etcd, and build librdkafka from source (the
# rdkafka crate): this installs the
# Debian packages and Python packages for that (with sudo when not root), then runs
# `cargo test --workspace`. Safe to run again: installed packages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: kcat for the smoke tests; a C toolchain, make and pkg-config to build
# librdkafka; etcd-server for the cluster tests (each starts its own etcd on free ports) and
# etcd-client (etcdctl), with which a test moves a partition's leadership as a controller would;
# iproute2 (ip), with which the network-partition test puts a broker in a namespace of its own;
# chromium, which loads the web console headless (tests/console.rs).
packages=(kcat build-essential pkg-config etcd-server etcd-client iproute2 chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# Python clients for the kafka-python and confluent-kafka tests.
pip_flags=(-q --disable-pip-version-check)
[[ $(id -u) -eq 0 ]] && pip_flags+=(--root-user-action=ignore)
python3 -m pip install "${pip_flags[@]}" -r crates/sluice/tests/python/requirements.txt

if [[ ${1:-} == --setup-only ]]; then
  exit 0
elif (($#)); then
  cargo test "$@"
else
  cargo test --workspace
fi
