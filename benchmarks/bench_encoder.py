"""Encoding throughput of TextEncoder on MovieLens descriptions, and its share of the CPU's peak.

    .venv/bin/python benchmarks/bench_encoder.py [--n 512] [--repeats 3] [--threads 2]

Texts: item descriptions and train-user descriptions of MovieLens 100K, shuffled together
(mixed lengths, as in chapter 2). Modes: batches sorted by token length (the default) and
batches in input order. Each repeat encodes the same texts with the cache off; the modes and
the peak measurement are interleaved, so background load hits them alike. Medians are printed.

Peak: GFLOP/s of a 4096 x 4096 float32 torch matmul (2 n^3 FLOPs) on the same threads.
Useful FLOPs of the encoder count only real (non-padding) tokens, from the model config: per
token and layer 2 (4 h^2 + 2 h f) for the projections and feed-forward, plus 2 * 2 * L * h for
attention scores and the weighted sum over the text's own L tokens.

Every figure is given twice: by wall time, and by this process's CPU time divided by the
threads (what the threads achieve while they run: far less sensitive to other processes on a
shared machine). Modes: length-sorted and input-order batches of 64 texts, and length-sorted
batches of up to 8192 padded tokens (``max_batch_tokens``).

Targets (printed, never enforced): >= 60% of peak; length sorting >= 1.3x faster than unsorted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def matmul_gflops(n: int = 4096, threads: int = 2) -> tuple[float, float]:
    """(wall, cpu-time) GFLOP/s of one n x n float32 matmul, after a warm-up.

    The cpu-time figure is FLOPs per CPU-second of this process times ``threads``: what the
    threads achieve while they actually run, so other processes' load barely moves it.
    """
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    wall, cpu = time.perf_counter(), time.process_time()
    torch.mm(a, b)
    flops = 2 * n**3
    return (
        flops / (time.perf_counter() - wall) / 1e9,
        flops * threads / (time.process_time() - cpu) / 1e9,
    )


def useful_flops(lengths: np.ndarray, config) -> float:
    """FLOPs of a BERT encoder over texts of the given real token lengths (no padding)."""
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    lengths = lengths.astype(np.float64)
    dense = 2 * (4 * h * h + 2 * h * f) * lengths.sum()
    attention = 2 * 2 * h * (lengths**2).sum()
    return float(layers * (dense + attention))


def movielens_texts(n: int, seed: int) -> list[str]:
    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.data.splits import recommenders_stratified_split
    from recsys_lib.text.descriptions import item_descriptions, user_descriptions

    ml = load_movielens_100k()
    train_df, _ = recommenders_stratified_split(ml.ratings)
    texts = list(item_descriptions(ml.items)) + list(user_descriptions(train_df, ml.items))
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.permutation(len(texts))[:n]]


MODES = {  # name: (sort_by_length, batch_size, max_batch_tokens)
    "sorted, 64/batch": (True, 64, None),
    "input order, 64/batch": (False, 64, None),
    "sorted, 8192 tok/batch": (True, 64, 8192),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="texts per repeat (2625 = all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="default", help="'default' or a model folder")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from recsys_lib.text.descriptions import token_lengths
    from recsys_lib.text.embeddings import TextEncoder

    texts = movielens_texts(args.n, args.seed)
    enc = TextEncoder(args.model, device="cpu", use_cache=False)
    lengths = np.minimum(token_lengths(texts, enc.tokenizer), enc.max_length)
    flops = useful_flops(lengths, enc.model.config)
    enc.encode(texts[:64], show_progress=False)  # warm-up

    peaks, wall, cpu, padding = [], {m: [] for m in MODES}, {m: [] for m in MODES}, {}
    for _ in range(args.repeats):
        peaks.append(matmul_gflops(threads=args.threads))
        for mode, (sort, batch_size, budget) in MODES.items():
            enc.batch_size, enc.max_batch_tokens = batch_size, budget
            w, c = time.perf_counter(), time.process_time()
            enc.encode(texts, show_progress=False, sort_by_length=sort)
            wall[mode].append(time.perf_counter() - w)
            cpu[mode].append((time.process_time() - c) / args.threads)
            stats = enc.last_stats
            padding[mode] = 1 - stats.n_tokens / stats.n_padded_tokens
    peak_wall = statistics.median(p[0] for p in peaks)
    peak_cpu = statistics.median(p[1] for p in peaks)

    med = statistics.median
    print(f"threads={args.threads}  texts={len(texts)} (items + users, mixed)  "
          f"tokens/text: median {np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, "
          f"max {lengths.max()}  repeats={args.repeats}")  # fmt: skip
    print(f"matmul peak (4096^2 fp32), medians: wall {peak_wall:.1f} GFLOP/s, "
          f"cpu-time {peak_cpu:.1f} GFLOP/s")  # fmt: skip
    print(f"useful encoder work: {flops / len(texts) / 1e6:.1f} MFLOP per text (padding excluded)")
    header = (f"{'mode':<24}{'texts/s':>9}{'GFLOP/s':>9}{'% peak':>8}"
              f"{'cpu texts/s':>13}{'cpu GFLOP/s':>13}{'% peak':>8}{'padding':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for mode in MODES:
        tw, tc = med(wall[mode]), med(cpu[mode])
        print(f"{mode:<24}{len(texts) / tw:>9.1f}{flops / tw / 1e9:>9.1f}"
              f"{100 * flops / tw / 1e9 / peak_wall:>7.1f}%{len(texts) / tc:>13.1f}"
              f"{flops / tc / 1e9:>13.1f}{100 * flops / tc / 1e9 / peak_cpu:>7.1f}%"
              f"{100 * padding[mode]:>8.1f}%")  # fmt: skip
    print("(wall: elapsed time; cpu: CPU-seconds of this process / threads, robust to load)")
    print()
    best = max(MODES, key=lambda m: flops / med(cpu[m]))
    for label, times, peak in (("wall", wall, peak_wall), ("cpu-time", cpu, peak_cpu)):
        share = flops / med(times[best]) / 1e9 / peak
        ratio = med(times["input order, 64/batch"]) / med(times["sorted, 64/batch"])
        print(f"[{label}] share of peak, best mode ({best}): {100 * share:.1f}% "
              f"(target >= 60%: {'met' if share >= 0.6 else 'NOT met'}); sorting speed-up at "
              f"64/batch: {ratio:.2f}x (target >= 1.3x: {'met' if ratio >= 1.3 else 'NOT met'})")  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(1-minute load average at the end: {load:.1f} on {os.cpu_count()} CPUs; other "
          "processes share the cores, so wall figures are pessimistic)")  # fmt: skip


if __name__ == "__main__":
    main()
