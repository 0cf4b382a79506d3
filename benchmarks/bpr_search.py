"""BPR's random hyper-parameter search on chapter 3's validation split, stored for the chapter.

Each BPR fit with 128-200 factors and 100-200 epochs takes tens of seconds on 2 CPU cores, so
chapter 3 fits a small live grid and reads this larger search from the file it writes (when the
file's key, the fit/valid splits and the settings, matches the notebook's run):

    python benchmarks/bpr_search.py --output benchmarks/results/bpr_search.json

The grid and the 10 random points are those the chapter used to search live before.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from _common import print_table

from recsys_lib.data.owndata import load_dataset
from recsys_lib.data.splits import benchmark_data
from recsys_lib.evaluation import tuning
from recsys_lib.models import mf

GRID = {
    "factors": [64, 128, 200],
    "learning_rate": [0.003, 0.01, 0.05],
    "regularization": [0.0, 0.001, 0.01],
    "iterations": [50, 100, 200],
}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--seed", type=int, default=42, help="benchmark split seed")
    parser.add_argument("--samples", type=int, default=10, help="random grid points")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--output", default="benchmarks/results/bpr_search.json")
    args = parser.parse_args()
    data = benchmark_data(load_dataset(args.dataset).ratings, seed=args.seed)
    start = time.perf_counter()
    table = tuning.grid_search(
        lambda **p: mf.BPR(seed=args.seed, **p),
        GRID,
        data.fit,
        data.valid,
        k=args.k,
        n_samples=args.samples,
        seed=args.seed,
    )
    # the key is what the chapter recomputes: the same fit/valid splits of the same data
    key = tuning.search_key(data.fit, data.valid, dataset=args.dataset, seed=args.seed)
    tuning.write_search(
        args.output,
        table,
        key,
        script="benchmarks/bpr_search.py",
        grid=GRID,
        n_samples=args.samples,
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        seconds=round(time.perf_counter() - start, 1),
        load_average_after=os.getloadavg()[0],
    )
    print_table(f"BPR random search ({args.samples} points), validation", table.to_dict("records"))
