"""Cold-start items: predict collaborative factors from text, so new items can be ranked.

ALS learns a factor vector only for items with interactions. For a new item we have its
description, hence its text embedding t_i. A ridge regression fitted on warm items,

    W = argmin_W  sum_{warm i} |y_i - [t_i, 1] W|^2 + alpha |W|^2,

maps any embedding to a factor vector y_i ~ [t_i, 1] W, which then scores against the user
factors exactly like a learned one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_lib.data.interactions import Catalogue, Interactions
from recsys_lib.data.splits import cold_item_split, recommenders_stratified_split
from recsys_lib.linalg import row_cosine
from recsys_lib.models.base import FactorScorer, Model
from recsys_lib.validation import NON_NEGATIVE, ArrayOf, InstanceOf, validate_params


class RidgeMapping:
    """Closed-form multi-output ridge regression from X (n, d) to Y (n, f), with intercept."""

    @validate_params({"alpha": NON_NEGATIVE})
    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray) -> RidgeMapping:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}; pair them row by row.")
        self.x_mean_, self.y_mean_ = x.mean(0), y.mean(0)
        xc, yc = x - self.x_mean_, y - self.y_mean_  # centring = an unpenalised intercept
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self.coef_ = np.linalg.solve(gram, xc.T @ yc)  # (d, f)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise RuntimeError("RidgeMapping is not fitted: call fit(x, y) first.")
        return np.asarray(
            (np.asarray(x, np.float64) - self.x_mean_) @ self.coef_ + self.y_mean_, np.float32
        )


def warm_item_columns(train: Interactions) -> np.ndarray:
    """Item columns with at least one train interaction."""
    return np.flatnonzero(np.asarray(train.matrix.getnnz(axis=0)) > 0)


class TextToFactors(FactorScorer):
    """A fitted factor model whose cold items get factors predicted from text embeddings.

    base: a fitted model with user_factors/item_factors (e.g. ALS). item_text: (n_items, d)
    embeddings in the catalogue's column order. Warm items keep their learned factors.
    """

    name = "text_to_factors"

    @validate_params({"base": InstanceOf(Model), "item_text": ArrayOf(2), "alpha": NON_NEGATIVE})
    def __init__(self, base: Model, item_text: np.ndarray, alpha: float = 1.0) -> None:
        super().__init__()
        self.base, self.item_text, self.alpha = base, np.asarray(item_text, np.float32), alpha

    def _fit(self, train: Interactions) -> None:
        base_train = self.base._require_fitted()
        if base_train.shape != train.shape or self.base.item_factors is None:
            raise ValueError("base must be a factor model fitted on the same train data.")
        if len(self.item_text) != train.shape[1]:
            raise ValueError(
                f"item_text has {len(self.item_text)} rows for {train.shape[1]} items."
            )
        warm = warm_item_columns(train)
        cold = np.setdiff1d(np.arange(train.shape[1]), warm)
        self.mapping_ = RidgeMapping(self.alpha).fit(
            self.item_text[warm], self.base.item_factors[warm]
        )
        factors = self.base.item_factors.copy()
        if cold.size:
            factors[cold] = self.mapping_.predict(self.item_text[cold])
        self.user_factors, self.item_factors = self.base.user_factors, factors
        self.cold_items_ = cold


def select_ridge_alpha(
    x: np.ndarray, y: np.ndarray, alphas: Iterable[float], holdout: float = 0.2, seed: int = 0
) -> pd.DataFrame:
    """Held-out error of the text -> factor mapping for each alpha, on warm items only.

    A random ``holdout`` share of the (warm) rows plays "cold": the mapping is fitted on the
    rest and scored by mean squared error and mean cosine to the true factors. Sorted best
    (lowest MSE) first.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    rng = np.random.default_rng(seed)
    test = rng.random(len(x)) < holdout
    rows = []
    for alpha in alphas:
        pred = RidgeMapping(alpha).fit(x[~test], y[~test]).predict(x[test]).astype(np.float64)
        truth = y[test]
        cos = row_cosine(pred, truth)
        rows.append(
            {
                "alpha": float(alpha),
                "mse": float(((pred - truth) ** 2).mean()),
                "mean_cosine": float(cos.mean()),
            }
        )
    return pd.DataFrame(rows).sort_values("mse", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ColdStartData:
    """A cold-item experiment: train has no interaction with ``cold_items`` (columns).

    test holds the held-out interactions of warm items *and* every interaction of cold items,
    so warm and cold items can compete; ``warm_items`` are the other columns.
    """

    train_df: pd.DataFrame
    test_df: pd.DataFrame
    train: Interactions
    test: Interactions
    cold_items: np.ndarray
    warm_items: np.ndarray


def cold_start_data(
    ratings: pd.DataFrame, cold_fraction: float = 0.1, seed: int = 42, ratio: float = 0.75
) -> ColdStartData:
    """Hold out ``cold_fraction`` of the items entirely, split the rest like the benchmark."""
    warm_df, cold_df, cold_ids = cold_item_split(ratings, cold_fraction, seed=seed)
    train_df, warm_test_df = recommenders_stratified_split(warm_df, ratio=ratio, seed=seed)
    test_df = pd.concat([warm_test_df, cold_df])
    catalogue = Catalogue.from_frames(train_df, test_df)
    train = Interactions.from_frame(train_df, catalogue)
    test = Interactions.from_frame(test_df, catalogue)
    cold_cols = catalogue.item_index(cold_ids)
    warm_cols = np.setdiff1d(np.arange(catalogue.n_items), cold_cols)
    return ColdStartData(train_df, test_df, train, test, np.sort(cold_cols), warm_cols)
