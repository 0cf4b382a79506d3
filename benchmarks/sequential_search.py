"""Chapter 6's transformers on validation: why BERT4Rec trails, and an equal tuning budget.

    python benchmarks/sequential_search.py diagnose --output benchmarks/results/bert4rec_diagnosis.json
    python benchmarks/sequential_search.py search --model sasrec --output benchmarks/results/sequential_search_sasrec.json
    python benchmarks/sequential_search.py search --model bert4rec --output benchmarks/results/sequential_search_bert4rec.json

Data: MovieLens 100K, chapter 6's leave-last-out split (``sequence_split``); every run trains on
``split.train`` and stops early on ``split.valid`` (each user's second-to-last item), and is
scored on that validation item: the test item is never read.

``diagnose`` changes one setting at a time from the chapter's former BERT4Rec (mask share 0.2,
learning rate 0.003, dropout 0.2, cloze task only) and reports best validation nDCG@10, the best
and last update and the seconds. ``search`` draws ``--samples`` points of :data:`SPACE` (the same
number for SASRec and BERT4Rec; chapter 6 searches 9 ALS and 6 EASE points) with
``sequential.random_search`` and stores the table with its key (``tuning.write_search``), which
chapter 6 reads when the key matches its own splits and settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from _common import print_table

SPACE = {
    "dim": [32, 64, 128],
    "lr": [0.001, 0.003, 0.01],
    "dropout": [0.1, 0.2, 0.4],
}
MASK_SPACE = {"mask_prob": [0.1, 0.2, 0.4]}  # BERT4Rec only
#: the chapter's fixed settings (its parameters cell): window, size, batch, early stopping
FIXED = {"max_length": 50, "layers": 2, "heads": 2, "batch_size": 128, "epochs": 100,
         "patience": 6, "eval_every_epochs": 1}  # fmt: skip
DIAGNOSIS = {
    "former (mask 0.2, lr 0.003, dropout 0.2)": {},
    "last item hidden in 30% of windows": {"last_item_prob": 0.3},
    "mask share 0.4": {"mask_prob": 0.4},
    "learning rate 0.001": {"lr": 0.001},
    "dropout 0.1": {"dropout": 0.1},
    "patience 12": {"patience": 12},
    "learning rate 0.001, last item in 30%": {"lr": 0.001, "last_item_prob": 0.3},
    "learning rate 0.0003, last item in 30%": {"lr": 0.0003, "last_item_prob": 0.3},
    "batch 32, lr 0.001, dropout 0.1, last item in 30%, 12 epochs, no early stop": {
        "batch_size": 32, "lr": 0.001, "dropout": 0.1, "last_item_prob": 0.3, "patience": None,
        "epochs": 12},
    "batch 16, lr 0.001, dropout 0.1, last item in 30%, 8 epochs, no early stop": {
        "batch_size": 16, "lr": 0.001, "dropout": 0.1, "last_item_prob": 0.3, "patience": None,
        "epochs": 8},
}  # fmt: skip
BERT4REC_BATCH = 16  # BERT4Rec's batch: ~4x SASRec's updates per epoch to leave its plateau


def split_and_factory(model: str, seed: int, data=None):
    """The chapter's split and a ``make(**params)`` building ``model`` with FIXED settings."""
    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.data.sequences import sequence_split
    from recsys_lib.models import sequential as sq
    from recsys_lib.text.finetune import TrainConfig

    split = sequence_split(load_movielens_100k(data).ratings)
    n_windows = len(sq.sliding_windows(split.train.items, FIXED["max_length"] + 1,
                                       FIXED["max_length"], min_items=2)[0])  # fmt: skip

    def make(lr=0.003, patience=FIXED["patience"], dim=64, dropout=0.2,
             batch_size=FIXED["batch_size"], epochs=FIXED["epochs"], **extra):  # fmt: skip
        steps = -(-n_windows // batch_size)  # an epoch of SASRec's windows, as in chapter 6
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                          warmup_ratio=0.0, max_length=FIXED["max_length"],
                          eval_every=FIXED["eval_every_epochs"] * steps, patience=patience,
                          seed=seed, device="cpu", progress=False)  # fmt: skip
        cls = sq.SASRec if model == "sasrec" else sq.BERT4Rec
        return cls(dim=dim, layers=FIXED["layers"], heads=FIXED["heads"], dropout=dropout,
                   config=cfg, **extra)  # fmt: skip

    return split, make


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def diagnose(args) -> None:
    import numpy as np

    from recsys_lib.evaluation.protocol import evaluate
    from recsys_lib.models.base import Popularity

    split, make = split_and_factory("bert4rec", args.seed, args.data)
    popularity = evaluate(Popularity().fit(split.train), split.valid, 10)["ndcg@10"]
    rows = []
    for label, change in DIAGNOSIS.items():
        if args.only and not any(part in label for part in args.only):
            continue
        model = make(**change).fit(split.train, valid=split.valid)
        h = model.history_
        curve = h.eval_frame()["ndcg@10"].round(4).tolist()
        scores = model.score(np.arange(200))  # does the [MASK] state depend on the history?
        spread = float(scores.std(0).mean() / scores.std(1).mean())
        rows.append({"variant": label, "valid ndcg@10": h.best_score, "best step": h.best_step,
                     "last step": h.steps[-1], "fit s": round(model.fit_seconds_, 1),
                     "score spread across users / within a user": spread,
                     "curve": curve})  # fmt: skip
        print(rows[-1], flush=True)
    if args.merge and os.path.exists(args.output):  # keep the rows of variants not rerun
        with open(args.output) as f:
            done = {row["variant"]: row for row in json.load(f)["rows"]}
        rows = list({**done, **{row["variant"]: row for row in rows}}.values())
    content = {"script": "benchmarks/sequential_search.py diagnose", "fixed": FIXED,
               "popularity_valid_ndcg@10": popularity, "date": time.strftime("%Y-%m-%d"),
               "machine": machine(), "load_average_after": os.getloadavg()[0], "rows": rows}  # fmt: skip
    with open(args.output, "w") as f:
        json.dump(content, f, indent=1)
    print_table(f"BERT4Rec on validation (popularity {popularity:.4f})",
                [{k: v for k, v in r.items() if k != "curve"} for r in rows])  # fmt: skip


