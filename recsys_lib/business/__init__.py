"""Business metrics, multi-task pCTR/pCVR models and business-aware re-ranking.

Shapes: ``n`` requests, ``C`` candidates per request, ``K`` slate size, ``d`` feature dim.
Slates are int arrays of item ids, shape (n, K), best position first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.evaluation import metrics as _metrics
from recsys_lib.linalg import normalize_rows
from recsys_lib.retrieval.topk import check_k, top_k, top_k_candidates

# ----------------------------------------------------------------------------- metrics


def _check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"arrays must have the same shape, got {shapes}")


def ctr(clicks: np.ndarray) -> float:
    """Click-through rate: clicks per impression; clicks (n, K) bool/0-1."""
    clicks = np.asarray(clicks)
    if clicks.size == 0:
        raise ValueError("ctr of an empty array is undefined; pass at least one impression")
    return float(clicks.mean())


def cvr(clicks: np.ndarray, purchases: np.ndarray) -> float:
    """Conversion rate: purchases per click; both (n, K). NaN when there are no clicks."""
    _check_same_shape(clicks=clicks, purchases=purchases)
    n_clicks = np.asarray(clicks).sum()
    return float(np.asarray(purchases).sum() / n_clicks) if n_clicks else float("nan")


def revenue_per_impression(purchases: np.ndarray, slates: np.ndarray, price: np.ndarray) -> float:
    """Revenue per impression; purchases (n, K), slates (n, K) item ids, price (n_items,)."""
    _check_same_shape(purchases=purchases, slates=slates)
    return float((np.asarray(purchases) * price[slates]).mean())


def margin_per_impression(purchases: np.ndarray, slates: np.ndarray, margin: np.ndarray) -> float:
    """Margin (profit) per impression; same shapes as :func:`revenue_per_impression`."""
    return revenue_per_impression(purchases, slates, margin)


# One definition each, shared with the ranking chapters (see recsys_lib.evaluation.metrics for sources):
# coverage = distinct shown items / n_items; novelty = mean -log2(share of users with the item).
catalog_coverage = _metrics.catalogue_coverage
novelty = _metrics.novelty


def intra_list_diversity(slates: np.ndarray, item_features: np.ndarray) -> float:
    """Mean pairwise dissimilarity ``1 - cos(f_i, f_j)`` within each slate, averaged.

    slates (n, K) with K >= 2; item_features (n_items, d), e.g. one-hot categories.
    """
    k = slates.shape[1]
    if k < 2:
        raise ValueError(f"intra-list diversity needs slates of >= 2 items, got K={k}")
    f = normalize_rows(item_features, dtype=np.float64)[slates]  # (n, K, d)
    sim = np.einsum("nkd,njd->nkj", f, f)
    off = (sim.sum(axis=(1, 2)) - np.trace(sim, axis1=1, axis2=2)) / (k * (k - 1))
    return float(np.mean(1.0 - off))


def exposure_share(
    slates: np.ndarray, item_mask: np.ndarray, position_weights: np.ndarray | None = None
) -> float:
    """Share of (position-weighted) exposure that goes to items with ``item_mask`` True.

    slates (n, K); item_mask (n_items,) bool (e.g. new or long-tail items);
    position_weights (K,) examination weights, default uniform.
    """
    w = np.ones(slates.shape[1]) if position_weights is None else np.asarray(position_weights)
    if w.shape != (slates.shape[1],):
        raise ValueError(f"position_weights shape {w.shape} must be ({slates.shape[1]},)")
    return float((np.asarray(item_mask)[slates] * w).sum() / (w.sum() * slates.shape[0]))


def one_hot(labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """(n,) int labels -> (n, n_classes) float one-hot matrix."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    out = np.zeros((labels.size, n_classes))
    out[np.arange(labels.size), labels] = 1.0
    return out


# ----------------------------------------------------------------------------- models


@dataclass
class MultiTaskModel:
    """Fitted pCTR/pCVR model (ESMM-style). Holds a torch module; use :func:`predict_ctr_cvr`."""

    module: Any
    price: np.ndarray
    losses: list[float]


