"""Small numeric building blocks the rest of the library shares (one home each).

- :func:`normalize_rows` / :func:`row_cosine`: unit-length rows and row-wise cosines, with a
  zero-row guard (a zero vector stays zero and has cosine 0 with everything);
- :func:`sigmoid` and :func:`fit_logistic`: the logistic function and one L2-regularised
  logistic regression solved by Newton's method;
- :func:`positions`: raw ids -> positions in a table of unique ids (-1 when absent);
- :func:`group_ranks`: the rank of each row inside its group of a sorted key array.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def normalize_rows(vectors: Any, eps: float = 1e-12, dtype: Any = np.float32) -> Any:
    """Vectors along the last axis scaled to unit L2 norm; zero rows stay zero.

    numpy in, numpy out (cast to ``dtype``; ``None`` keeps a float input's dtype); a torch
    tensor in gives a tensor out on its own device and dtype.
    """
    if not isinstance(vectors, np.ndarray) and hasattr(vectors, "norm"):  # a torch tensor
        return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=eps)
    vectors = np.asarray(vectors, dtype=dtype)
    if not np.issubdtype(vectors.dtype, np.floating):
        vectors = vectors.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, eps).astype(vectors.dtype)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine between row i of ``a`` and row i of ``b``: (n,) float64. Zero rows give 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"row_cosine needs two (n, d) arrays of one shape, got {a.shape}, {b.shape}."
        )
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1.0), 0.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), elementwise; saturates to exactly 0 or 1 without overflow warnings."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def fit_logistic(
    features: np.ndarray,
    labels: np.ndarray,
    l2: float = 1e-3,
    iterations: int = 50,
    tol: float = 1e-8,
) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method (numpy only).

    Minimises mean log-loss + ``l2/2 * |w|^2`` (the intercept is not shrunk). features
    (n, d), labels (n,) in {0, 1}. Returns the weights with the intercept last, (d + 1,).
    Stops when the largest Newton step is below ``tol`` or after ``iterations`` steps.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features must be (n, d) and labels (n,); got {x.shape} and {y.shape}.")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must contain only 0 and 1.")
    x = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(x.shape[1])
    penalty = l2 * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    ridge = 1e-10 * np.eye(x.shape[1])  # keeps the Hessian invertible on separable data
    for _ in range(iterations):
        p = sigmoid(x @ w)
        gradient = x.T @ (p - y) / len(y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x / len(y) + penalty + ridge
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < tol:
            break
    return w


def positions(table: np.ndarray, ids: Any, order: np.ndarray | None = None) -> np.ndarray:
    """Position of each id in ``table`` (unique ids, any order): int64 array, -1 where absent.

    The library's one id -> position lookup (a sort plus a binary search, so it suits
    millions of lookups). ``order``: ``np.argsort(table)``, when the caller keeps it to look
    up many times; without it a table that is already sorted needs no sort. Ids of another
    kind than the table's (text against numbers) are simply absent.
    """
    table = np.asarray(table)
    ids = np.asarray(ids)
    numeric = "biuf"
    if object in (table.dtype, ids.dtype):
        try:
            return _sorted_positions(table, ids, order)
        except TypeError:  # ids of mixed kinds: look each one up on its own
            if ids.size == 1:
                return np.full(ids.shape, -1, dtype=np.int64)
            found = [positions(table, np.asarray([v], dtype=object), order)[0] for v in ids.flat]
            return np.array(found, dtype=np.int64).reshape(ids.shape)
    if table.size == 0 or (table.dtype.kind in numeric) != (ids.dtype.kind in numeric):
        return np.full(ids.shape, -1, dtype=np.int64)
    return _sorted_positions(table, ids, order)


def _sorted_positions(table: np.ndarray, ids: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    if table.size == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    if order is None and len(table) > 1 and not bool(np.all(table[1:] > table[:-1])):
        order = np.argsort(table, kind="stable")
    if order is None:
        found = np.minimum(np.searchsorted(table, ids), len(table) - 1)
    else:
        found = order[np.minimum(np.searchsorted(table, ids, sorter=order), len(table) - 1)]
    return np.where(table[found] == ids, found, -1).astype(np.int64)


def group_ranks(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank, size) per row of a key array whose equal keys are adjacent (e.g. sorted).

    rank: 0-based position of the row inside its run of equal keys; size: that run's length.
    Both (n,) int64. The shared core of per-user splits and per-group numbering.
    """
    keys = np.asarray(sorted_keys)
    n = len(keys)
    starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1] if n else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    return rank.astype(np.int64), np.repeat(sizes, sizes).astype(np.int64)
