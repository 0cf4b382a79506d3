"""Exact top-k retrieval: 100k queries x 100k items x 384 dims on this CPU.

Reports achieved GFLOP/s (2 * n_q * n_i * d useful FLOPs per second) against the measured
float32 matmul peak on the same threads. Target: >= 50% of the peak. ``--small`` runs a 10x
smaller problem for a quick look.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _common import matmul_peak_gflops, print_table

from recsys_lib.retrieval.similarity import blocked_top_k


def run(n_queries: int, n_items: int, dim: int = 384, block: int = 1024) -> dict:
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
    items = rng.standard_normal((n_items, dim), dtype=np.float32)
    start = time.perf_counter()
    blocked_top_k(queries, items, 10, block_size=block, device="cpu", progress=True)
    seconds = time.perf_counter() - start
    return {
        "queries": n_queries,
        "items": n_items,
        "dim": dim,
        "block": block,
        "seconds": seconds,
        "GFLOP/s": 2 * n_queries * n_items * dim / seconds / 1e9,
    }


if __name__ == "__main__":
    import torch

    torch.set_num_threads(2)
    scale = 10 if "--small" in sys.argv else 1
    peak = matmul_peak_gflops()
    row = run(100_000 // scale, 100_000 // scale)
    row["peak GFLOP/s"] = peak
    row["share of peak"] = f"{row['GFLOP/s'] / peak:.0%}"
    print_table("Blocked exact top-10 (torch, CPU)", [row])