def _build_module(n_users: int, n_items: int, n_cats: int, n_brands: int, dim: int, k: int):
    import torch
    from torch import nn

    class _Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_items, dim)
            self.cat = nn.Embedding(n_cats, dim)
            self.brand = nn.Embedding(n_brands, dim)
            self.user_ctr = nn.Embedding(n_users, dim)
            self.user_cvr = nn.Embedding(n_users, dim)
            self.user_price = nn.Embedding(n_users, 2)  # per-user price slope (ctr, cvr)
            self.item_bias = nn.Embedding(n_items, 1)
            self.pos = nn.Parameter(torch.zeros(k))
            self.lin = nn.Linear(2, 2)  # log price, is_new -> (ctr, cvr) offsets
            for e in (self.item, self.cat, self.brand, self.user_ctr, self.user_cvr):
                nn.init.normal_(e.weight, std=0.05)
            nn.init.zeros_(self.user_price.weight)
            nn.init.zeros_(self.item_bias.weight)

        def forward(self, u, i, c, b, x, pos):  # all (B,) except x (B, 2)
            v = self.item(i) + self.cat(c) + self.brand(b)
            off = self.lin(x)
            up = self.user_price(u)
            lp = x[:, 0]
            ctr_logit = (
                (self.user_ctr(u) * v).sum(-1)
                + self.item_bias(i)[:, 0]
                + off[:, 0]
                + up[:, 0] * lp
                + (self.pos[pos] if pos is not None else 0.0)
            )
            cvr_logit = (self.user_cvr(u) * v).sum(-1) + off[:, 1] + up[:, 1] * lp
            return ctr_logit, cvr_logit

    return _Net()


def _item_side(catalog: pd.DataFrame, ref_price: float):
    cat_codes = pd.factorize(catalog["category"], sort=True)[0]
    brand_codes = pd.factorize(catalog["brand"], sort=True)[0]
    x = np.stack(
        [np.log(catalog["price"].to_numpy() / ref_price), catalog["is_new"].to_numpy(float)], 1
    )
    return cat_codes, brand_codes, x.astype(np.float32)


