#!/usr/bin/env python3
"""Turns the JSON lines of scripts/bench-matrix.sh into the markdown table
of docs/benchmarks.md: median of the runs, with min-max as the spread."""
import json
import statistics
import sys
from collections import OrderedDict


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{fmt(med)} ({fmt(min(values))}-{fmt(max(values))})"


def main(path):
    points = OrderedDict()
    for line in open(path):
        row = json.loads(line)
        points.setdefault(row["point"], {}).setdefault(row["impl"], []).append(row["result"])
    print("| point | server | delivered/s | p50 ms | p99 ms | p99.9 ms | CPU ms/1000 msgs | peak RSS MiB | ops/s | KiB/conn | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for point, impls in points.items():
        for impl in ("ours", "reference-1.2.4", "reference"):
            if impl not in impls:
                continue
            runs = [r for r in impls.get(impl, []) if not r.get("failed")]
            failed = len(impls.get(impl, [])) - len(runs)
            if not runs:
                print(f"| {point} | {impl} | failed | | | | | | | | |")
                continue
            g = lambda k: [r.get(k) for r in runs]
            lat = lambda k: [r["latency"].get(k) if r["latency"]["count"] else None for r in runs]
            rss = [r.get("server_peak_rss_kib") / 1024 if r.get("server_peak_rss_kib") else None for r in runs]
            kib = [r["rss_bytes_per_connection"] / 1024 if r.get("rss_bytes_per_connection") else None for r in runs]
            delivered = g("delivered_per_sec") if any(g("delivered")) else [None]
            print(
                f"| {point} | {impl} | {spread(delivered, lambda v: f'{v:,.0f}')} "
                f"| {spread(lat('p50_ms'), lambda v: f'{v:.1f}')} | {spread(lat('p99_ms'), lambda v: f'{v:.1f}')} "
                f"| {spread(lat('p999_ms'), lambda v: f'{v:.1f}')} "
                f"| {spread(g('server_cpu_ms_per_1000_msgs'), lambda v: f'{v:.1f}')} | {spread(rss, lambda v: f'{v:.0f}')} "
                f"| {spread(g('ops_per_sec'), lambda v: f'{v:,.0f}')} | {spread(kib, lambda v: f'{v:.1f}')} "
                f"| {sum(r.get('errors', 0) for r in runs) + failed} |"
            )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench-results.jsonl")
