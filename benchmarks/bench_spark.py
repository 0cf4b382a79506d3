"""Spark end-to-end scoring: wall time against data size and partitions.

For each size, synthetic events (about 50 per user, 10,000 long-tailed items) are generated
in Spark and written to Parquet; then the job of ``python -m recsys_lib.spark score`` runs on
them: aggregate pairs -> implicit ALS -> top-k unseen items per user -> Parquet.
Target: 10^7 events scored top-10 end to end on local[2] in under 10 minutes.
``cpu_s`` is the CPU time of the JVM and its Python workers during the job: on a machine
shared with other work, ``cpu_s / 2`` is what the job needs from 2 idle cores (a lower bound
on its wall time there).

    python benchmarks/bench_spark.py                      # 1e5 1e6 1e7, partitions 4
    python benchmarks/bench_spark.py --sizes 1e6 --partitions 2 4 8 16 --repeats 3

Chapter 10 runs 10^5 and 10^6 events live and reads the 10^7-event row from the file that
``--output`` writes (committed as ``benchmarks/results/spark_scaling.json``):

    python benchmarks/bench_spark.py --sizes 1e7 --output benchmarks/results/spark_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _common import print_table

from recsys_lib import spark as rs

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system, reaped children included) of ``root`` and its descendants:
    the JVM and its Python workers. On a shared machine, cpu_s / cores bounds the wall time
    the same job would take on idle cores."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(x) for x in fields[11:15]) / CLOCK_TICKS
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def run(args: argparse.Namespace) -> list[dict]:
    t = time.perf_counter()
    spark = rs.spark_session(args.master, driver_memory=args.driver_memory)
    print(f"session start: {time.perf_counter() - t:.1f} s ({args.master})", flush=True)
    jvm = spark.sparkContext._gateway.proc.pid  # spark-submit execs the driver JVM
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
            for size in args.sizes:
                events = str(Path(tmp) / f"events_{int(size)}")
                t = time.perf_counter()
                rs.synthetic_interactions(spark, int(size), seed=args.seed).write.parquet(events)
                generate_s = time.perf_counter() - t
                for parts in args.partitions:
                    runs = []
                    for _ in range(args.repeats):
                        cpu_before = tree_cpu_seconds(jvm)
                        runs.append(
                            rs.score_job(
                                spark,
                                spark.read.parquet(events),
                                str(Path(tmp) / "recs"),
                                k=args.k,
                                factors=args.factors,
                                iterations=args.iterations,
                                partitions=parts,
                                seed=0,
                            )
                        )
                        runs[-1]["cpu_s"] = tree_cpu_seconds(jvm) - cpu_before
                    row = {
                        "events": int(size),
                        "partitions": parts,
                        "pairs": int(runs[0]["pairs"]),
                        "rows_out": int(runs[0]["rows_out"]),
                        "generate_s": generate_s,
                    }
                    for key in ("prepare_s", "als_s", "score_s", "total_s", "cpu_s"):
                        row[key] = statistics.median(r[key] for r in runs)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        spark.stop()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    parser.add_argument("--partitions", type=int, nargs="+", default=[4])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic events")
    parser.add_argument("--output", help="also write the rows and settings to this JSON file")
    args = parser.parse_args()
    rows = run(args)
    if args.output:
        result = {
            "script": "benchmarks/bench_spark.py",
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load_average_after": os.getloadavg()[0],
            "settings": {
                key: getattr(args, key)
                for key in ("master", "k", "factors", "iterations", "seed", "repeats")
            },
            "rows": rows,
        }
        target = Path(args.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_suffix(".tmp")
        staging.write_text(json.dumps(result, indent=2) + "\n")
        staging.replace(target)
    print_table(
        f"Spark score job on {args.master}: medians of {args.repeats} run(s), seconds", rows
    )
