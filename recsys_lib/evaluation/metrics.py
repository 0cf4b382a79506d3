"""Ranking and beyond-accuracy metrics, vectorised over users.

Conventions (the same as recommenders-team/recommenders' python evaluation, so our numbers
are comparable with its published MovieLens table):

* ``recommended`` is an int array (n_users x k) of item *column indices*, best first; ``-1``
  pads a row that has fewer than k recommendations.
* ``relevant`` is a users x items CSR matrix (rows aligned with ``recommended``) whose stored
  entries mark the relevant (test) items; gains are binary.
* Only users with at least one relevant item are averaged (a user with no test items has
  nothing to find). Precision divides by k even when fewer than k items were recommended.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from recsys_lib.linalg import normalize_rows, positions
from recsys_lib.retrieval.topk import check_k
from recsys_lib.validation import (
    POSITIVE_INT,
    SEED,
    Interval,
    InvalidParameterError,
    check_array,
    check_params,
    check_same_shape,
)


def check_ranked_lists(recommended: ArrayLike, k: int, n_items: int) -> np.ndarray:
    """``recommended`` (n_users, >= k) item columns as int64, after the checks every ranking
    metric needs: whole numbers in [-1, n_items) (-1 pads a short list), no item twice in one
    list (a repeat would count one relevant item twice and push nDCG above 1), and at least
    k columns unless every item of the catalogue is ranked already (k above the catalogue
    size is allowed: the list is the whole catalogue). Returns the first k columns.
    """
    k = check_k(k)
    raw = np.asarray(recommended)
    if raw.ndim != 2:
        raise InvalidParameterError(
            f"recommended must be 2-D (users x k item columns), got shape {raw.shape}; "
            "wrap a single list as [list]."
        )
    if raw.dtype.kind not in "iu":
        if raw.dtype.kind != "f" or not np.isfinite(raw).all() or (raw != np.round(raw)).any():
            raise InvalidParameterError(
                f"recommended must hold item column indices (whole numbers), got dtype "
                f"{raw.dtype}; map raw ids with catalogue.item_index(ids) first."
            )
    lists = raw.astype(np.int64)[:, :k]
    if lists.shape[1] < k and raw.shape[1] < n_items:
        raise InvalidParameterError(
            f"recommended has {raw.shape[1]} column(s) but k={k} (and the catalogue has "
            f"{n_items} items): the lists are shorter than the cut-off, so @{k} would score a "
            f"top-{raw.shape[1]}. Recommend k items per user (pad with -1), or lower k."
        )
    bad = (lists < -1) | (lists >= n_items)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InvalidParameterError(
            f"recommended holds item column {lists[row, col]} (user row {row}, rank {col + 1}); "
            f"columns must be in [0, {n_items}) with -1 for padding."
        )
    _check_no_repeats("recommended", lists)
    return lists


def _check_no_repeats(name: str, lists: np.ndarray) -> None:
    """Refuse a (n, k) array of ranked lists in which a list holds an item (>= 0) twice."""
    ordered = np.sort(np.asarray(lists), axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if repeated.any():
        row = int(np.flatnonzero(repeated.any(1))[0])
        item = ordered[row, 1:][repeated[row]][0].item()
        raise InvalidParameterError(
            f"{name} lists item column {item} more than once for user row {row} "
            f"({int(repeated.any(1).sum())} list(s) repeat an item); a ranked list holds each "
            "item once (drop repeats, pad with -1)."
        )


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users x k): is the item at each position relevant for that user?

    Works without a Python loop over users: (user, item) pairs are packed into int64 keys and
    looked up in the sorted keys of the relevant matrix.
    """
    recommended = np.asarray(recommended)
    if recommended.ndim != 2:
        raise ValueError(f"recommended must be 2-D (users x k), got shape {recommended.shape}.")
    relevant = sp.csr_matrix(relevant)
    if recommended.shape[0] != relevant.shape[0]:
        raise ValueError(
            f"recommended has {recommended.shape[0]} rows but relevant has "
            f"{relevant.shape[0]}; rows must be the same users in the same order."
        )
    n_items = relevant.shape[1]
    if recommended.size and recommended.max() >= n_items:
        raise ValueError(f"recommended holds item index {recommended.max()} >= n_items {n_items}.")
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    truth_keys = np.sort(rows * n_items + relevant.indices.astype(np.int64))
    user_col = np.arange(recommended.shape[0], dtype=np.int64)[:, None]
    keys = user_col * n_items + recommended.astype(np.int64)
    return (positions(truth_keys, keys) >= 0) & (recommended >= 0)


