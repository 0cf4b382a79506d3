"""Train chapter 7's LoRA yes/no click adapter at a budget that can learn, and store it.

    python benchmarks/train_lora_adapter.py --pairs 2000 --output benchmarks/results/lora_adapter

(the defaults are the stored adapter's recipe: learning rate 5e-3, up to 4 epochs, validation
every 50 updates, stop after 4 validations without gain)

The chapter can only afford a few LoRA updates on a CPU; this script runs the long version once
(tens of minutes on 2 cores, a minute on a GPU) and stores the adapter with
:func:`recsys_lib.llm.adapter.save_adapter`: the low-rank weights (under 1 MB at the defaults), their sha256, the
base model's sha256, the key of the pairs it saw and its training log. Chapter 7 loads it,
verifies all of that against its own model and pairs, and evaluates it live on its test pairs.

Data: MovieLens 100K and chapter 7's leak-safe pair construction (same seed and sizes): the
training pairs are the first ``--pairs`` of the shuffled training pairs (histories from the
profile part of fit, positives from the target part); validation pairs (histories from fit,
positives from validation) choose the best update and stop training; test pairs are never read.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from _common import print_table

#: chapter 7's settings that decide the pairs (its parameters cell)
CHAPTER = {"seed": 42, "profile_share": 0.5, "ce_train_pairs": 1000, "val_pairs": 200,
           "test_pairs": 400, "history": 5}  # fmt: skip


def chapter_pairs(data: str | None):
    """Chapter 7's splits and leak-safe click pairs: (items, part per set, pair sets)."""
    from recsys_lib.data import splits
    from recsys_lib.data.interactions import shared_interactions
    from recsys_lib.data.owndata import load_dataset
    from recsys_lib.text import pairs as pr

    ml = load_dataset("movielens-100k", data_dir=data)
    seed = CHAPTER["seed"]
    train_df, test_df = splits.recommenders_stratified_split(ml.ratings, seed=seed)
    fit_df, val_df = splits.stratified_split(train_df, 0.8, by="user_id", seed=seed)
    train, _ = shared_interactions(train_df, test_df)
    profile_df, target_df = pr.profile_target_split(fit_df, CHAPTER["profile_share"], seed=seed)
    sizes = (CHAPTER["ce_train_pairs"], CHAPTER["val_pairs"], CHAPTER["test_pairs"])
    pair_sets = pr.click_pair_sets(fit_df, val_df, train_df, test_df, train.catalogue.item_ids,
                                   sizes=sizes, seed=seed, train_targets=target_df)  # fmt: skip
    return ml.items, {"train": profile_df, "val": fit_df}, pair_sets


def main(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    import transformers

    from recsys_lib import llm
    from recsys_lib.evaluation import metrics
    from recsys_lib.llm import adapter
    from recsys_lib.text import finetune as ft
    from recsys_lib.text import lora

    torch.set_num_threads(args.threads)
    items, parts, pair_sets = chapter_pairs(args.data)
    shuffled = pair_sets.train_all.sample(frac=1.0, random_state=CHAPTER["seed"])
    train_pairs, val_pairs = shuffled.iloc[: args.pairs], pair_sets.val
    lm = llm.load_llm(args.model, device=args.device)
    title_of = items.set_index("item_id")["title"].to_dict()
    prompts, labels = {}, {}
    for name, frame in (("train", train_pairs), ("val", val_pairs)):
        histories, titles, by_user = llm.pair_histories(frame, parts[name], items,
                                                        n=CHAPTER["history"])  # fmt: skip
        leaks = int(llm.positives_named(frame, by_user, title_of).sum())
        if leaks:
            raise RuntimeError(f"{leaks} {name} positives are named in their own history prompt")
        prompts[name] = llm.yes_no_prompts(lm, histories, titles)
        labels[name] = frame["label"].to_numpy()
    counts = lora.add_lora_by_name(lm.model, tuple(args.targets), rank=args.rank,
                                   alpha=2.0 * args.rank, last_layers=args.last_layers)  # fmt: skip

    def evaluate() -> dict:
        margin = llm.yes_no_margin(lm, prompts["val"])
        return {"auc": metrics.roc_auc(labels["val"], margin)}

    config = ft.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            warmup_ratio=0.05, eval_every=args.eval_every, patience=args.patience,
                            seed=CHAPTER["seed"], device=lm.device, progress=True)  # fmt: skip
    start = time.perf_counter()
    history = llm.train_yes_no(lm, prompts["train"], labels["train"], config, evaluate, "auc")
    wall = time.perf_counter() - start
    every = max(1, len(history.loss) // 200)  # a light loss curve: at most ~200 points
    provenance = {
        "script": "benchmarks/train_lora_adapter.py", "arguments": vars(args), "chapter": CHAPTER,
        "train_pairs": len(train_pairs), "val_pairs": len(val_pairs),
        "pairs": "first --pairs of chapter 7's shuffled leak-safe training pairs "
                 "(pair_sets.train_all.sample(frac=1, random_state=seed))",
        "trainable": counts["trainable"], "evals": history.evals,
        "loss": {"steps": history.steps[::every], "values": history.loss[::every]},
        "best_step": history.best_step, "last_step": history.steps[-1],
        "stopped_early": history.stopped_early, "train_seconds": round(history.seconds, 1),
        "eval_seconds": round(history.eval_seconds, 1), "wall_seconds": round(wall, 1),
        "date": time.strftime("%Y-%m-%d"), "device": lm.device,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{args.threads} torch threads",
        "load_average_after": os.getloadavg()[0], "torch": torch.__version__,
        "transformers": transformers.__version__,
    }  # fmt: skip
    key = adapter.pairs_key(train_pairs, val_pairs)
    path = adapter.save_adapter(lm, args.output, targets=tuple(args.targets), rank=args.rank,
                                alpha=2.0 * args.rank, data_key=key, provenance=provenance,
                                last_layers=args.last_layers)  # fmt: skip
    print_table(f"LoRA validation AUC by update ({len(train_pairs)} pairs; best "
                f"{history.best_score:.4f} at update {history.best_step} of "
                f"{history.steps[-1]})", history.evals)  # fmt: skip
    print(f"stored {path} ({np.round(wall / 60, 1)} min)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2000, help="training pairs (the probe's)")
    parser.add_argument(
        "--epochs", type=int, default=4, help="a cap: early stopping may end sooner"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--lr", type=float, default=5e-3, help="chosen on validation (1e-3 did not learn)"
    )
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--targets", nargs="+", default=["q_proj", "v_proj"])
    parser.add_argument(
        "--last-layers",
        type=int,
        default=10,
        help="adapt only the top blocks (the backward pass stops there)",
    )
    parser.add_argument("--eval-every", type=int, default=50, help="updates between validations")
    parser.add_argument("--patience", type=int, default=4, help="validations without gain")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default=None, help="ml-100k folder (default: RECSYS_DATA_DIR)")
    parser.add_argument("--output", default="benchmarks/results/lora_adapter")
    main(parser.parse_args())
