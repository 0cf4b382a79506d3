"""Training and scoring throughput of chapter 6's transformers (sequences per second), medians.

    python benchmarks/bench_sequential.py                 # this machine's CPU (2 threads)
    python benchmarks/bench_sequential.py --device cuda   # on a GPU, where there is one

Rows: SASRec (GPT-2 configuration) and BERT4Rec (BERT configuration) at the chapter's size
(64 hidden, 2 blocks, 2 heads, 50 items per sequence, batch 128) on the MovieLens 100K
leave-last-out training sequences. A training repeat runs ``--epochs`` passes over the
training windows (``sequential.sliding_windows``: every transition of the 943 histories, about
2,400 windows of 51 items) with validation off and reports the rate of the whole loop in
windows per second; a scoring repeat scores
every user against the full catalogue. Each row is the median of ``--repeats`` repeats.

Against the peak: useful training FLOPs count the real (non-padding) positions only, 3x the
forward pass (forward + backward): per position and block 2 (4 d^2 + 2 d 4d) for projections
and feed-forward plus 2 * 2 * d * L for attention, and 2 d n_items for the full-softmax output
at each position that has a target (every transition for SASRec, the hidden items for
BERT4Rec). The peak is ``bench_encoder.matmul_gflops`` (a 4096 x 4096 float32 matmul on the
same threads). Both rates are given by wall time and by this process's CPU time times the
threads (far less sensitive to other processes on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_seconds, print_table  # noqa: E402
from bench_encoder import matmul_gflops  # noqa: E402


def bench(args) -> list[dict]:
    import numpy as np
    import torch

    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.data.sequences import sequence_split
    from recsys_lib.models import sequential as sq
    from recsys_lib.runtime import resolve_device
    from recsys_lib.text.finetune import TrainConfig

    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(args.threads)
    split = sequence_split(load_movielens_100k(args.data).ratings)
    n_users = split.train.shape[0]
    peak_wall, peak_cpu = matmul_gflops(threads=args.threads)
    rows = []
    for cls in (sq.SASRec, sq.BERT4Rec):
        rates, cpu_rates = [], []
        model = None
        for rep in range(args.repeats):
            cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=1e-3, warmup_ratio=0.0,
                              max_length=args.max_length, eval_every=None, patience=None,
                              seed=rep, device=device, progress=False)  # fmt: skip
            model = cls(dim=args.dim, layers=args.layers, heads=args.heads, config=cfg)
            cpu = time.process_time()
            model.fit(split.train)
            rates.append(model.history_.examples_per_second)
            cpu_rates.append(model.history_.examples * args.threads / (time.process_time() - cpu))
        users = np.arange(n_users)
        score_s = median_seconds(lambda m=model, u=users: m.score(u), repeats=args.repeats)
        flops = train_flops(model, split.train, args)  # per window, on average
        rate, cpu_rate = statistics.median(rates), statistics.median(cpu_rates)
        rows.append({
            "model": cls.name,
            "device": device if device != "cpu" else f"cpu x{args.threads}",
            "train sequences/s (median)": float(statistics.median(rates)),
            "scored users/s (median)": float(n_users / score_s),
            "epoch s (median)": float(len(model._examples(split.train)) / statistics.median(rates)),
            "train sequences/s by cpu time": float(cpu_rate),
            "GFLOP/s (wall, cpu)": f"{rate * flops / 1e9:.1f}, {cpu_rate * flops / 1e9:.1f}",
            "share of matmul peak (wall, cpu)":
                f"{rate * flops / 1e9 / peak_wall:.0%}, {cpu_rate * flops / 1e9 / peak_cpu:.0%}",
        })  # fmt: skip
    print(f"matmul peak: {peak_wall:.1f} GFLOP/s by wall time, {peak_cpu:.1f} by cpu time")
    return rows


def train_flops(model, train, args) -> float:
    """Useful training FLOPs per window (forward + backward = 3 forward), real positions only."""
    import numpy as np

    windows = model._examples(train)
    d, n_items = args.dim, train.shape[1]
    if model.kind == "causal":
        inputs = windows[:, :-1]
        positions = (inputs > 0).sum(1).astype(np.float64)
        targets = ((inputs > 0) & (windows[:, 1:] > 0)).sum()
    else:
        positions = (windows > 0).sum(1).astype(np.float64)
        targets = positions.sum() * model.mask_prob
    body = args.layers * (2 * (4 * d * d + 8 * d * d) * positions.sum()
                          + 2 * 2 * d * (positions**2).sum())  # fmt: skip
    return float(3 * (body + 2 * d * n_items * targets) / len(windows))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=os.environ.get("RECSYS_DATA_DIR"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=50)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = bench(args)
    print_table(f"chapter 6 transformers ({time.perf_counter() - start:.0f} s in all)", rows)


if __name__ == "__main__":
    main()
