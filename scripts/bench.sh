#!/usr/bin/env bash
# Runs one benchmark scenario against a freshly started server on loopback.
#
#   scripts/bench.sh ours|reference <scenario> [signaling-bench options]
#
# "ours" is target/release/signaling (built here if missing), "reference"
# the Go server from Debian's nextcloud-spreed-signaling package. Both get
# the same generated config: one node, in-process NATS, allowall backend.
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:?ours or reference}"
scenario="${2:?scenario}"
shift 2

if [ ! -x target/release/signaling-bench ] || [ ! -x target/release/signaling ]; then
  cargo build --release -j"${CARGO_BUILD_JOBS:-2}" -p signaling -p tests --bins
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/server.conf" <<CONF
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
url = :loopback:
CONF

ulimit -n 65536 2>/dev/null || true
case "$which" in
  ours) RUST_LOG=warn target/release/signaling --config "$dir/server.conf" >"$dir/server.log" 2>&1 & ;;
  reference) /usr/bin/nextcloud-spreed-signaling-server -config "$dir/server.conf" >"$dir/server.log" 2>&1 & ;;
  *) echo "ours or reference" >&2; exit 2 ;;
esac
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/api/v1/welcome" >/dev/null && break
  sleep 0.1
done
target/release/signaling-bench "$scenario" --server "ws://127.0.0.1:$port/spreed" --pid "$pid" "$@"
