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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from recsys_lib.linalg import positions
from recsys_lib.validation import POSITIVE, Interval, check_array, check_params

DAY_SECONDS = 86_400


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


def assign_windows(timestamps: ArrayLike, window_days: float) -> np.ndarray:
    """Window number of each event (unix seconds), counting ``window_days`` from the first."""
    check_params("assign_windows", {"window_days": (POSITIVE, window_days)})
    ts = check_array("timestamps", timestamps, ndim=1, allow_empty=False)
    return np.asarray(((ts - ts.min()) // (window_days * DAY_SECONDS)).astype(np.int64))


def drift_report(
    ratings: pd.DataFrame,
    catalogue_item_ids: ArrayLike,
    *,
    window_days: float = 28,
    item_embeddings: np.ndarray | None = None,
    reference: str = "previous",
    min_events: int = 100,
) -> pd.DataFrame:
    """Drift metrics of each time window against the previous (or the first) window.

    ratings: needs item_id and timestamp (unix seconds). Windows with fewer than
    ``min_events`` events are merged into the window before them (the log's tail is often
    thin). Returns one row per window: window, start (date), events, tv, js, psi and, with
    ``item_embeddings`` (n_items, d in catalogue order), centroid_shift. The reference window
    itself gets NaN.
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
    dists = [item_distribution(items[window == w], catalogue_item_ids) for w in range(label + 1)]
    rows = []
    for w, dist in enumerate(dists):
        ref = None if w == 0 else dists[w - 1] if reference == "previous" else dists[0]
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
        rows.append(row)
    return pd.DataFrame(rows).set_index("window")


def drift_alerts(report: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """Which windows cross a threshold: a boolean column per metric plus ``alert`` (any).

    thresholds: metric name (a column of ``report``) -> value above which to alert.
    """
    missing = [m for m in thresholds if m not in report.columns]
    if missing:
        raise KeyError(
            f"thresholds name {missing}, not columns of the report {list(report.columns)}."
        )
    flags = pd.DataFrame({m: report[m] > t for m, t in thresholds.items()}, index=report.index)
    flags["alert"] = flags.any(axis=1)
    return flags
