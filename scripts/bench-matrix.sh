#!/usr/bin/env bash
# Runs the benchmark matrix of docs/benchmarks.md against our server and the
# reference, REPEAT times each, appending one JSON line per run to $OUT.
#
#   scripts/bench-matrix.sh [out.jsonl]     (REPEAT=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-results.jsonl}"
REPEAT="${REPEAT:-3}"

run() {
  local label="$1"; shift
  for server in ours reference; do
    for n in $(seq "$REPEAT"); do
      local line
      line=$(scripts/bench.sh "$server" "$@" --json --quiet 2>/dev/null || echo '{"failed":true}')
      echo "{\"point\":\"$label\",\"impl\":\"$server\",\"run\":$n,\"result\":$line}" >> "$OUT"
      echo "$label $server #$n done" >&2
    done
  done
}

run "1:1 100 clients" one-to-one --clients 100 --duration 10
run "1:1 1000 clients" one-to-one --clients 1000 --duration 10
run "1:1 2000 clients" one-to-one --clients 2000 --duration 10
run "room 500 members, 100 msg/s" room --clients 500 --room-size 500 --rate 100 --duration 10
run "join storm 2000 clients" join-storm --clients 2000 --room-size 10 --concurrency 100
run "resume storm 2000 clients" resume-storm --clients 2000 --concurrency 100
run "idle 10000 connections" idle --clients 10000 --duration 5 --concurrency 200
