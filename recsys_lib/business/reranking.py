"""Business-aware re-ranking: scalarised objectives, MMR, exposure-constrained re-ranking, Pareto
fronts and sweeps, and choosing an operating point on off-policy estimates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.business.kpis import (
    _check_same_shape,
    catalog_coverage,
    exposure_share,
    intra_list_diversity,
)
from recsys_lib.business.multitask import (
    MultiTaskModel,
    offline_values,
    predict_ctr_cvr,
    slate_predictions,
    slate_predictions_from,
)
from recsys_lib.linalg import normalize_rows
from recsys_lib.retrieval.topk import check_k, top_k, top_k_candidates
from recsys_lib.validation import check_array

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
    bad = {k: w for k, w in weights.items() if not np.isfinite(float(w))}
    if bad:
        raise ValueError(f"weights must be finite numbers, got {bad}; a NaN weight makes every "
                         "score NaN")  # fmt: skip
    for name in weights:  # -inf (a log of 0: "never") is allowed, NaN and +inf are not
        values = np.asarray(objectives[name], dtype=float)
        check_array(f"objectives[{name!r}]", np.where(values == -np.inf, 0.0, values))
    parts = [float(w) * np.asarray(objectives[k], dtype=float) for k, w in weights.items()]
    return np.asarray(sum(parts))


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
    check_k(k)
    scores, candidates = check_array("scores", scores), np.asarray(candidates)
    _check_same_shape(scores=scores, candidates=candidates)
    n, c = scores.shape
    if k > c:
        raise ValueError(f"k={k} exceeds the number of candidates {c}")
    lo, hi = scores.min(1, keepdims=True), scores.max(1, keepdims=True)
    rel = (scores - lo) / np.where(hi > lo, hi - lo, 1.0)
    unit = normalize_rows(item_features, dtype=np.float64)
    n_items, dim = unit.shape
    rows = np.arange(n)
    if n_items * n_items <= n * c * dim:  # the item-item Gram matrix is the smaller table
        gram = (unit @ unit.T).ravel()
        offsets = candidates.astype(np.int64) * n_items  # flat indices: no 2-D fancy indexing

        def cosine_to_pick(j: np.ndarray) -> np.ndarray:
            return np.asarray(np.take(gram, offsets + candidates[rows, j][:, None]))

    else:  # a large catalogue: the candidates' features, (n, C, d)
        f = unit[candidates]

        def cosine_to_pick(j: np.ndarray) -> np.ndarray:
            return np.asarray(np.einsum("ncd,nd->nc", f, f[rows, j]))

    max_sim = np.zeros((n, c))
    taken = np.zeros((n, c), dtype=bool)
    out = np.empty((n, k), dtype=candidates.dtype)
    for step in range(k):
        val = (1.0 - diversity) * rel - diversity * max_sim
        val[taken] = -np.inf
        j = val.argmax(1)
        taken[rows, j] = True
        out[:, step] = candidates[rows, j]
        np.maximum(max_sim, cosine_to_pick(j), out=max_sim)
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
    return np.asarray(~dominated)


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
    ctr_loss_bound_col: str | None = None,
) -> pd.Series:
    """Pick the Pareto row with the highest ``objective`` whose CTR is at most
    ``max_ctr_drop`` (relative) below ``baseline[ctr_col]``.

    sweep: output of :func:`pareto_sweep`. With ``ctr_loss_bound_col`` (a column holding an
    upper confidence bound of each row's relative CTR loss against the baseline, e.g. from a
    paired comparison on the same logs), a row qualifies only when that *bound* is at most
    ``max_ctr_drop``: the rule then leaves room for the estimate's own error instead of an
    ad hoc margin. Raises if no Pareto row satisfies the constraint.
    """
    if ctr_loss_bound_col is not None:
        within = sweep[ctr_loss_bound_col] <= max_ctr_drop
    else:
        within = sweep[ctr_col] >= (1 - max_ctr_drop) * baseline[ctr_col]
    ok = sweep[sweep["pareto"] & within]
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
    ctr_bound_alpha: float | None = None,
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
    With ``ctr_bound_alpha`` and logged ``tune`` data, a weight qualifies only when the
    one-sided (1 - ctr_bound_alpha) upper bound of its CTR loss against weight 0, paired visit
    by visit on the tuning logs, is at most ``max_ctr_drop`` (as in
    :func:`choose_operating_point` with ``ctr_loss_bound_col``).
    """
    from recsys_lib.business.ope import paired_difference, position_bias_from_exploration
    from recsys_lib.business.shop import ImpressionLog

    weights = [float(w) for w in weights]
    if 0.0 not in weights:
        raise ValueError("weights must include 0 (the CTR-optimal baseline)")
    truth: dict[str, Any] = {}
    per_visit: dict[float, np.ndarray] = {}  # tuning CTR per visit and weight, for the bound
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
                values = offline_values(data, slates, shop.price, bias, q_log, q_tgt)
                per_visit[w] = values["ctr"]
                truth[tag][w] = {m: float(v.mean()) for m, v in values.items()}
            else:
                truth[tag][w] = evaluate_slates(shop, visits.users, slates, item_features)
    tuning = truth["tune"]
    if ctr_bound_alpha is not None and per_visit:
        bound = {w: -paired_difference(per_visit[w], per_visit[0.0], 2 * ctr_bound_alpha,
                                       relative=True).ci_low for w in weights}  # fmt: skip
        allowed = [w for w in weights if w == 0.0 or bound[w] <= max_ctr_drop]
    else:
        allowed = [w for w in weights
                   if tuning[w]["ctr"] >= (1 - max_ctr_drop) * tuning[0.0]["ctr"]]  # fmt: skip
    chosen = max(allowed, key=lambda w: tuning[w]["revenue_per_impression"])
    out = {"value_weight": chosen}
    for tag, curve in truth.items():
        base, point = curve[0.0], curve[chosen]
        out[f"{tag}_revenue_lift"] = (
            point["revenue_per_impression"] / base["revenue_per_impression"] - 1
        )
        out[f"{tag}_ctr_change"] = point["ctr"] / base["ctr"] - 1
    return out
