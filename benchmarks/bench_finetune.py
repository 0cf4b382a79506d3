"""Training throughput of the chapter 5 models (pairs per second), median of repeats.

    python benchmarks/bench_finetune.py                 # this machine's CPU
    python benchmarks/bench_finetune.py --device cuda   # and on a GPU, where there is one

Rows: the cross-encoder click model (top 2 layers trainable, and fully trainable) and the
two-tower retriever (top 2 layers with the cached frozen trunk, and fully trainable), on real
MovieLens texts (a 200-user, 400-film slice) with all-MiniLM-L6-v2. Each repeat times ``--steps`` optimizer updates after one
warm-up update; validation is off. ``--model`` takes a local model folder.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd


def _texts(data_dir: str | None, n_users: int, n_items: int):
    """Training split of a slice of MovieLens (the per-pair cost does not depend on the
    catalogue size; a slice keeps the two-tower trunk cache quick to build)."""
    from recsys_lib.data import splits
    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.text import descriptions as text
    from recsys_lib.text import pairs as pr

    ml = load_movielens_100k(data_dir)
    ratings = splits.subsample_ratings(ml.ratings, n_users=n_users, n_items=n_items, seed=0)
    train_df, _ = splits.recommenders_stratified_split(ratings, seed=42)
    users = text.user_descriptions(train_df, ml.items)
    items = text.item_descriptions(ml.items[ml.items["item_id"].isin(train_df["item_id"])])
    item_ids = items.index.to_numpy()
    pairs = pr.shuffle_pairs(pr.build_pairs(train_df, train_df, item_ids, seed=0), seed=0)
    return train_df, users, items, pairs


def bench(args) -> pd.DataFrame:
    import torch

    from recsys_lib.runtime import resolve_device
    from recsys_lib.text import finetune as ft
    from recsys_lib.text import pairs as pr

    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(args.threads)
    train_df, users, items, pairs = _texts(args.data, args.users, args.items)
    tok = ft.load_tokenizer(args.model)
    rows = []
    runs = [
        ("cross-encoder", 2, args.ce_batch),
        ("cross-encoder", None, args.ce_batch),
        ("two-tower", 2, args.tt_batch),
        ("two-tower", None, args.tt_batch),
    ]
    for model_name, layers, batch in runs:
        rates, setup = [], []
        for rep in range(args.repeats):
            cfg = ft.TrainConfig(epochs=1000, max_steps=args.steps + 1, batch_size=batch,
                                 max_length=args.max_length, eval_every=None, patience=None,
                                 seed=rep, device=device, progress=False)  # fmt: skip
            start = time.perf_counter()
            if model_name == "cross-encoder":
                model = ft.load_cross_encoder(args.model, seed=rep)
                share = ft.freeze_lower_layers(model, layers)["share"]
                n = batch * (args.steps + 1)
                hist = ft.train_cross_encoder(model, tok, pairs.iloc[:n], users, items, cfg)
            else:
                tower = ft.TwoTower(ft.load_encoder(args.model), tok, n_trainable=layers,
                                    max_length=args.max_length, device=device)  # fmt: skip
                share = tower.params["share"]
                hist = ft.train_two_tower(tower, pr.positives(train_df), users, items, cfg)
            total = time.perf_counter() - start
            # drop the warm-up update: rate over the last `steps` updates
            rates.append(batch * args.steps / (hist.times[-1] - hist.times[0]))
            setup.append(total - hist.seconds)
        rows.append({
            "model": model_name,
            "trainable layers": "all" if layers is None else f"top {layers}",
            "trainable share": f"{share:.1%}",
            "batch": batch,
            "device": device if device != "cpu" else f"cpu x{args.threads}",
            "pairs/s (median)": float(np.median(rates)),
            "setup s (median)": float(np.median(setup)),
        })  # fmt: skip
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=os.environ.get("RECSYS_DATA_DIR"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--ce-batch", type=int, default=16)
    parser.add_argument("--tt-batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--users", type=int, default=200, help="users in the MovieLens slice")
    parser.add_argument("--items", type=int, default=400, help="films in the MovieLens slice")
    args = parser.parse_args(argv)
    table = bench(args)
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.1f}"))


if __name__ == "__main__":
    main()
