#!/usr/bin/env bash
# Runs the benchmark matrix of docs/benchmarks.md against our server and
# both references (Debian's 0.4.1 and the 1.2.4 backport), REPEAT times
# each, appending one JSON line per run to $OUT.
#
#   scripts/bench-matrix.sh [out.jsonl]     (REPEAT=3 by default)
#   ONLY='light|1:1 100' scripts/bench-matrix.sh out.jsonl   (points matching a regex)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-results.jsonl}"
REPEAT="${REPEAT:-3}"
ONLY="${ONLY:-.}"
IMPLS="${IMPLS:-ours reference reference-1.2.4}"

run() {
  local label="$1"; shift
  [[ "$label" =~ $ONLY ]] || return 0
  for server in $IMPLS; do
    for n in $(seq "$REPEAT"); do
      local line
      local pin=""
      [[ "$label" == *pinned* ]] && pin=1
      line=$(BENCH_PIN="$pin" scripts/bench.sh "$server" "$@" --json --quiet 2>/dev/null || echo '{"failed":true}')
      echo "{\"point\":\"$label\",\"impl\":\"$server\",\"run\":$n,\"result\":$line}" >> "$OUT"
      echo "$label $server #$n done" >&2
    done
  done
}

# Light load, as real calls produce it: tail latency is what users feel.
run "light: 1:1 50 clients, 200 msg/s" one-to-one --clients 50 --rate 200 --duration 30
run "light: room of 50, 200 msg/s" room --clients 50 --room-size 50 --rate 200 --duration 30
# Saturation.
run "1:1 100 clients" one-to-one --clients 100 --duration 10
# The same with the server on CPU 0 and the generator on CPU 1.
run "1:1 100 clients, pinned" one-to-one --clients 100 --duration 10
run "1:1 1000 clients" one-to-one --clients 1000 --duration 10
run "1:1 2000 clients" one-to-one --clients 2000 --duration 10
run "room 500 members, 100 msg/s" room --clients 500 --room-size 500 --rate 100 --duration 10
run "join storm 2000 clients" join-storm --clients 2000 --room-size 10 --concurrency 100
run "resume storm 2000 clients" resume-storm --clients 2000 --concurrency 100
run "idle 10000 connections" idle --clients 10000 --duration 5 --concurrency 200
