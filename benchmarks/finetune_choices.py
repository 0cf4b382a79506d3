"""How chapter 5 chose the two-tower learning rate (TT_LR): validation nDCG, never test.

    python benchmarks/finetune_choices.py                      # 3 rates x 60 updates, CPU minutes
    python benchmarks/finetune_choices.py --lrs 1e-4 3e-4 --steps 20

Rebuilds chapter 5's data exactly (the chapter 0 split, validation carved from train, the
profile/target split of the fit part), then for each learning rate fine-tunes the top
``--layers`` of the two-tower model on the target pairs (user texts from the profile part) and
reports the best validation nDCG@10 (users described by the whole fit part, ranked against the
validation split) and the update where it was reached. The rate with the highest validation
nDCG is the chapter's ``TT_LR``. The trunk's frozen outputs are cached once and shared.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd


def run(args) -> pd.DataFrame:
    import torch

    from recsys_lib.data import splits
    from recsys_lib.data.interactions import Interactions, shared_interactions
    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.text import descriptions as text
    from recsys_lib.text import finetune as ft
    from recsys_lib.text import pairs as pr

    torch.set_num_threads(args.threads)
    ml = load_movielens_100k(args.data)
    train_df, test_df = splits.recommenders_stratified_split(ml.ratings, seed=args.seed)
    fit_df, val_df = splits.stratified_split(train_df, 0.8, by="user_id", seed=args.seed)
    profile_df, target_df = splits.stratified_split(fit_df, args.profile_share, by="user_id",
                                                    seed=args.seed)  # fmt: skip
    train, _ = shared_interactions(train_df, test_df)
    cat = train.catalogue
    fit, val = (Interactions.from_frame(f, cat) for f in (fit_df, val_df))
    user_profile = text.user_descriptions(profile_df, ml.items, ml.users).reindex(cat.user_ids)
    user_fit = text.user_descriptions(fit_df, ml.items, ml.users).reindex(cat.user_ids)
    item_text = text.item_descriptions(ml.items).reindex(cat.item_ids)
    tokenizer = ft.load_tokenizer(args.model)
    tower = ft.TwoTower(ft.load_encoder(args.model), tokenizer, n_trainable=args.layers,
                        max_length=64, device="cpu")  # fmt: skip
    start_state = ft.copy_state(tower.encoder)
    rows = []
    for lr in args.lrs:
        tower.encoder.load_state_dict(start_state)
        config = ft.TrainConfig(epochs=1000, max_steps=args.steps, batch_size=64, lr=lr,
                                max_length=64, eval_every=args.eval_every, patience=None,
                                seed=args.seed, device="cpu", progress=False)  # fmt: skip
        hist = ft.train_two_tower(
            tower, pr.positives(target_df), user_profile, item_text, config, temperature=0.05,
            evaluate=lambda t: ft.ranking_metrics(t, user_fit, item_text, fit, val, 10),
            monitor="ndcg@10",
        )  # fmt: skip
        rows.append({"lr": lr, "best validation ndcg@10": hist.best_score,
                     "at update": hist.best_step, "start ndcg@10": hist.evals[0]["ndcg@10"]})  # fmt: skip
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    table["chosen"] = table["best validation ndcg@10"] == table["best validation ndcg@10"].max()
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--profile-share", type=float, default=0.5)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=os.environ.get("RECSYS_DATA_DIR"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    table = run(parser.parse_args(argv))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
