"""Semantic IDs: each item named by a short tuple of codes learned from its text vector.

Generative retrieval (TIGER, Rajput et al. 2023) replaces an item's arbitrary id by a tuple of
codes so that similar items share prefixes. Residual k-means builds the tuple: cluster the
vectors (level 1), subtract each vector's centroid, cluster the residuals (level 2), and so on.
Two items can land on the same tuple (a *collision*); a last level numbers them 0, 1, 2, ...
so that every item has a unique identifier.

    ids = SemanticIDs.fit(item_vectors, levels=3, codes=32, seed=0)
    ids.codes            # (n_items, levels + 1) int64, unique rows
    ids.item_of(tuple)   # the item column a code tuple names
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.linalg import group_ranks


def residual_kmeans(
    vectors: np.ndarray, levels: int = 3, codes: int = 32, seed: int = 0, iterations: int = 20
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Residual k-means with ``scipy.cluster.vq.kmeans2`` (k-means++ start, seeded).

    vectors: (n, d) float. Returns (assignments (n, levels) int64, codebooks: ``levels``
    arrays of shape (codes, d)); the sum of the chosen centroids approximates each vector.
    """
    from scipy.cluster.vq import kmeans2

    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or levels < 1 or not 1 < codes <= len(x):
        raise ValueError(f"need (n, d) vectors, levels >= 1 and 1 < codes <= n; got {x.shape}, "
                         f"levels={levels}, codes={codes}.")  # fmt: skip
    rng = np.random.default_rng(seed)
    residual = x.copy()
    assignments = np.empty((len(x), levels), dtype=np.int64)
    books = []
    for level in range(levels):
        try:  # scipy >= 1.15 names the generator rng
            centroids, labels = kmeans2(residual, codes, iter=iterations, minit="++", rng=rng)
        except TypeError:
            centroids, labels = kmeans2(residual, codes, iter=iterations, minit="++", seed=rng)
        assignments[:, level] = labels
        books.append(centroids)
        residual = residual - centroids[labels]
    return assignments, books


def add_collision_level(assignments: np.ndarray) -> np.ndarray:
    """Append a level that numbers items sharing a code tuple 0, 1, 2, ... (in item order).

    assignments: (n, levels) int. Returns (n, levels + 1); its rows are unique.
    """
    a = np.asarray(assignments, dtype=np.int64)
    _, group = np.unique(a, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = group_ranks(group[order])[0]
    return np.column_stack((a, rank))


def reconstruction_error(
    vectors: np.ndarray, assignments: np.ndarray, codebooks: list[np.ndarray]
) -> np.ndarray:
    """(levels,) mean squared residual norm after 1, 2, ... levels, divided by the mean squared
    norm of the centred vectors (1.0 = no better than the mean vector)."""
    x = np.asarray(vectors, dtype=np.float64)
    total = ((x - x.mean(0)) ** 2).sum(1).mean()
    residual, out = x.copy(), []
    for level, book in enumerate(codebooks):
        residual = residual - book[assignments[:, level]]
        out.append((residual**2).sum(1).mean() / total)
    return np.array(out)


def code_purity(codes: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """How pure each code is in a label (e.g. a film's first genre).

    codes, labels: (n,) per item. Returns one row per code: ``size``, ``top_label`` and
    ``purity`` (share of the code's items that carry its most common label).
    """
    frame = pd.DataFrame({"code": np.asarray(codes), "label": np.asarray(labels)})
    counts = frame.groupby(["code", "label"]).size()
    size = counts.groupby(level=0).sum()
    top = counts.groupby(level=0).idxmax().map(lambda pair: pair[1])
    return pd.DataFrame({"size": size, "top_label": top,
                         "purity": counts.groupby(level=0).max() / size})  # fmt: skip


def weighted_purity(table: pd.DataFrame) -> float:
    """Item-weighted mean purity of a :func:`code_purity` table."""
    return float((table["purity"] * table["size"]).sum() / table["size"].sum())


@dataclass(frozen=True)
class SemanticIDs:
    """Unique code tuples for the items of a catalogue (row i = item column i)."""

    codes: np.ndarray  # (n_items, levels + 1) int64, unique rows
    codebooks: tuple[Any, ...]  # levels x (codes, d) centroids
    collisions: int  # items that needed the collision level (tuple shared before it)

    @classmethod
    def fit(cls, vectors: np.ndarray, levels: int = 3, codes: int = 32, seed: int = 0,
            iterations: int = 20) -> SemanticIDs:  # fmt: skip
        """Residual k-means codes of (n_items, d) ``vectors`` plus a collision level."""
        assignments, books = residual_kmeans(vectors, levels, codes, seed, iterations)
        full = add_collision_level(assignments)
        return cls(full, tuple(books), int((full[:, -1] > 0).sum()))

    def item_of(self, code: Sequence[int]) -> int:
        """The item column named by a full code tuple; KeyError when no item has it."""
        hit = np.flatnonzero((self.codes == np.asarray(code, dtype=np.int64)).all(1))
        if not len(hit):
            raise KeyError(f"code {tuple(code)} names no item ({len(self.codes)} items); "
                           "valid tuples are the rows of .codes.")  # fmt: skip
        return int(hit[0])

    def reconstruct(self) -> np.ndarray:
        """(n_items, d): the sum of each item's centroids (the collision level adds nothing)."""
        return np.asarray(
            sum(book[self.codes[:, level]] for level, book in enumerate(self.codebooks))
        )
