"""Small helpers shared by the benchmark scripts: timing medians and table printing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(title: str, rows: list[dict]) -> None:
    """Rows of dicts as a Markdown table."""
    print(f"\n### {title}\n")
    if not rows:
        print("(no rows)")
        return
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for row in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


def matmul_peak_gflops(n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of an n x n float32 torch matmul on the current threads (the CPU's peak)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median_seconds(lambda: a @ b, repeats=repeats)
    return 2 * n**3 / seconds / 1e9
