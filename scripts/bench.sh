#!/usr/bin/env bash
# Runs one benchmark scenario against a freshly started server on loopback.
#
#   scripts/bench.sh ours|reference <scenario> [signaling-bench options]
#
# "ours" is target/release/signaling, "reference" the Go server from
# Debian's nextcloud-spreed-signaling package (installed here if missing).
# Both get the same generated config: one node, in-process NATS, allowall
# backend.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh

which="${1:?ours or reference}"
scenario="${2:?scenario}"
shift 2

ensure_packages curl python3
[ "$which" = reference ] && ensure_packages nextcloud-spreed-signaling
build_release

port=$(free_port)
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }; rm -rf "$dir"' EXIT
write_config "$dir/server.conf" "$port" ":loopback:"

ulimit -n 65536 2>/dev/null || true
case "$which" in
  ours) RUST_LOG=warn target/release/signaling --config "$dir/server.conf" >"$dir/server.log" 2>&1 & ;;
  reference) /usr/bin/nextcloud-spreed-signaling-server -config "$dir/server.conf" >"$dir/server.log" 2>&1 & ;;
  *) echo "ours or reference" >&2; exit 2 ;;
esac
pid=$!
wait_ready "$port"
target/release/signaling-bench "$scenario" --server "ws://127.0.0.1:$port/spreed" --pid "$pid" "$@"
