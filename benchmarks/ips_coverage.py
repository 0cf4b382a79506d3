"""Coverage of the IPS / SNIPS / position-based (PBM) 95% intervals over seeded repetitions.

Each repetition draws fresh logs from the shop's epsilon-greedy logging policy, evaluates a
fixed revenue-leaning target policy offline, and checks whether the interval covers the
target's true value (computed exactly from the simulator on a large independent sample of
visits). PBM is :func:`recsys_lib.business.ope.pbm_estimate` without a reward model, with the position
effect measured on each log's exploration traffic. Target: IPS coverage >= 90% of 100 repetitions.

Usage: ``python benchmarks/ips_coverage.py [--reps 100] [--impressions 500000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recsys_lib.business import ope, tradeoff_slates
from recsys_lib.business.shop import (
    click_prob,
    make_shop,
    purchase_prob,
    sample_requests,
    simulate_logs,
    true_policy_value,
)


def target_slates(shop, requests, value_weight: float) -> np.ndarray:
    """Target policy: the simulator's own click/purchase probabilities, scalarised."""
    u, c = requests.users, requests.candidates
    return tradeoff_slates(
        click_prob(shop, u, c), purchase_prob(shop, u, c), shop.price[c], c,
        shop.config.slate_size, value_weight,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--impressions", type=int, default=500_000)
    parser.add_argument("--value-weight", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    shop = make_shop(seed=0)
    t0 = time.perf_counter()
    truth_req = sample_requests(shop, 200_000, seed=args.seed)
    truth = true_policy_value(
        shop, truth_req.users, target_slates(shop, truth_req, args.value_weight)
    )
    metrics = {"ctr": "clicks", "revenue_per_impression": "revenue"}
    hits = {(m, e): 0 for m in metrics for e in ("IPS", "SNIPS", "PBM")}
    est_sum = {k: 0.0 for k in hits}
    for r in range(args.reps):
        log = simulate_logs(shop, args.impressions, seed=args.seed + 1 + r)
        target = target_slates(shop, log.requests, args.value_weight)
        match = ope.item_position_match(target, log.slates)
        bias = ope.position_bias_from_exploration(log.clicks, log.explored)
        rewards = {
            "ctr": log.clicks,
            "revenue_per_impression": log.purchases * shop.price[log.slates],
        }
        for m in metrics:
            for name, fn in (("IPS", ope.ips_estimate), ("SNIPS", ope.snips_estimate)):
                e = fn(rewards[m], match, log.propensity)
                hits[(m, name)] += e.covers(truth[m])
                est_sum[(m, name)] += e.value
            e = ope.pbm_estimate(rewards[m], log.slates, target, log.propensity, bias)
            hits[(m, "PBM")] += e.covers(truth[m])
            est_sum[(m, "PBM")] += e.value
    print(f"{args.reps} repetitions x {args.impressions:,} impressions "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    print(f"{'metric':>24} | {'estimator':>9} | {'truth':>8} | {'mean est':>8} | coverage")
    print("-" * 70)
    for (m, name), h in hits.items():
        print(f"{m:>24} | {name:>9} | {truth[m]:>8.4f} | {est_sum[(m, name)] / args.reps:>8.4f} | "
              f"{h}/{args.reps} = {h / args.reps:.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