def fit_multitask(
    users: np.ndarray,
    slates: np.ndarray,
    clicks: np.ndarray,
    purchases: np.ndarray,
    catalog: pd.DataFrame,
    n_users: int,
    click_weight: np.ndarray | None = None,
    dim: int = 16,
    epochs: int = 3,
    batch_size: int = 4096,
    lr: float = 0.02,
    weight_decay: float = 1e-5,
    seed: int = 0,
    device: str = "auto",
    num_threads: int | None = 1,
) -> MultiTaskModel:
    """Train pCTR and pCVR jointly on logged impressions (ESMM: the purchase label trains
    pCTR x pCVR on all impressions, which avoids the click-only selection bias).

    users (n,); slates, clicks, purchases (n, K); catalog: DataFrame with category, brand,
    price, is_new. ``click_weight`` (n, K) re-weights the click loss per impression; default
    all ones. Weighting the *positives* by value (``w = price / ref`` where clicked, 1
    elsewhere) makes the learned odds ``value x click odds``, i.e. a value-aware click model
    ("loss re-weighting"). A weight that depends on the item alone would not change the
    per-item optimum, only how shared parameters trade items off.
    Position is a feature during training and fixed to position 0 at prediction time.
    ``num_threads``: torch CPU threads during the fit (restored afterwards); one is fastest
    for these small updates (measured: 2 threads cost twice the CPU for the same result),
    None keeps torch's setting.
    """
    import torch

    _check_same_shape(slates=slates, clicks=clicks, purchases=purchases)
    if len(users) != slates.shape[0]:
        raise ValueError(f"users has {len(users)} rows but slates has {slates.shape[0]}")
    if click_weight is not None:
        _check_same_shape(slates=slates, click_weight=click_weight)
        if (np.asarray(click_weight) < 0).any():
            raise ValueError("click_weight must be non-negative")
    from recsys_lib.runtime import resolve_device

    dev = resolve_device(device)
    torch.manual_seed(seed)
    n, k = slates.shape
    price = catalog["price"].to_numpy()
    ref = float(np.median(price))
    cat_codes, brand_codes, x_item = _item_side(catalog, ref)
    net = _build_module(
        n_users, len(catalog), cat_codes.max() + 1, brand_codes.max() + 1, dim, k
    ).to(dev)
    items = slates.ravel()

    # two row-major tables, one gather per epoch: the shuffled epoch is then read in contiguous
    # slices (ten random gathers per update from 3-million-row columns dominated the update)
    ints = np.stack(
        [
            np.repeat(users, k),
            items,
            cat_codes[items],
            brand_codes[items],
            np.tile(np.arange(k), n),
        ],
        1,
    )
    w = np.ones(n * k) if click_weight is None else np.asarray(click_weight, float).ravel()
    floats = np.column_stack(
        [x_item[items], clicks.ravel(), purchases.ravel(), w / w.mean()]
    ).astype(np.float32)  # log price, is_new, click, purchase, click weight
    t_ints = torch.as_tensor(ints, dtype=torch.long)
    t_floats = torch.as_tensor(floats)
    # foreach: one fused update over all parameters (same result as the per-tensor loop)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    bce = torch.nn.functional.binary_cross_entropy
    gen = torch.Generator(device="cpu").manual_seed(seed)
    losses = []
    previous_threads = torch.get_num_threads()
    if num_threads is not None and dev == "cpu":
        torch.set_num_threads(num_threads)
    try:
        for _ in range(epochs):
            perm = torch.randperm(n * k, generator=gen)
            # column-major after the gather: each slice below is contiguous
            e_ints = t_ints[perm].T.contiguous().to(dev)
            e_floats = t_floats[perm].T.contiguous().to(dev)
            total = 0.0
            for s in range(0, n * k, batch_size):
                bi, bf = e_ints[:, s : s + batch_size], e_floats[:, s : s + batch_size]
                lc, lv = net(bi[0], bi[1], bi[2], bi[3], bf[:2].T, bi[4])
                pc, pv = torch.sigmoid(lc), torch.sigmoid(lv)
                loss = bce(pc, bf[2], weight=bf[4]) + bce((pc * pv).clamp(1e-7, 1 - 1e-7), bf[3])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * bi.shape[1]
            losses.append(total / (n * k))
    finally:
        torch.set_num_threads(previous_threads)
    net.eval()
    return MultiTaskModel(module=net.cpu(), price=price, losses=losses)


