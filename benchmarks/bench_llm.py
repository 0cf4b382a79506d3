"""Scoring throughput of the generative re-ranker (chapter 7): shared prefix vs naive loop.

    .venv/bin/python benchmarks/bench_llm.py [--users 3] [--candidates 20] [--history 5]
                                             [--repeats 3] [--threads 2] [--model default]

Requests: MovieLens 100K users (the first ``--users`` by id), each with its ``--history`` most
recent films rated 4 or 5 and ``--candidates`` films it never rated (the most popular ones).
One request = score every candidate of one user. Modes: pointwise yes/no with the naive loop
(one full prompt per candidate), pointwise with the shared-prefix key/value cache (the history
once, every question from a copy of its cache), and listwise (one prompt, verbaliser over the
labels). Each mode runs the same requests ``--repeats`` times after a warm-up; medians are
printed, by wall time and by this process's CPU time (less sensitive to other processes on a
shared machine).

Targets (printed, never enforced): shared prefix >= 3x faster than the naive loop, with scores
equal to 1e-4.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import print_table


def requests(n_users: int, n_candidates: int, history: int):
    from recsys_lib import llm
    from recsys_lib.data.movielens import load_movielens_100k

    ml = load_movielens_100k()
    ratings, items = ml.ratings, ml.items
    titles = items.set_index("item_id")["title"]
    popular = ratings["item_id"].value_counts().index.to_numpy()
    out = []
    for uid in np.sort(ratings["user_id"].unique())[:n_users]:
        seen = set(ratings.loc[ratings["user_id"] == uid, "item_id"])
        liked = llm.user_history(ratings, items, uid, n=history)["title"].tolist()
        cands = [titles[i] for i in popular if i not in seen][:n_candidates]
        out.append((llm.history_text(liked), cands))
    return out


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(median wall s, median CPU s, last result) over ``repeats`` runs after one warm-up."""
    result = fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--history", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()

    import torch

    from recsys_lib import llm

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    lm = llm.load_llm(args.model)
    load_s = time.perf_counter() - start
    reqs = requests(args.users, args.candidates, args.history)
    hist, cands = [h for h, _ in reqs], [c for _, c in reqs]
    modes = {
        "pointwise, naive loop": lambda: llm.pointwise_matrix(lm, hist, cands, shared_prefix=False),
        "pointwise, shared prefix": lambda: llm.pointwise_matrix(lm, hist, cands),
        "listwise (one prompt)": lambda: (llm.listwise_matrix(lm, hist, cands), None),
    }
    rows, scores = [], {}
    for name, fn in modes.items():
        wall, cpu, (score, tokens) = timed(fn, args.repeats)
        scores[name] = score
        if tokens is None:
            tokens = [len(llm.chat_ids(lm, llm.listwise_prompt(h, c))) for h, c in reqs]
        rows.append({"mode": name, "tokens/request": float(np.mean(tokens)),
                     "wall ms/request": 1e3 * wall / len(reqs),
                     "cpu ms/request": 1e3 * cpu / len(reqs),
                     "requests/s (wall)": len(reqs) / wall})  # fmt: skip
    print(f"model {lm.name} on {lm.device}, {torch.get_num_threads()} threads, loaded in "
          f"{load_s:.1f} s; {len(reqs)} users x {args.candidates} candidates, history "
          f"{args.history}, {args.repeats} repeats (medians)")  # fmt: skip
    print_table("Scoring one request (all candidates of one user)", rows)
    diff = float(np.abs(scores["pointwise, naive loop"] - scores["pointwise, shared prefix"]).max())
    speed_wall = rows[0]["wall ms/request"] / rows[1]["wall ms/request"]
    speed_cpu = rows[0]["cpu ms/request"] / rows[1]["cpu ms/request"]
    print(f"\nshared prefix vs naive: {speed_wall:.2f}x by wall time, {speed_cpu:.2f}x by CPU "
          f"time (target >= 3x: {'met' if min(speed_wall, speed_cpu) >= 3 else 'NOT met'}); "
          f"max |score difference| {diff:.1e} (target <= 1e-4: {'met' if diff <= 1e-4 else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
