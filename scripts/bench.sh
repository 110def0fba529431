#!/usr/bin/env bash
# Runs one benchmark scenario against a freshly started server on loopback.
#
#   scripts/bench.sh ours|reference|reference-1.2.4 <scenario> [signaling-bench options]
#
# "ours" is target/release/signaling, "reference" the Go server from
# Debian's nextcloud-spreed-signaling package 0.4.1 (installed here if
# missing), "reference-1.2.4" the same package's 1.2.4 from the
# bookworm-backports suite (unpacked under target/, not installed).
# Both get the same generated config: one node, in-process NATS, allowall
# backend.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh

which="${1:?ours, reference or reference-1.2.4}"
scenario="${2:?scenario}"
shift 2

ensure_packages curl python3
[ "$which" = reference ] && ensure_packages nextcloud-spreed-signaling
[ "$which" = reference-1.2.4 ] && reference_124=$(ensure_reference_124)
build_release

port=$(free_port)
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }; rm -rf "$dir"' EXIT
write_config "$dir/server.conf" "$port" ":loopback:"

ulimit -n 65536 2>/dev/null || true
# BENCH_PIN=1: the server on CPU 0 and the generator on CPU 1, so each
# has one core of its own instead of competing for both.
server_cpu=() gen_cpu=()
if [ -n "${BENCH_PIN:-}" ]; then server_cpu=(taskset -c 0); gen_cpu=(taskset -c 1); fi
case "$which" in
  ours) RUST_LOG=warn "${server_cpu[@]}" "$BIN_DIR/signaling" --config "$dir/server.conf" >"$dir/server.log" 2>&1 & ;;
  reference) "${server_cpu[@]}" /usr/bin/nextcloud-spreed-signaling-server -config "$dir/server.conf" >"$dir/server.log" 2>&1 & ;;
  reference-1.2.4) "${server_cpu[@]}" "$reference_124" -config "$dir/server.conf" >"$dir/server.log" 2>&1 & ;;
  *) echo "ours, reference or reference-1.2.4" >&2; exit 2 ;;
esac
pid=$!
wait_ready "$port"
"${gen_cpu[@]}" "$BIN_DIR/signaling-bench" "$scenario" --server "ws://127.0.0.1:$port/spreed" --pid "$pid" "$@"