def predict_ctr_cvr(
    model: MultiTaskModel, users: np.ndarray, items: np.ndarray, catalog: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted pCTR (at the top position) and pCVR; users (n,), items (n, C) -> 2 x (n, C)."""
    import torch

    users, items = np.asarray(users), np.asarray(items)
    if items.ndim != 2 or len(users) != items.shape[0]:
        raise ValueError(f"need users (n,) and items (n, C); got {users.shape}, {items.shape}")
    cat_codes, brand_codes, x_item = _item_side(catalog, float(np.median(model.price)))
    flat = items.ravel()
    with torch.no_grad():
        lc, lv = model.module(
            torch.as_tensor(np.repeat(users, items.shape[1]), dtype=torch.long),
            torch.as_tensor(flat, dtype=torch.long),
            torch.as_tensor(cat_codes[flat], dtype=torch.long),
            torch.as_tensor(brand_codes[flat], dtype=torch.long),
            torch.as_tensor(x_item[flat]),
            torch.zeros(flat.size, dtype=torch.long),
        )
    return (
        torch.sigmoid(lc).numpy().reshape(items.shape),
        torch.sigmoid(lv).numpy().reshape(items.shape),
    )


def expected_value(pctr: np.ndarray, pcvr: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Expected value per impression ``pCTR * pCVR * value`` (value = price or margin), (n, C)."""
    _check_same_shape(pctr=pctr, pcvr=pcvr, value=value)
    return np.asarray(pctr) * np.asarray(pcvr) * np.asarray(value)


def slate_predictions(
    model: MultiTaskModel, users: np.ndarray, slates: np.ndarray, catalog: pd.DataFrame
) -> dict[str, np.ndarray]:
    """The model's expected click and revenue of each shown item *at the top slot*, the direct
    method of :func:`offline_estimates`: users (n,), slates (n, K) -> {"ctr": pCTR,
    "revenue_per_impression": pCTR * pCVR * price}, each (n, K)."""
    pctr, pcvr = predict_ctr_cvr(model, users, slates, catalog)
    return {
        "ctr": pctr,
        "revenue_per_impression": pctr * pcvr * catalog["price"].to_numpy()[slates],
    }


def candidate_positions(
    candidates: np.ndarray, slates: np.ndarray, chunk: int = 20_000
) -> np.ndarray:
    """Column of each slate item in its row of ``candidates``; (n, C), (n, K) -> (n, K).

    Candidates must be distinct within a row and every slate item one of them (as for any
    slate ranked from those candidates); raises otherwise.
    """
    candidates, slates = np.asarray(candidates), np.asarray(slates)
    if candidates.ndim != 2 or slates.ndim != 2 or len(candidates) != len(slates):
        raise ValueError(
            f"need candidates (n, C) and slates (n, K); got {candidates.shape}, {slates.shape}"
        )
    pos = np.empty(slates.shape, dtype=np.int64)
    for s in range(0, len(slates), chunk):  # (chunk, K, C) comparisons at a time
        equal = candidates[s : s + chunk, None, :] == slates[s : s + chunk, :, None]
        if not equal.any(2).all():
            raise ValueError("a slate item is not among its row's candidates")
        pos[s : s + chunk] = equal.argmax(2)
    return pos


def slate_predictions_from(
    pctr: np.ndarray, pcvr: np.ndarray, candidates: np.ndarray, slates: np.ndarray,
    price: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """:func:`slate_predictions` read from predictions already made for every candidate
    (pctr, pcvr, candidates: (n, C); slates (n, K); price (n_items,)) instead of running the
    model again: the same values, without a forward pass per evaluated policy."""
    pos = candidate_positions(candidates, slates)
    ctr = np.take_along_axis(np.asarray(pctr), pos, 1)
    cvr = np.take_along_axis(np.asarray(pcvr), pos, 1)
    return {"ctr": ctr, "revenue_per_impression": ctr * cvr * np.asarray(price)[slates]}


def offline_estimates(
    log: Any,
    target_slates: np.ndarray,
    price: np.ndarray,
    position_bias: np.ndarray,
    predicted_logged: Mapping[str, np.ndarray],
    predicted_target: Mapping[str, np.ndarray],
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Off-policy estimates of a deterministic slate policy's CTR and revenue per impression
    from logged data: what a team can compute before any A/B test (no simulator truth).

    log: :class:`recsys_lib.business.shop.ImpressionLog` of the logging policy (n visits, K slots);
    target_slates (n, K): what the policy would show on those visits; price (n_items,);
    position_bias (K,): examination probability per slot relative to the top, e.g.
    :func:`recsys_lib.business.ope.position_bias_from_exploration`. predicted_logged / predicted_target:
    the reward model's top-slot predictions (n, K) per metric for the logged and the target
    slates, from :func:`slate_predictions` (at slot k they are scaled by ``position_bias[k]``).
    Returns ``{metric: {"IPS", "SNIPS", "DR", "PBM-DR": ope.Estimate}}``: item-position IPS,
    self-normalised IPS, item-position doubly robust, and the position-based doubly robust
    estimate (:func:`recsys_lib.business.ope.pbm_estimate`, the lowest variance of the four).
    """
    from recsys_lib.business import ope

    b = np.asarray(position_bias, dtype=float)
    match = ope.item_position_match(target_slates, log.slates)
    rewards = {"ctr": log.clicks, "revenue_per_impression": log.purchases * price[log.slates]}
    out = {}
    for metric, y in rewards.items():
        q_log, q_tgt = predicted_logged[metric], predicted_target[metric]
        out[metric] = {
            "IPS": ope.ips_estimate(y, match, log.propensity, alpha),
            "SNIPS": ope.snips_estimate(y, match, log.propensity, alpha),
            "DR": ope.dr_estimate(y, match, log.propensity, b * q_log, b * q_tgt, alpha),
            "PBM-DR": ope.pbm_estimate(y, log.slates, target_slates, log.propensity, b, q_log,
                                       q_tgt, alpha),
        }  # fmt: skip
    return out


# ----------------------------------------------------------------------------- re-ranking


def scalarise(objectives: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum ``sum_j w_j * objective_j`` of same-shape score arrays (n, C).

    Use log-scores (e.g. log pCTR, log(pCVR * price)) to get a weighted geometric trade-off
    ``pCTR * (pCVR * price)^w``. Every weight must name an objective.
    """
    missing = set(weights) - set(objectives)
    if missing:
        raise ValueError(f"weights for unknown objectives {sorted(missing)}; "
                         f"available: {sorted(objectives)}")  # fmt: skip
    if not weights:
        raise ValueError("weights is empty; give at least one objective weight")
    shapes = {np.shape(objectives[k]) for k in weights}
    if len(shapes) > 1:
        raise ValueError(f"objective arrays differ in shape: {shapes}")
    return sum(float(w) * np.asarray(objectives[k], dtype=float) for k, w in weights.items())


def mmr_rerank(
    scores: np.ndarray,
    candidates: np.ndarray,
    item_features: np.ndarray,
    k: int,
    diversity: float,
) -> np.ndarray:
    """Maximal marginal relevance: greedily pick
    ``argmax_j (1 - diversity) * rel_j - diversity * max_{s in S} cos(f_j, f_s)``.

    scores (n, C) relevance (min-max normalised per row internally); candidates (n, C);
    item_features (n_items, d); diversity in [0, 1] (0 = plain top-k). Returns (n, k).
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity={diversity} must be in [0, 1]")
    scores, candidates = np.asarray(scores, dtype=float), np.asarray(candidates)
    _check_same_shape(scores=scores, candidates=candidates)
    n, c = scores.shape
    if k > c:
        raise ValueError(f"k={k} exceeds the number of candidates {c}")
    lo, hi = scores.min(1, keepdims=True), scores.max(1, keepdims=True)
    rel = (scores - lo) / np.where(hi > lo, hi - lo, 1.0)
    f = normalize_rows(item_features, dtype=np.float64)[candidates]  # (n, C, d)
    max_sim = np.zeros((n, c))
    taken = np.zeros((n, c), dtype=bool)
    out = np.empty((n, k), dtype=candidates.dtype)
    rows = np.arange(n)
    for step in range(k):
        val = (1.0 - diversity) * rel - diversity * max_sim
        val[taken] = -np.inf
        j = val.argmax(1)
        taken[rows, j] = True
        out[:, step] = candidates[rows, j]
        sim = np.einsum("ncd,nd->nc", f, f[rows, j])
        np.maximum(max_sim, sim, out=max_sim)
    return out


def exposure_constrained_rerank(
    scores: np.ndarray, candidates: np.ndarray, item_mask: np.ndarray, k: int, min_count: int
) -> np.ndarray:
    """Best top-``k`` slate by score subject to at least ``min_count`` items with
    ``item_mask`` True (e.g. new items), when the row has that many; (n, C) -> (n, k).

    The forced items are the best-scoring masked candidates; the slate is then ordered by score.
    """
    scores, candidates = np.asarray(scores, dtype=float), np.asarray(candidates)
    _check_same_shape(scores=scores, candidates=candidates)
    if not 0 <= min_count <= k:
        raise ValueError(f"min_count={min_count} must be in [0, k={k}]")
    check_k(k, scores.shape[1], " (the number of candidates)")
    priority = scores.copy()
    if min_count:  # the best masked candidates (fewer when the row has fewer) jump the queue
        forced = top_k(np.where(np.asarray(item_mask)[candidates], scores, -np.inf), min_count)[0]
        rows, slots = np.nonzero(forced >= 0)
        priority[rows, forced[rows, slots]] = np.inf
    chosen = top_k(priority, k)[0]
    shown = np.full_like(scores, -np.inf)
    np.put_along_axis(shown, chosen, np.take_along_axis(scores, chosen, 1), 1)
    return top_k_candidates(shown, candidates, k)  # the slate, ordered by score


def pareto_front(points: np.ndarray, maximise: Iterable[bool] | bool = True) -> np.ndarray:
    """Boolean mask (m,) of non-dominated rows of ``points`` (m, n_objectives).

    A point is dominated if another is at least as good in every objective and strictly better
    in one. ``maximise`` is one bool or one per objective (False = lower is better).
    """
    p = np.asarray(points, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"points must be 2-D (m, n_objectives), got shape {p.shape}")
    sign = np.where(np.broadcast_to(np.asarray(maximise), (p.shape[1],)), 1.0, -1.0)
    q = p * sign
    ge = (q[:, None, :] >= q[None, :, :]).all(-1)  # ge[a, b]: a weakly dominates b
    gt = (q[:, None, :] > q[None, :, :]).any(-1)
    dominated = (ge & gt).any(0)
    return ~dominated


def pareto_sweep(
    evaluate: Callable[..., Mapping[str, float]],
    grid: Iterable[Mapping[str, Any]],
    objectives: Mapping[str, bool],
) -> pd.DataFrame:
    """Evaluate a policy for every parameter setting and flag the non-dominated ones.

    evaluate(**params) -> dict of metrics; grid: parameter dicts; objectives: metric name ->
    True if higher is better. Returns one row per setting with params, metrics and ``pareto``.
    """
    rows = [{**params, **evaluate(**params)} for params in grid]
    if not rows:
        raise ValueError("grid is empty; give at least one parameter setting")
    df = pd.DataFrame(rows)
    missing = [m for m in objectives if m not in df]
    if missing:
        raise ValueError(f"evaluate() did not return objectives {missing}; got {list(df)}")
    df["pareto"] = pareto_front(df[list(objectives)].to_numpy(), list(objectives.values()))
    return df


# ----------------------------------------------------------------------------- policies


def tradeoff_slates(
    pctr: np.ndarray,
    pcvr: np.ndarray,
    value: np.ndarray,
    candidates: np.ndarray,
    k: int,
    value_weight: float,
    diversity: float = 0.0,
    item_features: np.ndarray | None = None,
) -> np.ndarray:
    """Slates from the scalarised score ``log pCTR + value_weight * log(pCVR * value)``
    (= ranking by ``pCTR * (pCVR * value)^value_weight``), optionally MMR-diversified.

    pctr, pcvr, value, candidates: (n, C). value_weight 0 = CTR-optimal, 1 = expected-value
    optimal. ``diversity`` > 0 needs ``item_features`` (n_items, d). Returns (n, k).
    """
    eps = 1e-12
    score = scalarise(
        {"ctr": np.log(pctr + eps), "value": np.log(pcvr * value + eps)},
        {"ctr": 1.0, "value": value_weight},
    )
    if diversity > 0:
        if item_features is None:
            raise ValueError("diversity > 0 needs item_features (n_items, d) for similarities")
        return mmr_rerank(score, candidates, item_features, k, diversity)
    return top_k_candidates(score, candidates, k)


def evaluate_slates(
    shop: Any, users: np.ndarray, slates: np.ndarray, item_features: np.ndarray
) -> dict[str, float]:
    """Ground-truth business metrics of showing ``slates`` (n, K) to ``users`` (n,) in the
    shop simulator: expected ctr, cvr, revenue and margin per impression, plus intra-list
    diversity over ``item_features``, catalogue coverage and new-item exposure share."""
    from recsys_lib.business.shop import position_bias, true_policy_value

    out = dict(true_policy_value(shop, users, slates))
    out["diversity"] = intra_list_diversity(slates, item_features)
    out["coverage"] = catalog_coverage(slates, shop.n_items)
    out["new_exposure"] = exposure_share(slates, shop.is_new, position_bias(slates.shape[1]))
    return {k: float(v) for k, v in out.items()}


def choose_operating_point(
    sweep: pd.DataFrame,
    baseline: Mapping[str, float],
    max_ctr_drop: float,
    objective: str = "revenue_per_impression",
    ctr_col: str = "ctr",
) -> pd.Series:
    """Pick the Pareto row with the highest ``objective`` whose CTR is at most
    ``max_ctr_drop`` (relative) below ``baseline[ctr_col]``.

    sweep: output of :func:`pareto_sweep`. Raises if no Pareto row satisfies the constraint.
    """
    ok = sweep[sweep["pareto"] & (sweep[ctr_col] >= (1 - max_ctr_drop) * baseline[ctr_col])]
    if ok.empty:
        raise ValueError(
            f"no Pareto point keeps {ctr_col} within {max_ctr_drop:.1%} of the baseline "
            f"{baseline[ctr_col]:.4f}; relax max_ctr_drop or widen the grid"
        )
    return ok.loc[ok[objective].idxmax()]


def value_weight_tradeoff(
    shop: Any,
    model: MultiTaskModel,
    tune: Any,
    test: Any,
    k: int,
    weights: Iterable[float],
    max_ctr_drop: float,
    item_features: np.ndarray,
) -> dict[str, float]:
    """Choose the value weight on ``tune`` data, then measure that choice on ``test`` visits.

    For each weight in ``weights`` (which must include 0, the CTR-optimal ranking), slates
    come from :func:`tradeoff_slates` with the model's pCTR/pCVR and the shop's prices. The
    chosen weight has the most tuning revenue among those losing at most ``max_ctr_drop``
    (relative) of tuning CTR. ``tune`` is either a logged :class:`recsys_lib.business.shop.ImpressionLog`
    (then tuning CTR and revenue are position-based doubly robust off-policy estimates,
    what a team has) or
    :class:`recsys_lib.business.shop.Requests` (then the simulator's truth judges them, an oracle).
    ``test``: Requests judged by the simulator's truth (:func:`evaluate_slates`). Returns the
    weight and, for "tune" and "test", the revenue lift and CTR change relative to weight 0.
    """
    from recsys_lib.business.ope import position_bias_from_exploration
    from recsys_lib.business.shop import ImpressionLog

    weights = [float(w) for w in weights]
    if 0.0 not in weights:
        raise ValueError("weights must include 0 (the CTR-optimal baseline)")
    truth = {}
    for tag, data in (("tune", tune), ("test", test)):
        logged = isinstance(data, ImpressionLog)
        visits = data.requests if logged else data
        pctr, pcvr = predict_ctr_cvr(model, visits.users, visits.candidates, shop.catalog)
        price = shop.price[visits.candidates]
        if logged:
            q_log = slate_predictions(model, visits.users, data.slates, shop.catalog)
            bias = position_bias_from_exploration(data.clicks, data.explored)
        truth[tag] = {}
        for w in weights:
            slates = tradeoff_slates(pctr, pcvr, price, visits.candidates, k, w)
            if logged:
                q_tgt = slate_predictions_from(pctr, pcvr, visits.candidates, slates, shop.price)
                est = offline_estimates(data, slates, shop.price, bias, q_log, q_tgt)
                truth[tag][w] = {m: e["PBM-DR"].value for m, e in est.items()}
            else:
                truth[tag][w] = evaluate_slates(shop, visits.users, slates, item_features)
    tuning = truth["tune"]
    allowed = [w for w in weights if tuning[w]["ctr"] >= (1 - max_ctr_drop) * tuning[0.0]["ctr"]]
    chosen = max(allowed, key=lambda w: tuning[w]["revenue_per_impression"])
    out = {"value_weight": chosen}
    for tag, curve in truth.items():
        base, point = curve[0.0], curve[chosen]
        out[f"{tag}_revenue_lift"] = (
            point["revenue_per_impression"] / base["revenue_per_impression"] - 1
        )
        out[f"{tag}_ctr_change"] = point["ctr"] / base["ctr"] - 1
    return out
