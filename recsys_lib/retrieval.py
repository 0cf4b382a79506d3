"""Top-k selection with deterministic tie-breaking.

Ties are broken towards the lower column index, so results never depend on how
``argpartition`` happened to order equal scores. ``-inf`` (and NaN) scores mark excluded
items; a row with fewer than k eligible items is padded with -1.
"""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best columns of each row, best first.

    scores: (n_rows, n_cols) float. Returns (indices int64 (n_rows, k'), values (n_rows, k'))
    with k' = min(k, n_cols); excluded positions hold index -1 and value -inf.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (rows x columns), got shape {scores.shape}.")
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if n_rows == 0 or n_cols == 0:
        return np.empty((n_rows, k_eff), np.int64), np.empty((n_rows, k_eff), scores.dtype)
    clean = np.where(np.isnan(scores), -np.inf, scores)
    kth = np.partition(clean, n_cols - k_eff, axis=1)[:, n_cols - k_eff][:, None]
    above = clean > kth
    at = clean == kth
    # Fill the remaining slots with the lowest-index columns that tie with the k-th value.
    room = k_eff - above.sum(1, keepdims=True)
    chosen = above | (at & (np.cumsum(at, axis=1) <= room))
    cols = np.nonzero(chosen)[1].reshape(n_rows, k_eff)  # ascending within each row
    values = np.take_along_axis(clean, cols, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")  # stable: equal scores keep low index first
    cols = np.take_along_axis(cols, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    cols[np.isneginf(values)] = -1
    return cols.astype(np.int64), values
