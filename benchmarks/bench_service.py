"""The HTTP service (recsys_lib.production.service) under load over loopback, next to in-process calls.

    .venv/bin/python benchmarks/bench_service.py [--requests 5000] [--repeats 3] [--factors 64]

Model: ALS (``--factors`` factors, bench_serving.fit_model) fitted on the MovieLens 100K benchmark split's train set,
saved with ``Recommender.save`` and served by ``python -m recsys_lib.production.service`` (uvicorn, one
process, one worker) in a child process on a free 127.0.0.1 port. The client
(:func:`recsys_lib.production.loadtest.load_test`, aiohttp, closed loop) sends ``GET
/recommend?user_id=U&k=10`` for user ids drawn uniformly (seeded) at concurrency 1, 8 and 32;
each run is bounded by ``--requests`` answers and ``--time-limit`` seconds. The table gives the
median of p50/p95/p99 and requests/s over ``--repeats`` runs, and the error count summed. The
in-process row times ``Recommender.recommend`` on the same users (serving.time_requests).

Targets (printed, never enforced): p99 <= 10 ms at concurrency 8 with 0 errors, and at least
1,000 requests/s at concurrency 32, single process, on 2 CPU cores. Client and server share
those cores, so the figures are a lower bound on what the server alone sustains.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table  # noqa: E402
from bench_serving import fit_model  # noqa: E402

TARGET_P99_MS_AT_8 = 10.0
TARGET_RPS_AT_32 = 1_000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.data.splits import benchmark_data
    from recsys_lib.production.loadtest import ServiceProcess, load_test_table, request_paths
    from recsys_lib.production.serving import Recommender, latency_percentiles, time_requests

    ml = load_movielens_100k()
    data = benchmark_data(ml.ratings, seed=args.seed)
    als = fit_model(data.train, args.factors, args.seed)
    rec = Recommender.from_model(als, data.train, item_names=ml.items.set_index("item_id")["title"])
    users = np.random.default_rng(args.seed).choice(rec.user_ids, args.requests)
    in_process = latency_percentiles(time_requests(lambda u: rec.recommend(u, 10), users))
    rows = [{"where": "in-process", "concurrency": 1, "errors": 0, **in_process,
             "requests_per_second": float("nan"), "server_cpu_ms": float("nan")}]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = rec.save(Path(tmp) / "als")
        with ServiceProcess(folder) as server:
            table = load_test_table(server.url, request_paths(users, k=10),
                                    (1, 8, 32), n_requests=args.requests,
                                    repeats=args.repeats, time_limit_s=args.time_limit,
                                    server=server)  # fmt: skip
    for c, row in table.iterrows():
        rows.append({"where": "HTTP", "concurrency": int(c), "errors": int(row["errors"]),
                     "p50_ms": row["p50_ms"], "p95_ms": row["p95_ms"], "p99_ms": row["p99_ms"],
                     "requests_per_second": row["requests_per_second"],
                     "server_cpu_ms": row.get("server_cpu_ms", float("nan"))})  # fmt: skip
    print_table(f"GET /recommend (k=10), median of {args.repeats} runs of {args.requests}", rows)
    at8, at32 = table.loc[8], table.loc[32]
    print(
        f"\ntarget p99 <= {TARGET_P99_MS_AT_8} ms at concurrency 8 with 0 errors: "
        f"{at8['p99_ms']:.2f} ms, {int(at8['errors'])} errors -> "
        f"{'met' if at8['p99_ms'] <= TARGET_P99_MS_AT_8 and at8['errors'] == 0 else 'NOT met'}"
    )
    print(f"target >= {TARGET_RPS_AT_32:,.0f} requests/s at concurrency 32: "
          f"{at32['requests_per_second']:,.0f} -> "
          f"{'met' if at32['requests_per_second'] >= TARGET_RPS_AT_32 else 'NOT met'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
