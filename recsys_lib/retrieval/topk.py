"""Top-k selection with deterministic tie-breaking: the library's one top-k.

Ties are broken towards the lower column index, so results never depend on how
``argpartition`` happened to order equal scores. ``-inf`` (and NaN) scores mark excluded
items; a row with fewer than k eligible items is padded with -1.

- :func:`top_k`: the entry point (torch's multi-threaded selection when installed);
- :func:`top_k_numpy`: its plain-numpy reference, :func:`select_top_k`: its torch core;
- :func:`exclude_entries`: "exclude seen" (-inf at a sparse matrix's stored entries);
- :func:`top_k_candidates`: top-k of per-row candidate lists, as item ids (slates).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys_lib.validation import Interval, check_param


def check_k(k: Any, upper: int | None = None, what: str = "") -> int:
    """``k`` as an int after the library's one check of a top-k size.

    An integer (not a bool) >= 1, and <= ``upper`` when given (``what`` names the upper
    bound in the message, e.g. " (catalogue size)"). :class:`~recsys_lib.validation.
    InvalidParameterError` (a ValueError and a TypeError) otherwise.
    """
    hint = f"k is a list length, at most {upper}{what}" if upper is not None else ""
    check_param("k", k, Interval(int, 1, upper), hint=hint)
    return int(k)


def top_k_numpy(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference implementation of :func:`top_k` in plain numpy (partition + stable sort).

    scores: (n_rows, n_cols) float. Returns (indices int64 (n_rows, k'), values (n_rows, k'))
    with k' = min(k, n_cols); excluded positions hold index -1 and value -inf.
    """
    k = check_k(k)
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


def select_top_k(scores: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a 2-D torch tensor (CPU or CUDA) with the same tie rule as :func:`top_k_numpy`.

    ``torch.topk`` is multi-threaded and fast but does not promise which of several equal
    scores it keeps. Within the selection we re-sort by (score desc, index asc); rows whose
    (k+1)-th value equals the k-th (a tie across the boundary, or fewer than k eligible items)
    are redone exactly with :func:`top_k_numpy`. Returns numpy arrays.
    """
    import torch

    n_cols = scores.shape[1]
    extra = 1 if k < n_cols else 0  # one more value tells whether a tie crosses the boundary
    values, indices = torch.topk(scores, k + extra, dim=1, largest=True, sorted=True)
    if torch.isnan(values).any():  # topk ranks NaN first, so any NaN shows up here
        scores = torch.where(torch.isnan(scores), -float("inf"), scores)
        values, indices = torch.topk(scores, k + extra, dim=1, largest=True, sorted=True)
    if extra:
        ambiguous = values[:, k - 1] == values[:, k]
        values, indices = values[:, :k], indices[:, :k]
    else:
        ambiguous = torch.zeros(len(values), dtype=torch.bool, device=values.device)
    top_values: np.ndarray = values.cpu().numpy()
    top_indices: np.ndarray = indices.cpu().numpy().astype(np.int64)
    order = np.lexsort((top_indices, -top_values), axis=1)
    top_indices = np.take_along_axis(top_indices, order, 1)
    top_values = np.take_along_axis(top_values, order, 1)
    rows = torch.nonzero(ambiguous).flatten().cpu().numpy()
    if rows.size:
        top_indices[rows], top_values[rows] = top_k_numpy(scores[rows].cpu().numpy(), k)
    top_indices[np.isneginf(top_values)] = -1
    return top_indices, top_values


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best columns of each row, best first.

    scores: (n_rows, n_cols) float. Returns (indices int64 (n_rows, k'), values (n_rows, k'))
    with k' = min(k, n_cols); excluded positions hold index -1 and value -inf. Ties go to the
    lower column index. Uses torch's multi-threaded selection when torch is installed.
    """
    k = check_k(k)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (rows x columns), got shape {scores.shape}.")
    if scores.size == 0 or scores.dtype not in (np.float32, np.float64):
        return top_k_numpy(scores, k)
    try:
        import torch
    except ImportError:
        return top_k_numpy(scores, k)
    return select_top_k(torch.from_numpy(np.ascontiguousarray(scores)), min(k, scores.shape[1]))


def exclude_entries(scores: Any, exclude: sp.spmatrix) -> Any:
    """Set ``scores[r, c] = -inf`` at every nonzero entry (r, c) of ``exclude``, in place.

    scores: (n_rows, n_cols) numpy array or torch tensor; exclude: a sparse matrix of the same
    shape (e.g. the users' train rows: "exclude seen"). Returns ``scores``.
    """
    if exclude.shape != tuple(scores.shape):
        raise ValueError(f"exclude is {exclude.shape} but scores are {tuple(scores.shape)}.")
    r, c = exclude.nonzero()
    if r.size:
        if isinstance(scores, np.ndarray):
            scores[r, c] = -np.inf
        else:  # torch
            import torch

            rows = torch.from_numpy(r.astype(np.int64)).to(scores.device)
            cols = torch.from_numpy(c.astype(np.int64)).to(scores.device)
            scores[rows, cols] = -float("inf")
    return scores


def top_k_candidates(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best candidates of each row, best first: item ids (n, k).

    scores and candidates: (n, C), candidates[i, j] the item id scored by scores[i, j]. The
    tie rule is :func:`top_k`'s (the lower candidate position wins); positions whose score is
    -inf or NaN are never chosen and pad with -1.
    """
    scores, candidates = np.asarray(scores), np.asarray(candidates)
    if scores.shape != candidates.shape or scores.ndim != 2:
        raise ValueError(
            f"scores {scores.shape} and candidates {candidates.shape} must be one (n, C) shape."
        )
    k = check_k(k, scores.shape[1], " (the number of candidates)")
    cols = top_k(scores, k)[0]
    return np.where(cols >= 0, np.take_along_axis(candidates, np.maximum(cols, 0), 1), -1)
