"""The one model contract every recommender in the suite follows, plus simple baselines.

Evaluating a fitted model on test data lives in :mod:`recsys_lib.evaluation.protocol`.

    model = SomeModel(...).fit(train)          # train: Interactions (users x items)
    scores = model.score(user_rows)            # (len(user_rows), n_items) float32
    top = model.recommend(user_rows, k=10)     # (len(user_rows), k) item columns, seen removed
    model.user_factors, model.item_factors     # (n_users, f), (n_items, f) or None

Because every model takes an :class:`~recsys_lib.data.interactions.Interactions` object (rows are
users, one row per user) the orientation is fixed in one place, and a chapter swaps models
in one line. Scoring is done in blocks of users so memory stays bounded.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from recsys_lib.data.interactions import Interactions
from recsys_lib.retrieval.topk import check_k, exclude_entries, top_k
from recsys_lib.validation import (
    POSITIVE_INT,
    SEED,
    ArrayOf,
    InstanceOf,
    InvalidParameterError,
    check_param,
    short_repr,
    validate_params,
)


def dot_scores(
    user_factors: np.ndarray, item_factors: np.ndarray, user_rows: ArrayLike
) -> np.ndarray:
    """user_factors[rows] @ item_factors.T as float32 (len(rows), n_items).

    Done with torch when it is installed: its own thread pool stays multi-threaded even where
    OPENBLAS_NUM_THREADS=1 is set for implicit's sake.
    """
    users = np.ascontiguousarray(user_factors[np.asarray(user_rows)], dtype=np.float32)
    items = np.ascontiguousarray(item_factors, dtype=np.float32)
    try:
        import torch
    except ImportError:
        return users @ items.T
    return (torch.from_numpy(users) @ torch.from_numpy(items).T).numpy()


class NotFittedError(RuntimeError):
    """A model was used before ``fit``."""


class Model(ABC):
    """Base class: subclasses implement ``_fit(train)`` and ``_score(user_rows)``."""

    name = "model"
    user_factors: np.ndarray | None = None
    item_factors: np.ndarray | None = None

    def __init__(self) -> None:
        self.train_: Interactions | None = None
        self.fit_seconds_: float | None = None

    def fit(self, train: Interactions) -> Self:
        """Fit on a users x items :class:`Interactions`; returns self."""
        if not isinstance(train, Interactions):
            raise TypeError(
                f"fit() takes an Interactions object (users x items), got {type(train).__name__}; "
                "build one with Interactions.from_frame(ratings, catalogue)."
            )
        if min(train.shape) == 0 or train.nnz == 0:
            raise ValueError(
                f"{type(self).__name__}.fit: train has no interactions (shape {train.shape}, "
                f"{train.nnz} stored entries), so there is nothing to learn from; check the "
                "split or the filters that built it."
            )
        start = time.perf_counter()
        self.train_ = train
        self._fit(train)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    @abstractmethod
    def _fit(self, train: Interactions) -> None: ...

    @abstractmethod
    def _score(self, user_rows: np.ndarray) -> np.ndarray: ...

    def _require_fitted(self) -> Interactions:
        if self.train_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(train) first.")
        return self.train_

    def _require_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_factors, item_factors) of a fitted factor model; a clear error otherwise."""
        self._require_fitted()
        if self.user_factors is None or self.item_factors is None:
            raise NotFittedError(
                f"{type(self).__name__} has no user and item factors after fit; only factor "
                "models (ALS, BPR, FactorModel, ...) have them."
            )
        return self.user_factors, self.item_factors

    def _rows(self, user_rows: ArrayLike | None) -> np.ndarray:
        train = self._require_fitted()
        if user_rows is None:
            return np.arange(train.shape[0])
        rows = _positions("user_rows", user_rows, train.shape[0])
        bad = rows[(rows < 0) | (rows >= train.shape[0])]
        if bad.size:
            raise IndexError(
                f"user row(s) {bad[:5].tolist()} out of range for {train.shape[0]} users; "
                "pass row positions (catalogue.user_index(ids)), not raw ids."
            )
        return rows

    def score(self, user_rows: ArrayLike | None = None) -> np.ndarray:
        """Scores (len(user_rows), n_items), float32; higher is better."""
        rows = self._rows(user_rows)
        return np.asarray(self._score(rows), dtype=np.float32)

    def recommend(
        self,
        user_rows: ArrayLike | None = None,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> np.ndarray:
        """Top-k item columns per user (best first), items seen in train excluded.

        ``candidates`` (item columns) restricts the ranking to those items, e.g. only cold
        items. At most ``block_size`` rows of scores exist at any time. k >= 1; with k above
        the number of items every item is ranked, and rows with fewer than k eligible items
        are padded with -1. Equal scores go to the lower item column.
        """
        train = self._require_fitted()
        k = check_k(k)
        check_param("block_size", block_size, POSITIVE_INT, where="recommend")
        rows = self._rows(user_rows)
        out = np.empty((len(rows), min(k, train.shape[1])), dtype=np.int64)
        blocked = None
        if candidates is not None:
            blocked = np.ones(train.shape[1], dtype=bool)
            blocked[_item_columns(candidates, train.shape[1])] = False
        for start in range(0, len(rows), block_size):
            block = rows[start : start + block_size]
            scores = self.score(block)
            if blocked is not None:
                scores[:, blocked] = -np.inf
            if exclude_seen:
                exclude_entries(scores, train.matrix[block])
            out[start : start + len(block)] = top_k(scores, k)[0]
        return out

    def recommend_frame(self, user_ids: ArrayLike, k: int = 10, **kwargs: Any) -> pd.DataFrame:
        """Recommendations for raw user ids as a long frame (user_id, rank, item_id)."""
        train = self._require_fitted()
        rows = train.catalogue.user_index(user_ids)
        cols = self.recommend(rows, k, **kwargs)
        return pd.DataFrame(
            {
                "user_id": np.repeat(train.catalogue.user_ids[rows], cols.shape[1]),
                "rank": np.tile(np.arange(1, cols.shape[1] + 1), len(rows)),
                "item_id": np.where(cols >= 0, train.catalogue.item_ids[cols], -1).ravel(),
            }
        )


class Popularity(Model):
    """Recommends the items most users interacted with in train."""

    name = "popularity"

    def _fit(self, train: Interactions) -> None:
        self.counts_ = np.asarray(train.binary().matrix.sum(axis=0)).ravel().astype(np.float32)

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(user_rows), len(self.counts_))).copy()


