#!/usr/bin/env bash
# Runs one benchmark scenario against two of our nodes sharing a local
# nats-server; clients are spread over both nodes, so about half of all
# 1:1 messages cross nodes.
#
#   scripts/bench-cluster.sh <scenario> [signaling-bench options]
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:?scenario}"
shift

if [ ! -x target/release/signaling-bench ] || [ ! -x target/release/signaling ]; then
  cargo build --release -j"${CARGO_BUILD_JOBS:-2}" -p signaling -p tests --bins
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
  cat > "$dir/node$n.conf" <<CONF
[http]
listen = 127.0.0.1:$port
[sessions]
hashkey = 0123456789abcdef0123456789abcdef
blockkey = 0123456789abcdef
[backend]
allowall = true
secret = bench-secret
timeout = 10
[nats]
url = nats://127.0.0.1:$nats_port
CONF
  RUST_LOG=warn target/release/signaling --config "$dir/node$n.conf" >"$dir/node$n.log" 2>&1 &
  pids+=($!)
  servers+=("ws://127.0.0.1:$port/spreed")
done
for url in "${servers[@]}"; do
  http="${url/ws:/http:}"; http="${http%/spreed}/api/v1/welcome"
  for _ in $(seq 100); do curl -sf "$http" >/dev/null && break; sleep 0.1; done
done
target/release/signaling-bench "$scenario" --server "$(IFS=,; echo "${servers[*]}")" "$@"