def search(args) -> None:
    from recsys_lib.evaluation import tuning
    from recsys_lib.models import sequential as sq

    split, make = split_and_factory(args.model, args.seed, args.data)
    space = {**SPACE, **(MASK_SPACE if args.model == "bert4rec" else {})}
    fixed = {**FIXED, **({"batch_size": BERT4REC_BATCH, "last_item_prob": args.last_item_prob}
                         if args.model == "bert4rec" else {})}  # fmt: skip
    start = time.perf_counter()
    table = sq.random_search(lambda **p: make(**fixed_extra(args.model, fixed), **p), space,
                             split.train, split.valid, n_samples=args.samples, seed=args.seed)  # fmt: skip
    key = search_key(split, args.model, args.seed, args.samples, space, fixed)
    tuning.write_search(args.output, table, key, script="benchmarks/sequential_search.py search",
                        space=space, fixed=fixed, n_samples=args.samples,
                        date=time.strftime("%Y-%m-%d"), machine=machine(),
                        seconds=round(time.perf_counter() - start, 1),
                        load_average_after=os.getloadavg()[0])  # fmt: skip
    print_table(f"{args.model} random search ({args.samples} points), validation",
                table.to_dict("records"))  # fmt: skip


def fixed_extra(model: str, fixed: dict) -> dict:
    """The model arguments among FIXED that ``make`` does not set itself."""
    if model == "bert4rec":
        return {"batch_size": fixed["batch_size"], "last_item_prob": fixed["last_item_prob"]}
    return {}


def search_key(split, model: str, seed: int, samples: int, space: dict, fixed: dict) -> dict:
    """What chapter 6 recomputes to accept a stored search (same splits and settings)."""
    from recsys_lib.evaluation import tuning

    return tuning.search_key(split.train, split.valid, dataset="movielens-100k", seed=seed,
                             model=model, samples=samples, space=space, fixed=fixed)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["diagnose", "search"])
    parser.add_argument("--model", choices=["sasrec", "bert4rec"], default="sasrec")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--last-item-prob", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=os.environ.get("RECSYS_DATA_DIR"))
    parser.add_argument("--output", required=True)
    parser.add_argument("--only", nargs="*", help="diagnose: variants whose label holds one")
    parser.add_argument("--merge", action="store_true", help="diagnose: keep the file's rows")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    diagnose(args) if args.mode == "diagnose" else search(args)