def _n_relevant(relevant: sp.csr_matrix) -> np.ndarray:
    return np.asarray(np.diff(sp.csr_matrix(relevant).indptr), dtype=np.float64)


def _average(per_user: np.ndarray, n_relevant: np.ndarray) -> float:
    mask = n_relevant > 0
    if not mask.any():
        return float("nan")
    return float(per_user[mask].mean())


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _per_user(hits: np.ndarray, n_rel: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Every ranking metric per user, from the hit matrix of the top k and |relevant|."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}.")
    disc = _discounts(k)[: hits.shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(_discounts(k))])[np.minimum(n_rel, k).astype(int)]
    dcg = (hits * disc).sum(1)
    n_hits = hits.sum(1)
    ranks = np.arange(1, hits.shape[1] + 1)
    precision_sums = (np.cumsum(hits, axis=1) / ranks * hits).sum(1)
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    return {
        "map": precision_sums / np.maximum(n_rel, 1),
        "map@k": precision_sums / np.maximum(np.minimum(n_rel, k), 1),
        "ndcg@k": np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0),
        "precision@k": n_hits / k,
        "recall@k": n_hits / np.maximum(n_rel, 1),
        "hit_rate@k": hits.any(1).astype(float),
        "mrr@k": 1.0 / first,
    }


def _hits(recommended: ArrayLike, relevant: sp.spmatrix | ArrayLike, k: int) -> np.ndarray:
    """The hit matrix of the checked top-k lists."""
    relevant = sp.csr_matrix(relevant)
    return hit_matrix(check_ranked_lists(recommended, k, relevant.shape[1]), relevant)


def _metric(name: str, recommended: ArrayLike, relevant: sp.spmatrix, k: int) -> float:
    hits = _hits(recommended, relevant, k)
    n_rel = _n_relevant(relevant)
    return _average(_per_user(hits, n_rel, k)[name], n_rel)


