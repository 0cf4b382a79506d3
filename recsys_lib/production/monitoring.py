"""Drift checks between time windows of an interaction log.

A recommender trained on last month's data silently degrades when what people watch shifts.
These checks compare the **item popularity distribution** of two windows, p and q (each the
share of the window's interactions that fell on each item):

* total variation  TV(p, q) = 1/2 sum_i |p_i - q_i|, in [0, 1];
* Jensen-Shannon   JS(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, in [0, 1]
  with base-2 logarithms;
* population stability index  PSI(p, q) = sum_i (q_i - p_i) ln(q_i / p_i), with shares
  clipped at a small floor so empty items do not give infinities (rule of thumb: < 0.1
  stable, 0.1-0.25 moderate shift, > 0.25 large shift);

and, when item embeddings are given, the **centroid shift**: one minus the cosine between the
interaction-weighted mean embeddings of the two windows, p^T E and q^T E.

None of the three popularity statistics is zero for two samples of one distribution: with many
items and few events per item, sampling noise alone gives TV and PSI well above zero, and the
noise grows as the windows shrink. :func:`permutation_null` measures that noise floor for the
two windows at hand (their own sizes), and :func:`drift_alerts` alerts only above it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import sparse

from recsys_lib.linalg import positions
from recsys_lib.validation import POSITIVE, SEED, Interval, check_array, check_params

DAY_SECONDS = 86_400
NULL_STATISTICS = ("tv", "js", "psi")  # the popularity statistics that get a permutation null


def _distribution(p: ArrayLike) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(
            "a distribution must be a 1-D array of finite non-negative values with sum > 0."
        )
    return np.asarray(p / p.sum())


def _pair(p: ArrayLike, q: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, q = _distribution(p), _distribution(q)
    if p.shape != q.shape:
        raise ValueError(f"distributions differ in length: {p.shape[0]} vs {q.shape[0]} items.")
    return p, q


def item_distribution(item_ids: ArrayLike, catalogue_item_ids: ArrayLike) -> np.ndarray:
    """Share of the interactions ``item_ids`` (one entry per event) on each catalogue item.

    Returns (n_items,) float64 summing to 1, in the order of ``catalogue_item_ids``; ids
    outside the catalogue are an error.
    """
    catalogue_item_ids = np.asarray(catalogue_item_ids)
    item_ids = np.asarray(item_ids)
    if item_ids.size == 0:
        raise ValueError("no interactions in this window; use a longer window.")
    cols = positions(catalogue_item_ids, item_ids)
    unknown = cols < 0
    if unknown.any():
        raise KeyError(
            f"item ids {item_ids[unknown][:5].tolist()} are not in the catalogue "
            f"({len(catalogue_item_ids)} items); pass every item id that can occur."
        )
    counts = np.bincount(cols, minlength=len(catalogue_item_ids)).astype(np.float64)
    return np.asarray(counts / counts.sum())


def total_variation(p: ArrayLike, q: ArrayLike) -> float:
    """TV(p, q) = 1/2 sum |p_i - q_i| (both normalised first)."""
    p, q = _pair(p, q)
    return float(0.5 * np.abs(p - q).sum())


def js_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon divergence with base-2 logs, in [0, 1] (0 iff p == q)."""
    p, q = _pair(p, q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def psi(p: ArrayLike, q: ArrayLike, floor: float = 1e-4) -> float:
    """Population stability index sum (q_i - p_i) ln(q_i / p_i), shares clipped at ``floor``."""
    check_params("psi", {"floor": (Interval(float, 0, 1, closed="right"), floor)},
                 hints={"floor": "a share of 0 would make the log infinite"})  # fmt: skip
    p_share, q_share = _pair(p, q)
    p_share, q_share = np.maximum(p_share, floor), np.maximum(q_share, floor)
    return float(np.sum((q_share - p_share) * np.log(q_share / p_share)))


def centroid_shift(p: ArrayLike, q: ArrayLike, embeddings: np.ndarray) -> float:
    """1 - cos(p^T E, q^T E): how far the interaction-weighted mean embedding moved.

    embeddings: (n_items, d) in the same item order as p and q.
    """
    p, q = _pair(p, q)
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != p.shape[0]:
        raise ValueError(f"embeddings must be (n_items={p.shape[0]}, d), got {embeddings.shape}.")
    a, b = p @ embeddings, q @ embeddings
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        raise ValueError("a window centroid is the zero vector; cosine is undefined.")
    return float(1.0 - a @ b / denom)


def _statistic(name: str, p: np.ndarray, q: np.ndarray) -> float:
    return {"tv": total_variation, "js": js_divergence, "psi": psi}[name](p, q)


def _unit_counts(name: str, counts: ArrayLike | sparse.spmatrix) -> np.ndarray | sparse.csr_matrix:
    """A window's counts: (n_items,) per item, or (n_units, n_items) per independent unit."""
    if sparse.issparse(counts):
        m = sparse.csr_matrix(counts, dtype=np.float64)
        data = m.data
    else:
        m = check_array(name, counts, low=0)
        data = m.ravel()
        if m.ndim not in (1, 2):
            raise ValueError(f"{name} must be (n_items,) or (n_units, n_items), got {m.shape}.")
    if not (np.isfinite(data).all() and (data >= 0).all() and np.allclose(data, np.round(data))):
        raise ValueError(f"{name} must hold event counts (non-negative integers).")
    return m


def permutation_null(
    reference_counts: ArrayLike | sparse.spmatrix,
    current_counts: ArrayLike | sparse.spmatrix,
    *,
    n_permutations: int = 200,
    quantile: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Noise floor of TV, JS and PSI for two windows of these sizes drawn from one distribution.

    Under the null hypothesis "both windows are samples of one item distribution" the
    independent units of both windows are exchangeable, so they are pooled and split again at
    random into two windows of the *original sizes* (a permutation test).

    reference_counts, current_counts: either (n_items,) event counts per item, when events are
    independent (each split is then drawn exactly as a multivariate hypergeometric sample of
    the pooled counts), or (n_units, n_items) counts per independent unit, dense or sparse
    (e.g. one row per user active in the window: one person's ratings are not independent
    draws, so whole rows move together and each window keeps its number of units).
    Returns, for each of ``tv``, ``js`` and ``psi``: ``{name}_null``, the ``quantile`` of the
    statistic over ``n_permutations`` splits (one of the split values, the smallest with at
    least that share of splits at or below it: two same-distribution windows of these sizes
    exceed it with probability about ``1 - quantile``), and ``{name}_p``, the permutation p-value
    ``(1 + #{null >= observed}) / (1 + n_permutations)``.
    """
    check_params("permutation_null", {"n_permutations": (Interval(int, 19, None), n_permutations),
                 "quantile": (Interval(float, 0, 1, closed="neither"), quantile),
                 "seed": (SEED, seed)},
                 hints={"n_permutations": "at least 19 splits, or the p-value cannot reach 0.05"})  # fmt: skip
    a = _unit_counts("reference_counts", reference_counts)
    b = _unit_counts("current_counts", current_counts)
    if a.ndim != b.ndim or a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"the windows' counts differ in shape: {a.shape} vs {b.shape}; give both per item "
            "(n_items,) or both per unit (n_units, n_items) over the same items."
        )
    total_a = np.asarray(a.sum(axis=0)).ravel() if a.ndim == 2 else a
    total_b = np.asarray(b.sum(axis=0)).ravel() if b.ndim == 2 else b
    if total_a.sum() == 0 or total_b.sum() == 0:
        raise ValueError(f"each window needs events; got {total_a.sum():g} and {total_b.sum():g}.")
    rng = np.random.default_rng(seed)
    null = {name: np.empty(n_permutations) for name in NULL_STATISTICS}
    if a.ndim == 1:
        pooled, n_a = np.round(a + b).astype(np.int64), int(round(a.sum()))
    else:
        units = sparse.vstack([sparse.csr_matrix(a), sparse.csr_matrix(b)]).tocsr()
        pooled_total, n_a = np.asarray(units.sum(axis=0)).ravel(), a.shape[0]
    for t in range(n_permutations):
        if a.ndim == 1:
            split = rng.multivariate_hypergeometric(pooled, n_a)  # the reference window's events
            rest = pooled - split
        else:
            chosen = rng.permutation(units.shape[0])[:n_a]  # the reference window's units
            split = np.asarray(units[chosen].sum(axis=0)).ravel()
            rest = pooled_total - split
        if split.sum() == 0 or rest.sum() == 0:  # a split with an empty window: no statistic
            null_row = dict.fromkeys(NULL_STATISTICS, np.inf)
        else:
            null_row = {name: _statistic(name, split, rest) for name in NULL_STATISTICS}
        for name in NULL_STATISTICS:
            null[name][t] = null_row[name]
    out: dict[str, float] = {}
    for name in NULL_STATISTICS:
        observed = _statistic(name, total_a, total_b)
        out[f"{name}_null"] = float(np.quantile(null[name], quantile, method="higher"))
        out[f"{name}_p"] = float((1 + (null[name] >= observed).sum()) / (1 + n_permutations))
    return out


def assign_windows(timestamps: ArrayLike, window_days: float) -> np.ndarray:
    """Window number of each event (unix seconds), counting ``window_days`` from the first."""
    check_params("assign_windows", {"window_days": (POSITIVE, window_days)})
    ts = check_array("timestamps", timestamps, ndim=1, allow_empty=False)
    return np.asarray(((ts - ts.min()) // (window_days * DAY_SECONDS)).astype(np.int64))


def _window_counts(
    ratings: pd.DataFrame,
    in_window: np.ndarray,
    catalogue_item_ids: ArrayLike,
    unit: str | None,
    share: np.ndarray,
    size: int,
) -> np.ndarray | sparse.csr_matrix:
    """One window's counts per item (unit None: back from shares) or per unit (n_units, n_items)."""
    if unit is None:
        return np.round(share * size)
    cols = positions(np.asarray(catalogue_item_ids), ratings["item_id"].to_numpy()[in_window])
    _, rows = np.unique(ratings[unit].to_numpy()[in_window], return_inverse=True)
    shape = (int(rows.max()) + 1, len(share))
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)  # sums duplicates


def drift_report(
    ratings: pd.DataFrame,
    catalogue_item_ids: ArrayLike,
    *,
    window_days: float = 28,
    item_embeddings: np.ndarray | None = None,
    reference: str = "previous",
    min_events: int = 100,
    n_permutations: int = 0,
    null_quantile: float = 0.95,
    unit: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Drift metrics of each time window against the previous (or the first) window.

    ratings: needs item_id and timestamp (unix seconds). Windows with fewer than
    ``min_events`` events are merged into the window before them (the log's tail is often
    thin). Returns one row per window: window, start (date), events, tv, js, psi and, with
    ``item_embeddings`` (n_items, d in catalogue order), centroid_shift. The reference window
    itself gets NaN. With ``n_permutations`` > 0, each window also gets the noise floor of tv,
    js and psi against its reference (:func:`permutation_null` at ``null_quantile``, seeded by
    ``seed`` plus the window number): columns ``tv_null``, ``tv_p``, ``js_null``, ... The
    permuted units are the events, or with ``unit`` (a column of ``ratings``, e.g. "user_id")
    each unit's events in the window, moved together (the independent unit of the log).
    """
    if reference not in ("previous", "first"):
        raise ValueError(f"reference must be 'previous' or 'first', got {reference!r}.")
    window = assign_windows(ratings["timestamp"].to_numpy(), window_days)
    counts = np.bincount(window)
    # merge thin windows into their predecessor
    label, relabel = 0, np.zeros(len(counts), dtype=np.int64)
    for w, n in enumerate(counts):
        if w > 0 and n >= min_events:
            label += 1
        relabel[w] = label
    window = relabel[window]
    items = ratings["item_id"].to_numpy()
    ts = ratings["timestamp"].to_numpy()
    check_params("drift_report", {"n_permutations": (Interval(int, 0, None), n_permutations)})
    if unit is not None and unit not in ratings.columns:
        raise KeyError(f"unit={unit!r} is not a column of ratings {list(ratings.columns)}.")
    dists = [item_distribution(items[window == w], catalogue_item_ids) for w in range(label + 1)]
    sizes = np.bincount(window, minlength=label + 1)
    rows = []
    for w, dist in enumerate(dists):
        ref_w = None if w == 0 else w - 1 if reference == "previous" else 0
        ref = None if ref_w is None else dists[ref_w]
        row = {
            "window": w,
            "start": pd.to_datetime(ts[window == w].min(), unit="s").normalize(),
            "events": int((window == w).sum()),
            "tv": np.nan if ref is None else total_variation(ref, dist),
            "js": np.nan if ref is None else js_divergence(ref, dist),
            "psi": np.nan if ref is None else psi(ref, dist),
        }
        if item_embeddings is not None:
            row["centroid_shift"] = (
                np.nan if ref is None else centroid_shift(ref, dist, item_embeddings)
            )
        if n_permutations > 0:
            null = dict.fromkeys([f"{m}_{c}" for m in NULL_STATISTICS for c in ("null", "p")],
                                 np.nan)  # fmt: skip
            if ref_w is not None:
                pair = [_window_counts(ratings, window == v, catalogue_item_ids, unit, dists[v],
                                       sizes[v]) for v in (ref_w, w)]  # fmt: skip
                null = permutation_null(*pair, n_permutations=n_permutations,
                                        quantile=null_quantile, seed=seed + w)  # fmt: skip
            row.update(null)
        rows.append(row)
    return pd.DataFrame(rows).set_index("window")


def drift_alerts(report: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """Which windows cross a threshold: a boolean column per metric plus ``alert`` (any).

    thresholds: metric name (a column of ``report``) -> value above which to alert. Where the
    report has the metric's noise floor (column ``{metric}_null`` from
    ``drift_report(..., n_permutations=...)``), a window alerts only when the metric is above
    *both* the threshold and the floor: a value that two same-distribution windows of that
    size reach by chance is no evidence of drift, however large it looks. A threshold of 0
    then means "alert on any shift beyond the noise".
    """
    missing = [m for m in thresholds if m not in report.columns]
    if missing:
        raise KeyError(
            f"thresholds name {missing}, not columns of the report {list(report.columns)}."
        )
    flags = pd.DataFrame(
        {
            m: (report[m] > t)
            & (report[m] > report[f"{m}_null"] if f"{m}_null" in report else True)
            for m, t in thresholds.items()
        },
        index=report.index,
    )
    flags["alert"] = flags.any(axis=1)
    return flags
