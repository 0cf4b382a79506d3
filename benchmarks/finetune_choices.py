"""How chapter 5 chose its fine-tuning settings: validation only, never test.

    python benchmarks/finetune_choices.py two-tower                 # learning rates, CPU minutes
    python benchmarks/finetune_choices.py cross-encoder             # layers x learning rate
    python benchmarks/finetune_choices.py cross-encoder --configs 1:1e-3:6000:4 2:2e-4:4000:2
    python benchmarks/finetune_choices.py both --json benchmarks/results/finetune_choices.json

Rebuilds chapter 5's data exactly (the chapter 0 split, validation carved from train, the
profile/target split of the fit part) and trains each setting with early stopping on the
validation split, as the chapter does:

* ``two-tower``: the top ``--layers`` of the two-tower model on the target pairs (user texts
  from the profile part), for each learning rate; validation nDCG@10 (users described by the
  whole fit part, ranked against the validation split). The trunk's frozen outputs are cached
  once and shared by all rates.
* ``cross-encoder``: settings ``layers:lr:pairs:epochs`` (top layers fine-tuned, peak learning
  rate of the encoder, the pooler and head at 10x, training pairs, maximum passes); validation
  AUC on the chapter's 1,000 validation pairs. The popularity phrase alone is printed as the
  reference the text model must first reach.

Each row reports the best validation figure, the update where it was reached, the last update
(best < last means early stopping found a plateau), the validation curve and the training
speed. The row with the best validation figure is the chapter's choice.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

CE_CONFIGS = ["2:2e-4:4000:2", "2:2e-4:4000:6", "1:5e-4:4000:6", "1:1e-3:4000:6"]


def _data(args):
    from recsys_lib.data import splits
    from recsys_lib.data.interactions import Interactions, shared_interactions
    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.text import descriptions as text

    ml = load_movielens_100k(args.data)
    train_df, test_df = splits.recommenders_stratified_split(ml.ratings, seed=args.seed)
    fit_df, val_df = splits.stratified_split(train_df, 0.8, by="user_id", seed=args.seed)
    profile_df, target_df = splits.stratified_split(fit_df, args.profile_share, by="user_id",
                                                    seed=args.seed)  # fmt: skip
    train, _ = shared_interactions(train_df, test_df)
    cat = train.catalogue
    d = dict(ml=ml, train_df=train_df, test_df=test_df, fit_df=fit_df, val_df=val_df,
             profile_df=profile_df, target_df=target_df, cat=cat)  # fmt: skip
    d["fit"], d["val"] = (Interactions.from_frame(f, cat) for f in (fit_df, val_df))
    d["user_profile"] = text.user_descriptions(profile_df, ml.items, ml.users).reindex(cat.user_ids)
    d["user_fit"] = text.user_descriptions(fit_df, ml.items, ml.users).reindex(cat.user_ids)
    return d


def _curve(hist, metric: str) -> list[list[float]]:
    return [[int(e["step"]), round(float(e[metric]), 4)] for e in hist.evals]


def two_tower(args, d) -> pd.DataFrame:
    from recsys_lib.text import descriptions as text
    from recsys_lib.text import finetune as ft
    from recsys_lib.text import pairs as pr

    item_text = text.item_descriptions(d["ml"].items).reindex(d["cat"].item_ids)
    tokenizer = ft.load_tokenizer(args.model)
    tower = ft.TwoTower(ft.load_encoder(args.model), tokenizer, n_trainable=args.layers,
                        max_length=64, device="cpu")  # fmt: skip
    start_state = ft.copy_state(tower.encoder)
    rows = []
    for lr in args.lrs:
        tower.encoder.load_state_dict(start_state)
        config = ft.TrainConfig(epochs=1000, max_steps=args.steps, batch_size=64, lr=lr,
                                max_length=64, eval_every=args.eval_every,
                                patience=args.patience, seed=args.seed, device="cpu",
                                progress=False)  # fmt: skip
        start = time.perf_counter()
        hist = ft.train_two_tower(
            tower, pr.positives(d["target_df"]), d["user_profile"], item_text, config,
            temperature=0.05,
            evaluate=lambda t: ft.ranking_metrics(t, d["user_fit"], item_text, d["fit"],
                                                  d["val"], 10),
            monitor="ndcg@10",
        )  # fmt: skip
        rows.append({"model": "two-tower", "layers": args.layers, "lr": lr,
                     "best validation": hist.best_score, "best step": hist.best_step,
                     "last step": hist.steps[-1], "stopped early": hist.stopped_early,
                     "start": hist.evals[0]["ndcg@10"], "pairs/s": hist.examples_per_second,
                     "seconds": time.perf_counter() - start,
                     "curve": _curve(hist, "ndcg@10")})  # fmt: skip
        print(pd.DataFrame(rows[-1:]).drop(columns="curve").to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def cross_encoder(args, d) -> pd.DataFrame:
    from recsys_lib.evaluation.metrics import roc_auc
    from recsys_lib.text import descriptions as text
    from recsys_lib.text import finetune as ft
    from recsys_lib.text import pairs as pr

    ml, cat = d["ml"], d["cat"]
    item_ids = cat.item_ids
    pair_sets = pr.click_pair_sets(d["fit_df"], d["val_df"], d["train_df"], d["test_df"],
                                   item_ids, seed=args.seed, sizes=(None, 1000, 3000),
                                   train_targets=d["target_df"])  # fmt: skip
    train_pairs, val = pair_sets.train, pair_sets.val
    words = dict(cuts=pr.PERCENTILE_CUTS, words=pr.PERCENTILE_WORDS)
    level = pr.popularity_labels(d["fit_df"], item_ids, **words)
    rank = {w: r for r, w in enumerate(pr.PERCENTILE_WORDS)}
    phrase_auc = roc_auc(val["label"].to_numpy(),
                         level.reindex(val["item_id"]).map(rank).to_numpy(float))  # fmt: skip
    print(f"validation AUC of the popularity phrase alone: {phrase_auc:.4f}", flush=True)
    from recsys_lib.data.owndata import item_template

    template = item_template(ml) + " Popularity: {pop}."
    item_text = text.item_descriptions(ml.items, template, extra={"pop": level})
    tokenizer = ft.load_tokenizer(args.model)
    rows = []
    for spec in args.configs:
        layers, lr, n_pairs, epochs = spec.split(":")
        model = ft.load_cross_encoder(args.model, seed=args.seed)
        ft.freeze_lower_layers(model, int(layers))
        config = ft.TrainConfig(epochs=int(epochs), batch_size=32, lr=float(lr),
                                head_lr_scale=10.0, max_length=48,
                                eval_every=args.ce_eval_every, patience=args.patience,
                                seed=args.seed, device="cpu", progress=False)  # fmt: skip
        chosen = train_pairs.iloc[: int(n_pairs)]
        start = time.perf_counter()
        hist = ft.train_cross_encoder(model, tokenizer, chosen, d["user_profile"], item_text,
                                      config, val_pairs=val, val_user_text=d["user_fit"],
                                      monitor="auc")  # fmt: skip
        rows.append({"model": "cross-encoder", "layers": int(layers), "lr": float(lr),
                     "pairs": len(chosen), "max epochs": int(epochs),
                     "best validation": hist.best_score, "best step": hist.best_step,
                     "last step": hist.steps[-1], "stopped early": hist.stopped_early,
                     "phrase alone": phrase_auc, "pairs/s": hist.examples_per_second,
                     "setup s": hist.setup_seconds, "seconds": time.perf_counter() - start,
                     "curve": _curve(hist, "auc")})  # fmt: skip
        print(pd.DataFrame(rows[-1:]).drop(columns="curve").to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("which", choices=["two-tower", "cross-encoder", "both"], nargs="?",
                        default="two-tower")  # fmt: skip
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3])
    parser.add_argument("--steps", type=int, default=300, help="two-tower update cap")
    parser.add_argument("--eval-every", type=int, default=15, help="two-tower (one epoch: 15)")
    parser.add_argument("--layers", type=int, default=1, help="two-tower layers trained")
    parser.add_argument("--configs", nargs="+", default=CE_CONFIGS,
                        help="cross-encoder layers:lr:pairs:epochs")  # fmt: skip
    parser.add_argument("--ce-eval-every", type=int, default=50)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--profile-share", type=float, default=0.5)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=os.environ.get("RECSYS_DATA_DIR"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows (with curves) to this file")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    d = _data(args)
    parts = []
    if args.which in ("two-tower", "both"):
        parts.append(two_tower(args, d))
    if args.which in ("cross-encoder", "both"):
        parts.append(cross_encoder(args, d))
    table = pd.concat(parts, ignore_index=True)
    for _model, part in table.groupby("model"):
        best = part["best validation"].idxmax()
        table.loc[part.index, "chosen"] = part.index == best
    print(table.drop(columns="curve").to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if args.json:
        record = {"argv": argv if argv is not None else __import__("sys").argv[1:],
                  "rows": json.loads(table.to_json(orient="records"))}  # fmt: skip
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