def precision_at_k(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> float:
    """Mean over users of |relevant in top-k| / k."""
    return _metric("precision@k", recommended, relevant, k)


def recall_at_k(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> float:
    """Mean over users of |relevant in top-k| / |relevant|."""
    return _metric("recall@k", recommended, relevant, k)


def ndcg_at_k(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> float:
    """Binary-gain nDCG@k: DCG = sum_i rel_i / log2(i + 1), divided by the ideal DCG of
    min(|relevant|, k) hits at the top."""
    return _metric("ndcg@k", recommended, relevant, k)


def map_at_k(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> float:
    """MAP@k: sum over hit positions i of precision@i, divided by min(|relevant|, k)."""
    return _metric("map@k", recommended, relevant, k)


def map_recommenders(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> float:
    """recommenders-style ``map``: the same sum of precisions, divided by ALL relevant items.

    This is the "MAP" column of the recommenders benchmark tables; it is smaller than MAP@k
    for users with more than k relevant items.
    """
    return _metric("map", recommended, relevant, k)


def hit_rate_at_k(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> float:
    """Share of users with at least one relevant item in the top k."""
    return _metric("hit_rate@k", recommended, relevant, k)


def mrr_at_k(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant item in the top k (0 when none)."""
    return _metric("mrr@k", recommended, relevant, k)


def catalogue_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list (``-1`` padding ignored).

    The library's one definition of coverage ("catalogue coverage", Ge, Delgado-Battenfeld &
    Jannach 2010): distinct recommended items / n_items. ``business.catalog_coverage`` is
    this function.
    """
    check_params("catalogue_coverage", {"n_items": (POSITIVE_INT, n_items)})
    rec = _item_columns(recommended, n_items)
    return float(np.unique(rec[rec >= 0]).size / n_items)


def _item_columns(recommended: ArrayLike, n_items: int) -> np.ndarray:
    """Item columns (any shape) as int64, each in [-1, n_items); -1 is padding."""
    rec = check_array("recommended", recommended, low=-1, high=n_items - 1)
    if (rec != np.round(rec)).any():
        raise InvalidParameterError("recommended must hold item column indices (whole numbers).")
    return rec.astype(np.int64)


def novelty(recommended: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean self-information -log2 p(i) of recommended items (``-1`` padding ignored).

    The library's one definition of novelty (Zhou et al. 2010, PNAS, "novelty" as mean
    self-information; Vargas & Castells 2011, popularity-based novelty): p(i) = share of
    users who interacted with i in train, so ``item_popularity`` is (n_items,) shares in
    [0, 1], e.g. ``train counts / n_users``. Items never seen (p = 0) are clipped to the
    rarest seen item's share, so they count as the most novel rather than infinite.
    ``business.novelty`` is this function.
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.size == 0 or not np.isfinite(pop).all() or pop.min() < 0 or pop.max() > 1.0:
        raise ValueError(
            "item_popularity must be shares in [0, 1] (the share of users who interacted with "
            "each item, e.g. train counts / n_users), not raw counts."
        )
    rec = _item_columns(recommended, pop.size)
    floor = pop[pop > 0].min() if (pop > 0).any() else 1.0
    info = -np.log2(np.maximum(pop, floor))
    valid = rec >= 0
    return float(info[rec[valid]].mean()) if valid.any() else float("nan")


def intra_list_diversity(recommended: np.ndarray, item_vectors: np.ndarray) -> float:
    """Mean pairwise cosine *distance* (1 - cos) between items in each list, averaged over
    users (or slates). Lists with fewer than two valid (>= 0) items are skipped; lists of
    length < 2 (``recommended`` with one column) are an error, there is nothing to compare."""
    rec = np.asarray(recommended)
    if rec.ndim != 2 or rec.shape[1] < 2:
        raise ValueError(
            f"intra-list diversity needs lists (n, K) of >= 2 items, got shape {rec.shape}."
        )
    vectors = check_array("item_vectors", item_vectors, ndim=2)
    rec = _item_columns(rec, len(vectors))
    unit = normalize_rows(vectors, dtype=np.float64)
    valid = rec >= 0
    lists = unit[np.where(valid, rec, 0)] * valid[..., None]  # (users, k, d)
    # sum over pairs k != l of f_k . f_l = |sum_k f_k|^2 - sum_k |f_k|^2: O(k d) per list, not
    # the O(k^2 d) of the similarity matrix
    total = lists.sum(1)
    n = valid.sum(1)
    pair_count = n * (n - 1)
    off_diagonal = np.einsum("ud,ud->u", total, total) - np.einsum("ukd,ukd->u", lists, lists)
    keep = pair_count > 0
    if not keep.any():
        return float("nan")
    return float((1.0 - off_diagonal[keep] / pair_count[keep]).mean())


RANKING_METRICS = {
    "map": map_recommenders,
    "map@k": map_at_k,
    "ndcg@k": ndcg_at_k,
    "precision@k": precision_at_k,
    "recall@k": recall_at_k,
    "hit_rate@k": hit_rate_at_k,
    "mrr@k": mrr_at_k,
}


def ranking_report(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> dict[str, float]:
    """Every ranking metric at k, as a dict (names with ``@k`` spelled out, e.g. ndcg@10).

    The hit matrix is computed once and shared by all metrics.
    """
    hits = _hits(recommended, relevant, k)
    n_rel = _n_relevant(relevant)
    per_user = _per_user(hits, n_rel, k)
    return {
        name.replace("@k", f"@{k}"): _average(per_user[name], n_rel) for name in RANKING_METRICS
    }


def per_user_metrics(recommended: np.ndarray, relevant: sp.spmatrix, k: int = 10) -> pd.DataFrame:
    """Every ranking metric at k for each user with at least one relevant item.

    recommended: (n_users, >= k) item columns; relevant: users x items CSR, rows aligned.
    Returns a frame with one row per evaluated user (index = row position in ``relevant``)
    and one column per metric (names as in :func:`ranking_report`); its column means are
    exactly :func:`ranking_report`'s values. Feed two models' columns to
    :func:`paired_bootstrap`.
    """
    hits = _hits(recommended, relevant, k)
    n_rel = _n_relevant(relevant)
    keep = n_rel > 0
    per_user = _per_user(hits, n_rel, k)
    return pd.DataFrame(
        {name.replace("@k", f"@{k}"): per_user[name][keep] for name in RANKING_METRICS},
        index=pd.Index(np.flatnonzero(keep), name="row"),
    )


def bootstrap_rows(
    n_rows: int, n_boot: int, seed: int = 0, chunk: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """The paired bootstrap's resamples: (first resample number, rows (c, n_rows)) chunks.

    Each resample draws ``n_rows`` row positions with replacement from one seeded generator;
    ``chunk`` resamples come at a time (default: as many as fit in about 2 million indices,
    bounded memory). The same seed and chunk give the same resamples.
    """
    check_params("bootstrap_rows", {"n_rows": (POSITIVE_INT, n_rows),
                                    "n_boot": (POSITIVE_INT, n_boot), "seed": (SEED, seed),
                                    "chunk": ([None, POSITIVE_INT], chunk)})  # fmt: skip
    rng = np.random.default_rng(seed)
    chunk = chunk or max(1, 2_000_000 // n_rows)
    for start in range(0, n_boot, chunk):
        yield start, rng.integers(0, n_rows, (min(chunk, n_boot - start), n_rows))


def paired_bootstrap(
    per_user_a: ArrayLike,
    per_user_b: ArrayLike,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """mean(a) - mean(b) of a per-user metric, with a paired bootstrap interval over users.

    per_user_a, per_user_b: (n_users,) the same users in the same order (e.g. two models'
    ``per_user_metrics(...)["ndcg@10"]``). Users are resampled with replacement ``n_boot``
    times, the same users for both models, so what the users share (how easy their test items
    are) cancels; the interval holds the ``alpha/2`` and ``1 - alpha/2`` quantiles of the
    resampled differences (percentile bootstrap, Efron & Tibshirani 1993, ch. 13). The
    relative difference ``mean(a) / mean(b) - 1`` gets its interval from the same resamples.
    ``p_value`` is the two-sided bootstrap share of resampled differences on the other side
    of zero (0 when none is), a rough guide; the interval is the result to report.

    Returns {"difference", "ci_low", "ci_high", "relative", "relative_low", "relative_high",
    "ratio", "ratio_low", "ratio_high", "mean_a", "mean_b", "p_value", "n_users"}, where
    ``ratio = 1 + relative`` (mean(a) / mean(b), for targets stated as "1.2x").
    """
    a = np.asarray(per_user_a, dtype=np.float64).ravel()
    b = np.asarray(per_user_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"per_user_a has {a.size} users but per_user_b has {b.size}; pass both models' "
            "values for the same users in the same order."
        )
    if a.size < 2:
        raise ValueError(f"need at least 2 users to bootstrap, got {a.size}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-user values hold NaN or infinity; evaluate on the same users.")
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_boot >= 1; got alpha={alpha}, n_boot={n_boot}.")
    sums_a, sums_b = np.empty(n_boot), np.empty(n_boot)
    for start, rows in bootstrap_rows(a.size, n_boot, seed):
        sums_a[start : start + len(rows)] = a[rows].sum(1)
        sums_b[start : start + len(rows)] = b[rows].sum(1)
    diffs = (sums_a - sums_b) / a.size
    mean_a, mean_b = float(a.mean()), float(b.mean())
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = sums_a / sums_b - 1.0
        relative = mean_a / mean_b - 1.0 if mean_b else float("nan")
    rel_low, rel_high = (
        np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
        if np.isfinite(ratios).all()
        else (np.nan,) * 2
    )
    side = min((diffs <= 0).mean(), (diffs >= 0).mean())
    return {
        "difference": mean_a - mean_b,
        "ci_low": float(low),
        "ci_high": float(high),
        "relative": float(relative),
        "relative_low": float(rel_low),
        "relative_high": float(rel_high),
        "ratio": float(relative) + 1.0,
        "ratio_low": float(rel_low) + 1.0,
        "ratio_high": float(rel_high) + 1.0,
        "mean_a": mean_a,
        "mean_b": mean_b,
        "p_value": float(min(1.0, 2 * side)),
        "n_users": int(a.size),
    }


def _binary_labels(labels: ArrayLike) -> np.ndarray:
    """1-D labels of 0/1 (or bools) as a bool array; anything else is refused."""
    values = check_array("labels", labels, ndim=1, low=0, high=1)
    if not np.isin(values, (0.0, 1.0)).all():
        raise InvalidParameterError(
            f"labels must be 0/1 (or True/False), got {np.unique(values)[:5].tolist()}; "
            "threshold graded labels first (e.g. rating >= 4)."
        )
    return values.astype(bool)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties 1/2.

    Computed from average ranks (Mann-Whitney U), so it is exact with ties.
    """
    labels = _binary_labels(labels)
    scores = check_array("scores", scores, ndim=1, hint="a NaN score cannot be ranked")
    check_same_shape("roc_auc", labels=labels, scores=scores)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives.")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    average = (starts + ends + 1) / 2.0  # ranks counted from 1
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_difference(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    groups: np.ndarray,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """AUC(a) - AUC(b) on the same labelled pairs, with a paired cluster-bootstrap interval.

    Pairs that share a user are not independent (one taste, one history), so the resampling
    unit is the **group** (``groups``: one user id per pair), not the pair: each of ``n_boot``
    resamples draws the distinct groups with replacement by :func:`bootstrap_rows` and takes
    *all* pairs of every drawn group, as often as the group was drawn (the cluster bootstrap,
    Davison & Hinkley 1997, sec. 3.8). Both models see the same resample, so the shared
    difficulty of the sample cancels. The interval is the ``alpha/2`` and ``1 - alpha/2``
    quantiles of the resampled differences; resamples that lack a class are skipped. Pass
    ``groups=np.arange(len(labels))`` only when the pairs really are independent: then this is
    the plain pair bootstrap. Returns {"difference", "ci_low", "ci_high", "auc_a", "auc_b",
    "n_groups", "n_boot_used"}.
    """
    labels = _binary_labels(labels)
    scores_a = check_array("scores_a", scores_a, ndim=1)
    scores_b = check_array("scores_b", scores_b, ndim=1)
    groups = np.asarray(groups)
    if not labels.shape == scores_a.shape == scores_b.shape == groups.shape:
        raise ValueError(
            f"labels {labels.shape}, scores_a {scores_a.shape}, scores_b {scores_b.shape} and "
            f"groups {groups.shape} must have one shape: score both models on the same pairs "
            "and pass one group (user id) per pair."
        )
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_boot >= 1; got {alpha}, {n_boot}.")
    _, codes = np.unique(groups, return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups < 2:
        raise ValueError(f"groups holds {n_groups} distinct group(s); the bootstrap needs 2+.")
    auc_a, auc_b = roc_auc(labels, scores_a), roc_auc(labels, scores_b)
    diffs = []
    for _, drawn in bootstrap_rows(n_groups, n_boot, seed):
        for draw in drawn:  # each pair repeated as often as its group was drawn
            rows = np.repeat(np.arange(labels.size), np.bincount(draw, minlength=n_groups)[codes])
            y = labels[rows]
            if y.all() or not y.any():
                continue
            diffs.append(roc_auc(y, scores_a[rows]) - roc_auc(y, scores_b[rows]))
    if not diffs:
        raise ValueError("every resample lacked a class: give each label more than one group.")
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return {"difference": auc_a - auc_b, "ci_low": float(low), "ci_high": float(high),
            "auc_a": auc_a, "auc_b": auc_b, "n_groups": n_groups,
            "n_boot_used": len(diffs)}  # fmt: skip


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, probabilities clipped to [eps, 1 - eps].

    labels (n,) 0/1 and probs (n,) in [0, 1], the same shape (no broadcasting)."""
    check_params("log_loss", {"eps": (Interval(float, 0, 0.5, closed="neither"), eps)})
    labels = _binary_labels(labels).astype(np.float64)
    probs = check_array("probs", probs, ndim=1, low=0, high=1, hint="pass probabilities")
    check_same_shape("log_loss", labels=labels, probs=probs)
    if labels.size == 0:
        raise InvalidParameterError("log_loss: labels and probs are empty; give one pair at least.")
    p = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def interval_verdict(result: dict[str, float]) -> str:
    """Plain words for a :func:`paired_bootstrap` result: which side of zero its interval is on.

    "a real gain" when ci_low > 0, "a real loss" when ci_high < 0, otherwise
    "not distinguishable from zero" (the interval covers 0 at its confidence level).
    """
    if result["ci_low"] > 0:
        return "a real gain"
    if result["ci_high"] < 0:
        return "a real loss"
    return "not distinguishable from zero"


def report_table(reports: dict[str, dict[str, float]]) -> pd.DataFrame:
    """A model -> metrics mapping as a DataFrame (one row a model)."""
    return pd.DataFrame.from_dict(reports, orient="index")


# The recommenders-team README's MovieLens 100K table (k=10, 75/25 stratified split, their code
# on their machine: an Azure NC6s_v2). Kept for side-by-side comparison, never as a target we
# computed.
PUBLISHED_RECOMMENDERS_ML100K = {
    "ALS": {"map": 0.004732, "ndcg@10": 0.044239, "precision@10": 0.048462, "recall@10": 0.017796},
    "BiVAE": {
        "map": 0.146126,
        "ndcg@10": 0.475077,
        "precision@10": 0.411771,
        "recall@10": 0.219145,
    },
    "BPR": {"map": 0.132478, "ndcg@10": 0.441997, "precision@10": 0.388229, "recall@10": 0.212522},
    "FastAI": {
        "map": 0.025503,
        "ndcg@10": 0.147866,
        "precision@10": 0.130329,
        "recall@10": 0.053824,
    },
    "LightGCN": {
        "map": 0.088526,
        "ndcg@10": 0.419846,
        "precision@10": 0.379626,
        "recall@10": 0.144336,
    },
    "NCF": {"map": 0.107720, "ndcg@10": 0.396118, "precision@10": 0.347296, "recall@10": 0.180775},
    "SAR": {"map": 0.110591, "ndcg@10": 0.382461, "precision@10": 0.330753, "recall@10": 0.176385},
    "SVD": {"map": 0.012873, "ndcg@10": 0.095930, "precision@10": 0.091198, "recall@10": 0.032783},
}


def published_recommenders_table() -> pd.DataFrame:
    """The published recommenders MovieLens 100K table as a DataFrame (rows: algorithms)."""
    return pd.DataFrame.from_dict(PUBLISHED_RECOMMENDERS_ML100K, orient="index")


def topk_overlap(recommended_a: np.ndarray, recommended_b: np.ndarray) -> float:
    """Mean share of items two top-k lists of the same users have in common (0..1).

    recommended_a, recommended_b: (n_users, k) item columns, row i for the same user; order
    within a list is ignored. A ranking-level fidelity check of a cheaper model against the one
    it replaces (an int8 encoder against fp32), stable on small samples where a difference of
    two nDCGs is not.
    """
    a, b = np.asarray(recommended_a), np.asarray(recommended_b)
    if a.ndim != 2 or a.shape != b.shape or a.shape[1] < 1:
        raise ValueError(
            f"recommended_a and recommended_b must be (n_users, k) with the same shape and "
            f"k >= 1; got {a.shape} and {b.shape}."
        )
    if a.shape[0] == 0:
        raise ValueError("no users to compare: pass at least one row of recommendations.")
    for name, lists in (("recommended_a", a), ("recommended_b", b)):
        _check_no_repeats(name, lists)  # -1 pads a list: never counted as shared
    common = [len((set(x.tolist()) & set(y.tolist())) - {-1}) for x, y in zip(a, b, strict=True)]
    return float(np.mean(common) / a.shape[1])


def pad_lists(recommended: np.ndarray, k: int) -> np.ndarray:
    """``recommended`` (n_users, m) widened to k columns with -1 (an empty slot) when m < k.

    A re-ranker of m < k candidates (chapter 7's quick configuration) ranks a short list on
    purpose; padding says so explicitly, and @k then scores the m ranked items against up to
    k relevant ones, as the metrics' definition asks. Longer lists are returned unchanged.
    """
    lists = np.asarray(recommended)
    if lists.ndim != 2:
        raise ValueError(f"recommended must be (n_users, m), got shape {lists.shape}.")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    if lists.shape[1] >= k:
        return lists
    pad = np.full((lists.shape[0], k - lists.shape[1]), -1, dtype=lists.dtype)
    return np.hstack([lists, pad])


def auc_by_regime(
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    user_count: np.ndarray,
    item_count: np.ndarray,
    user_cut: float,
    item_cut: float,
) -> pd.DataFrame:
    """A regime map of click AUC: one row per (model, user regime, item regime).

    labels: (n,) 0/1; scores: model name -> (n,) scores of the same pairs; user_count /
    item_count: (n,) training interactions of each pair's user and film. A pair's user is
    "sparse" when its count is <= ``user_cut`` (else "active"), its film "rare" when <=
    ``item_cut`` (else "popular"). Within one cell positives and negatives have similar
    popularity, so the map shows what a model knows beyond popularity. Columns: model, users,
    items, auc (nan when a cell lacks a class), n_pairs, n_positives.
    """
    labels = _binary_labels(labels)
    user_count = check_array("user_count", user_count, ndim=1)
    item_count = check_array("item_count", item_count, ndim=1)
    check_same_shape("auc_by_regime", labels=labels, user_count=user_count, item_count=item_count)
    users = np.where(user_count <= user_cut, "sparse users", "active users")
    films = np.where(item_count <= item_cut, "rare films", "popular films")
    rows = []
    for name, values in scores.items():
        values = check_array(f"scores[{name!r}]", values, ndim=1)
        check_same_shape("auc_by_regime", labels=labels, scores=values)
        for u in ("sparse users", "active users"):
            for i in ("rare films", "popular films"):
                cell = (users == u) & (films == i)
                n_pos = int(labels[cell].sum())
                both = 0 < n_pos < int(cell.sum())
                auc = roc_auc(labels[cell], values[cell]) if both else float("nan")
                rows.append({"model": name, "users": u, "items": i, "auc": auc,
                             "n_pairs": int(cell.sum()), "n_positives": n_pos})  # fmt: skip
    return pd.DataFrame(rows)
