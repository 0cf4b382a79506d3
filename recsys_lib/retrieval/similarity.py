"""Cosine similarity done right, and exact top-k retrieval for many queries.

cos(u, v) = u.v / (|u| |v|). Normalise every vector once, then one matrix product gives all
cosines. (The source article divides by the *sums of squares*, u.v / (sum u_i^2) / (sum v_j^2):
that is not a cosine — it is not bounded by 1 and changes when a vector is rescaled; see
:func:`article_cosine` and the tests.)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from recsys_lib.data.interactions import Interactions
from recsys_lib.linalg import normalize_rows
from recsys_lib.retrieval.topk import check_k, exclude_entries, select_top_k
from recsys_lib.validation import (
    POSITIVE_INT,
    InvalidParameterError,
    check_array,
    check_params,
    short_repr,
)


def cosine_similarity(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """All cosines between rows of ``a`` (n_a, d) and rows of ``b`` (n_b, d): (n_a, n_b)."""
    a_unit = normalize_rows(a)
    b_unit = a_unit if b is None else normalize_rows(b)
    return np.asarray(a_unit @ b_unit.T)


def article_cosine(u: np.ndarray, v: np.ndarray) -> float:
    """The source article's formula u.v / (sum u_i^2) / (sum v_j^2) — kept only to show it is
    wrong. It equals the cosine only when |u| |v| = 1... and |u|^2 |v|^2 = 1 at once."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return float(u @ v / (u @ u) / (v @ v))


def user_profiles(train: Interactions, item_vectors: np.ndarray) -> np.ndarray:
    """Each user's mean over the unit vectors of the items they interacted with in train.

    (n_users, d) float32 — the classic content-based profile; users with no items get zeros.
    """
    unit = normalize_rows(item_vectors)
    weights = train.binary().matrix
    counts = np.asarray(weights.sum(1)).ravel()
    profiles = weights @ unit
    return np.asarray(profiles / np.maximum(counts, 1)[:, None], dtype=np.float32)


def blocked_top_k(
    queries: np.ndarray,
    items: np.ndarray,
    k: int = 10,
    *,
    exclude: sp.csr_matrix | None = None,
    block_size: int = 512,
    normalize: bool = False,
    device: str = "auto",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of queries (n_q, d) against items (n_i, d) by inner product.

    Processes ``block_size`` queries at a time, so at most block_size x n_i scores exist at
    once (bounded memory). ``exclude`` is an (n_q x n_i) CSR whose stored entries are removed
    (e.g. seen items). ``normalize=True`` makes it cosine. torch does the matrix products and
    the selection (on CUDA when present); ties go to the lower item index.
    Returns (indices int64 (n_q, k), scores float32 (n_q, k)); -1 marks "no item".
    """
    import torch
    from tqdm.auto import tqdm

    from recsys_lib.runtime import resolve_device

    k = check_k(k)
    check_params("blocked_top_k", {"block_size": (POSITIVE_INT, block_size)})
    queries = check_array("queries", queries, dtype=np.float32, hint="NaN vectors rank nothing")
    items = check_array("items", items, dtype=np.float32, hint="NaN vectors rank nothing")
    if queries.ndim != 2 or items.ndim != 2 or queries.shape[1] != items.shape[1]:
        raise ValueError(
            f"queries {queries.shape} and items {items.shape} must be 2-D with the same "
            "number of columns (the vector dimension)."
        )
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape != (queries.shape[0], items.shape[0]):
            raise ValueError(
                f"exclude must be {queries.shape[0]} x {items.shape[0]}, got {exclude.shape}."
            )
    if normalize:
        queries, items = normalize_rows(queries), normalize_rows(items)
    dev = torch.device(resolve_device(device))
    k_eff = min(k, items.shape[0])
    item_t = torch.from_numpy(items).to(dev)
    out_idx = np.empty((queries.shape[0], k_eff), dtype=np.int64)
    out_val = np.empty((queries.shape[0], k_eff), dtype=np.float32)
    starts = range(0, queries.shape[0], block_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="top-k", disable=not progress):
            stop = min(start + block_size, queries.shape[0])
            scores = torch.from_numpy(queries[start:stop]).to(dev) @ item_t.T
            if exclude is not None:
                exclude_entries(scores, exclude[start:stop])
            out_idx[start:stop], out_val[start:stop] = select_top_k(scores, k_eff)
    return out_idx, out_val


def similar_items(item_vectors: np.ndarray, item_rows: ArrayLike, k: int = 10) -> np.ndarray:
    """The k most cosine-similar items to each given item (itself excluded): (len(rows), k)."""
    item_vectors = check_array("item_vectors", item_vectors, ndim=2)
    rows = np.atleast_1d(np.asarray(item_rows))
    if rows.dtype.kind not in "iu" or ((rows < 0) | (rows >= len(item_vectors))).any():
        raise InvalidParameterError(
            f"item_rows must be integer rows in 0..{len(item_vectors) - 1}, got "
            f"{short_repr(item_rows)}; map raw ids with catalogue.item_index(ids) first."
        )
    rows = rows.astype(np.int64)
    self_mask = sp.csr_matrix(
        (np.ones(len(rows)), (np.arange(len(rows)), rows)), shape=(len(rows), len(item_vectors))
    )
    unit = normalize_rows(item_vectors)
    return blocked_top_k(unit[rows], unit, k, exclude=self_mask, device="cpu")[0]
