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

import numpy as np
import pandas as pd
import scipy.sparse as sp


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
    if truth_keys.size == 0:
        return np.zeros(recommended.shape, dtype=bool)
    pos = np.searchsorted(truth_keys, keys)
    pos = np.minimum(pos, truth_keys.size - 1)
    return (truth_keys[pos] == keys) & (recommended >= 0)


def _n_relevant(relevant: sp.csr_matrix) -> np.ndarray:
    return np.diff(sp.csr_matrix(relevant).indptr).astype(np.float64)


def _average(per_user: np.ndarray, n_relevant: np.ndarray) -> float:
    mask = n_relevant > 0
    if not mask.any():
        return float("nan")
    return float(per_user[mask].mean())


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _per_user(hits: np.ndarray, n_rel: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Every ranking metric per user, from the hit matrix of the top k and |relevant|."""
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


def _metric(name: str, recommended, relevant, k: int) -> float:
    hits = hit_matrix(np.asarray(recommended)[:, :k], relevant)
    n_rel = _n_relevant(relevant)
    return _average(_per_user(hits, n_rel, k)[name], n_rel)


def precision_at_k(recommended, relevant, k: int = 10) -> float:
    """Mean over users of |relevant in top-k| / k."""
    return _metric("precision@k", recommended, relevant, k)


def recall_at_k(recommended, relevant, k: int = 10) -> float:
    """Mean over users of |relevant in top-k| / |relevant|."""
    return _metric("recall@k", recommended, relevant, k)


def ndcg_at_k(recommended, relevant, k: int = 10) -> float:
    """Binary-gain nDCG@k: DCG = sum_i rel_i / log2(i + 1), divided by the ideal DCG of
    min(|relevant|, k) hits at the top."""
    return _metric("ndcg@k", recommended, relevant, k)


def map_at_k(recommended, relevant, k: int = 10) -> float:
    """MAP@k: sum over hit positions i of precision@i, divided by min(|relevant|, k)."""
    return _metric("map@k", recommended, relevant, k)


def map_recommenders(recommended, relevant, k: int = 10) -> float:
    """recommenders-style ``map``: the same sum of precisions, divided by ALL relevant items.

    This is the "MAP" column of the recommenders benchmark tables; it is smaller than MAP@k
    for users with more than k relevant items.
    """
    return _metric("map", recommended, relevant, k)


def hit_rate_at_k(recommended, relevant, k: int = 10) -> float:
    """Share of users with at least one relevant item in the top k."""
    return _metric("hit_rate@k", recommended, relevant, k)


def mrr_at_k(recommended, relevant, k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant item in the top k (0 when none)."""
    return _metric("mrr@k", recommended, relevant, k)


def catalogue_coverage(recommended, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's list."""
    rec = np.asarray(recommended)
    return float(np.unique(rec[rec >= 0]).size / n_items)


def novelty(recommended, item_popularity: np.ndarray) -> float:
    """Mean self-information -log2(p(i)) of recommended items, p(i) = share of users who
    interacted with i in train. Unseen items (p = 0) are clipped to one interaction."""
    rec = np.asarray(recommended)
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.max() > 1.0:
        raise ValueError("item_popularity must be shares in [0, 1], e.g. train counts / n_users.")
    floor = pop[pop > 0].min() if (pop > 0).any() else 1.0
    info = -np.log2(np.maximum(pop, floor))
    valid = rec >= 0
    return float(info[rec[valid]].mean()) if valid.any() else float("nan")


def intra_list_diversity(recommended, item_vectors: np.ndarray) -> float:
    """Mean pairwise cosine *distance* (1 - cos) between items in each list, averaged over
    users. Lists with fewer than two items are skipped."""
    rec = np.asarray(recommended)
    vec = np.asarray(item_vectors, dtype=np.float64)
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    unit = vec / np.where(norms == 0, 1, norms)
    valid = rec >= 0
    lists = unit[np.where(valid, rec, 0)] * valid[..., None]  # (users, k, d)
    sims = np.einsum("ukd,uld->ukl", lists, lists)
    n = valid.sum(1)
    pair_count = n * (n - 1)
    off_diagonal = sims.sum((1, 2)) - np.einsum("ukk->u", sims)
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


def ranking_report(recommended, relevant, k: int = 10) -> dict[str, float]:
    """Every ranking metric at k, as a dict (names with ``@k`` spelled out, e.g. ndcg@10).

    The hit matrix is computed once and shared by all metrics.
    """
    hits = hit_matrix(np.asarray(recommended)[:, :k], relevant)
    n_rel = _n_relevant(relevant)
    per_user = _per_user(hits, n_rel, k)
    return {
        name.replace("@k", f"@{k}"): _average(per_user[name], n_rel) for name in RANKING_METRICS
    }


def per_user_metric(name: str, recommended, relevant, k: int = 10) -> np.ndarray:
    """One ranking metric (a key of :data:`RANKING_METRICS`, e.g. ``"ndcg@k"``) per user:
    float64 (n_users,), NaN for users without relevant items (they are not averaged)."""
    if name not in RANKING_METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {sorted(RANKING_METRICS)}.")
    hits = hit_matrix(np.asarray(recommended)[:, :k], relevant)
    n_rel = _n_relevant(relevant)
    return np.where(n_rel > 0, _per_user(hits, n_rel, k)[name], np.nan)


def paired_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> dict[str, float]:
    """mean(a - b) over users with a paired bootstrap interval (the same users resampled for
    both, so what the two share cancels). a, b: per-user values (n_users,); NaN rows are
    dropped. Returns {"difference", "ci_low", "ci_high", "n_users"}."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"a and b must be per-user vectors of one shape; got {a.shape}, {b.shape}."
        )
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = a[keep] - b[keep]
    if diff.size < 2 or not 0 < alpha < 1:
        raise ValueError(f"need >= 2 users and 0 < alpha < 1; got {diff.size} and {alpha}.")
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, diff.size, (n_boot, diff.size))].mean(1)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return {"difference": float(diff.mean()), "ci_low": float(low), "ci_high": float(high),
            "n_users": int(diff.size)}  # fmt: skip


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
