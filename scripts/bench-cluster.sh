#!/usr/bin/env bash
# Runs one benchmark scenario against two of our nodes sharing a local
# nats-server; clients are spread over both nodes, so about half of all
# 1:1 messages cross nodes.
#
#   scripts/bench-cluster.sh <scenario> [signaling-bench options]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
scenario="${1:?scenario}"
shift

ensure_packages curl python3 nats-server
build_release
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
ulimit -n 65536 2>/dev/null || true

nats_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" -m -1 >"$dir/nats.log" 2>&1 &
pids+=($!)
servers=()
for n in 1 2; do
  port=$(free_port)
  write_config "$dir/node$n.conf" "$port" "nats://127.0.0.1:$nats_port"
  RUST_LOG=warn target/release/signaling --config "$dir/node$n.conf" >"$dir/node$n.log" 2>&1 &
  pids+=($!)
  wait_ready "$port"
  servers+=("ws://127.0.0.1:$port/spreed")
done
target/release/signaling-bench "$scenario" --server "$(IFS=,; echo "${servers[*]}")" "$@"
