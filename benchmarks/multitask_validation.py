"""How chapter 8 chose the pCTR/pCVR model's training settings (EPOCHS, LR): on validation.

    python benchmarks/multitask_validation.py                 # 3M impressions, a few minutes a setting
    python benchmarks/multitask_validation.py --impressions 300000 --settings 3:0.02 6:0.01

Draws the chapter's world and training log (same master seed and stage seeds as the notebook),
trains the multi-task model once per ``EPOCHS:LR`` setting, and scores each on a *separately
simulated validation log* (its own seed, never used by the chapter): click log-loss with the
model's slot effect (pCTR at the top slot times the examination measured on the validation
log's exploration traffic) and purchase log-loss (pCTR x pCVR at the same slot). The
setting with the lowest click log-loss is the chapter's choice; no business metric is used.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

STAGES = ["world", "log", "train", "tune", "pilot", "ab_visits", "ab_assign", "ab_outcomes",
          "ips", "sweep", "boot", "validation"]  # chapter 8's stages, plus this script's  # fmt: skip


def run(args) -> pd.DataFrame:
    import torch

    from recsys_lib import business
    from recsys_lib.business import ope
    from recsys_lib.business import shop as sim
    from recsys_lib.evaluation.metrics import log_loss

    torch.set_num_threads(args.threads)
    seeds = sim.stage_seeds(args.seed, STAGES)
    shop = sim.make_shop(sim.ShopConfig(slate_size=args.k), seed=seeds["world"])
    log = sim.simulate_logs(shop, args.impressions, seed=seeds["log"])
    val = sim.simulate_logs(shop, args.val_impressions, seed=seeds["validation"])
    bias = ope.position_bias_from_exploration(val.clicks, val.explored)
    rows = []
    for setting in args.settings:
        epochs, lr = int(setting.split(":")[0]), float(setting.split(":")[1])
        start = time.perf_counter()
        model = business.fit_multitask(log.requests.users, log.slates, log.clicks, log.purchases,
                                       shop.catalog, shop.n_users, epochs=epochs, lr=lr,
                                       seed=seeds["train"], device="cpu")  # fmt: skip
        pctr, pcvr = business.predict_ctr_cvr(model, val.requests.users, val.slates, shop.catalog)
        p_click = np.clip(bias * pctr, 1e-7, 1 - 1e-7)
        rows.append({
            "epochs": epochs, "lr": lr,
            "click log-loss": log_loss(val.clicks.ravel(), p_click.ravel()),
            "purchase log-loss": log_loss(val.purchases.ravel(), (p_click * pcvr).ravel()),
            "train s": time.perf_counter() - start,
        })  # fmt: skip
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    table["chosen"] = table["click log-loss"] == table["click log-loss"].min()
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="the chapter's master seed")
    parser.add_argument("--impressions", type=int, default=3_000_000)
    parser.add_argument("--val-impressions", type=int, default=1_000_000)
    parser.add_argument("--settings", nargs="+", default=["3:0.02", "6:0.01", "6:0.02"],
                        help="EPOCHS:LR pairs")  # fmt: skip
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    table = run(parser.parse_args(argv))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
