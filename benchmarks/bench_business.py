"""Shop simulator generation speed: median wall time of ``simulate_logs`` per size.

Usage: ``python benchmarks/bench_business.py [--sizes 1e5 1e6 1e7] [--repeats 3]``.
Target: 1e6 impressions in under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

from recsys_lib.business.shop import make_shop, simulate_logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6, 1e7])
    parser.add_argument("--repeats", type=int, default=3, help="runs per size (1e7 runs once)")
    args = parser.parse_args()
    shop = make_shop(seed=0)
    print(f"{'impressions':>12} | {'runs':>4} | {'median s':>9} | {'impressions/s':>14}")
    print("-" * 48)
    for size in args.sizes:
        n = int(size)
        runs = 1 if n >= 10_000_000 else args.repeats
        times = []
        for r in range(runs):
            t0 = time.perf_counter()
            log = simulate_logs(shop, n, seed=r)
            times.append(time.perf_counter() - t0)
            assert log.n_impressions == n
            del log
        med = statistics.median(times)
        print(f"{n:>12,} | {runs:>4} | {med:>9.2f} | {n / med:>14,.0f}")


if __name__ == "__main__":
    main()