class RandomModel(Model):
    """Uniformly random scores; each user's scores depend only on (seed, user row)."""

    name = "random"

    @validate_params({"seed": SEED})
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    def _fit(self, train: Interactions) -> None:
        self.n_items_ = train.shape[1]

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        return (
            np.stack(
                [
                    np.random.default_rng([self.seed, int(u)]).random(self.n_items_)
                    for u in user_rows
                ]
            )
            if len(user_rows)
            else np.empty((0, self.n_items_))
        )


def _positions(name: str, values: ArrayLike, size: int) -> np.ndarray:
    """Row or column positions as int64: whole numbers only (not bools, not 0.7)."""
    raw = np.atleast_1d(np.asarray(values))
    if raw.dtype.kind not in "iu" and raw.size:
        if raw.dtype.kind != "f" or not np.isfinite(raw).all() or (raw != np.round(raw)).any():
            raise InvalidParameterError(
                f"{name} must be integer positions (0..{size - 1}), got {short_repr(values)}; "
                "map raw ids with the catalogue (catalogue.user_index / item_index) first."
            )
    return raw.astype(np.int64)


def _item_columns(candidates: ArrayLike, n_items: int) -> np.ndarray:
    """Candidate item columns, each in [0, n_items) (a -1 would silently mean the last item)."""
    cols = _positions("candidates", candidates, n_items)
    bad = cols[(cols < 0) | (cols >= n_items)]
    if bad.size:
        raise InvalidParameterError(
            f"candidates hold item column(s) {bad[:5].tolist()} outside 0..{n_items - 1}; pass "
            "item columns of the train catalogue (catalogue.item_index(ids))."
        )
    return cols


class FactorScorer(Model):
    """Base of every model that scores by dot products of its user and item factors."""

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        return dot_scores(*self._require_factors(), user_rows)


class FactorModel(FactorScorer):
    """Scores users by dot products of given factors: score(u, i) = user_factors[u] . item_factors[i].

    Wraps factors learned elsewhere (Spark ALS, a two-tower encoder, a ridge mapping) so the
    evaluation and similarity code work on them unchanged. ``user_factors`` is
    (n_users, f) in the train catalogue's row order, ``item_factors`` (n_items, f) in its
    column order; ``fit(train)`` only checks the shapes.
    """

    name = "factors"

    @validate_params({"user_factors": ArrayOf(2), "item_factors": ArrayOf(2)})
    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        super().__init__()
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        if self.user_factors.shape[1] != self.item_factors.shape[1]:
            raise ValueError(
                f"user factors have {self.user_factors.shape[1]} columns but item factors have "
                f"{self.item_factors.shape[1]}; both sides need the same dimension."
            )

    def _fit(self, train: Interactions) -> None:
        expected = (train.shape[0], train.shape[1])
        users, items = self._require_factors()
        got = (users.shape[0], items.shape[0])
        if got != expected:
            raise ValueError(
                f"factors cover {got[0]} users x {got[1]} items but train is {expected[0]} x "
                f"{expected[1]}; order the factors by train.catalogue rows/columns."
            )


class RandomTieBreak(Model):
    """Wraps a fitted model and breaks exact score ties at random instead of by item index.

    The library's top-k breaks ties towards the lower column, which is reproducible but not
    neutral: MovieLens ids are roughly in catalogue order, so a model whose scores all tie
    (ALS or popularity on never-seen items) would inherit an id-order "signal". Adding a
    jitter far below float32 resolution of the scores reorders only exact ties.
    """

    @validate_params({"base": InstanceOf(Model), "seed": SEED})
    def __init__(self, base: Model, seed: int = 0) -> None:
        super().__init__()
        self.base, self.seed = base, seed
        self.name = f"{base.name}+random_ties"

    def _fit(self, train: Interactions) -> None:
        if self.base._require_fitted().shape != train.shape:
            raise ValueError("base must be fitted on the same train data.")

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        return self.base.score(user_rows)

    def score(self, user_rows: ArrayLike | None = None) -> np.ndarray:
        """The base model's scores plus the jitter: float64 (the jitter would vanish in float32)."""
        rows = self._rows(user_rows)
        scores = self.base.score(rows).astype(np.float64)
        scale = np.maximum(
            np.abs(np.where(np.isfinite(scores), scores, 0)).max(1, keepdims=True), 1.0
        )
        jitter = (
            np.stack(
                [np.random.default_rng([self.seed, int(u)]).random(scores.shape[1]) for u in rows]
            )
            if len(rows)
            else np.zeros_like(scores)
        )
        return np.asarray(scores + 1e-9 * scale * jitter)
