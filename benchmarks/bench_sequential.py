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
    rows = []
    for cls in (sq.SASRec, sq.BERT4Rec):
        rates = []
        model = None
        for rep in range(args.repeats):
            cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=1e-3, warmup_ratio=0.0,
                              max_length=args.max_length, eval_every=None, patience=None,
                              seed=rep, device=device, progress=False)  # fmt: skip
            model = cls(dim=args.dim, layers=args.layers, heads=args.heads, config=cfg)
            model.fit(split.train)
            rates.append(model.history_.examples_per_second)
        users = np.arange(n_users)
        score_s = median_seconds(lambda m=model, u=users: m.score(u), repeats=args.repeats)
        rows.append({
            "model": cls.name,
            "device": device if device != "cpu" else f"cpu x{args.threads}",
            "train sequences/s (median)": float(statistics.median(rates)),
            "scored users/s (median)": float(n_users / score_s),
            "epoch s (median)": float(len(model._examples(split.train)) / statistics.median(rates)),
        })  # fmt: skip
    return rows


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
