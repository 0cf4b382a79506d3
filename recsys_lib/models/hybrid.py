"""Hybrid recommenders: blend a collaborative score with a text-similarity score.

Raw scores of different models live on different scales (ALS dot products vs cosines), so
each user's scores are normalised first (z-score or rank), then mixed:

    score(u, i) = (1 - w) * norm(cf(u, i)) + w * norm(text(u, i))

``w`` is chosen on validation data carved from train. :class:`LearnedBlend` instead fits a
logistic regression on a handful of per-(user, item) features.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recsys_lib.data.interactions import Interactions
from recsys_lib.evaluation.protocol import evaluate
from recsys_lib.linalg import fit_logistic
from recsys_lib.models.base import Model
from recsys_lib.validation import Interval, Options, Satisfies, validate_params

NORMALIZATION = Options({"zscore", "rank", "none"})
COMPONENTS = Satisfies(
    lambda c: isinstance(c, dict) and bool(c) and all(isinstance(m, Model) for m in c.values()),
    "a non-empty dict of name -> fitted Model",
    example={},
)
WEIGHTS = Satisfies(
    lambda w: isinstance(w, dict) and all(np.isfinite(float(v)) for v in w.values()),
    "a dict of name -> finite weight",
    example={"x": float("nan")},
)


def normalize_scores(scores: np.ndarray, method: str = "zscore") -> np.ndarray:
    """Per-row normalisation of a (users x items) score block; -inf entries are ignored in the
    statistics and stay -inf.

    zscore: (s - mean) / std per row. rank: the rank of each item in its row scaled to [0, 1]
    (1 = best). none: unchanged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x items), got shape {scores.shape}.")
    if np.isnan(scores).any():
        raise ValueError(
            f"scores hold {int(np.isnan(scores).sum())} NaN value(s); mark excluded items with "
            "-inf, not NaN."
        )
    if method == "none":
        return scores
    finite = np.isfinite(scores)
    if method == "zscore":
        count = np.maximum(finite.sum(1, keepdims=True), 1)
        safe = np.where(finite, scores, 0.0)
        mean = safe.sum(1, keepdims=True) / count
        var = (np.where(finite, scores - mean, 0.0) ** 2).sum(1, keepdims=True) / count
        out = (scores - mean) / np.maximum(np.sqrt(var), 1e-12)
    elif method == "rank":
        order = np.argsort(np.where(finite, scores, -np.inf), axis=1, kind="stable")
        ranks = np.empty_like(order, dtype=np.float64)
        np.put_along_axis(ranks, order, np.arange(scores.shape[1], dtype=np.float64)[None], 1)
        out = ranks / max(scores.shape[1] - 1, 1)
    else:
        raise ValueError(f"method must be 'zscore', 'rank' or 'none', got {method!r}.")
    return np.where(finite, out, -np.inf)


class HybridModel(Model):
    """Weighted blend of already-fitted component models' per-user-normalised scores.

    components: name -> fitted Model (all on the same catalogue); weights: name -> weight.
    ``fit(train)`` does not refit the components; it only checks the catalogue matches.
    """

    name = "hybrid"

    @validate_params({"components": COMPONENTS, "weights": WEIGHTS,
                      "normalization": NORMALIZATION})  # fmt: skip
    def __init__(
        self, components: dict[str, Model], weights: dict[str, float], normalization: str = "zscore"
    ) -> None:
        super().__init__()
        missing = set(weights) - set(components)
        if missing:
            raise ValueError(
                f"weights name unknown components {sorted(missing)}; "
                f"components are {sorted(components)}."
            )
        self.components, self.weights, self.normalization = components, weights, normalization

    def _fit(self, train: Interactions) -> None:
        for name, model in self.components.items():
            fitted = model._require_fitted()
            if fitted.shape != train.shape:
                raise ValueError(
                    f"component {name!r} was fitted on {fitted.shape}, not "
                    f"{train.shape}; fit every component on the same catalogue."
                )

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        total = np.zeros((len(user_rows), self._require_fitted().shape[1]))
        for name, weight in self.weights.items():
            if weight:
                total += weight * normalize_scores(
                    self.components[name].score(user_rows), self.normalization
                )
        return total


@validate_params({"weight": Interval(float, 0, 1), "normalization": NORMALIZATION})
def blend(cf: Model, text: Model, weight: float, normalization: str = "zscore") -> HybridModel:
    """(1 - weight) * collaborative + weight * text, fitted on the cf model's train data."""
    model = HybridModel(
        {"cf": cf, "text": text}, {"cf": 1.0 - weight, "text": weight}, normalization
    )
    return model.fit(cf._require_fitted())


def blend_weight_curve(
    cf: Model,
    text: Model,
    valid: Interactions,
    weights: Iterable[float],
    *,
    normalization: str = "zscore",
    k: int = 10,
) -> pd.DataFrame:
    """Validation metrics for each blend weight (cf and text already fitted on the fit part)."""
    rows = [
        {"weight": float(w), **evaluate(blend(cf, text, w, normalization), valid, k)}
        for w in weights
    ]
    return pd.DataFrame(rows)


class LearnedBlend(HybridModel):
    """Component weights learned by logistic regression on validation data.

    Features per (user, item): each component's normalised score. Positives are the user's
    validation items, negatives ``n_negatives`` random unseen items per positive. The learned
    coefficients become the blend weights (the sigmoid is monotone, so ranking by the linear
    score equals ranking by probability).
    """

    name = "learned_blend"

    @validate_params({"components": COMPONENTS, "normalization": NORMALIZATION})
    def __init__(self, components: dict[str, Model], normalization: str = "zscore") -> None:
        super().__init__(components, {name: 1.0 for name in components}, normalization)

    def learn(
        self, valid: Interactions, n_negatives: int = 4, seed: int = 0, max_users: int | None = None
    ) -> LearnedBlend:
        rng = np.random.default_rng(seed)
        train = next(iter(self.components.values()))._require_fitted()
        users = np.flatnonzero(np.diff(valid.matrix.indptr))
        if max_users is not None and len(users) > max_users:
            users = np.sort(rng.choice(users, max_users, replace=False))
        feats, labels = [], []
        names = list(self.components)
        normalised = {
            n: normalize_scores(self.components[n].score(users), self.normalization) for n in names
        }
        seen = (train.matrix[users] + valid.matrix[users]).tocsr()
        for row, user in enumerate(users):
            positives = valid.matrix.indices[
                valid.matrix.indptr[user] : valid.matrix.indptr[user + 1]
            ]
            blocked = set(seen.indices[seen.indptr[row] : seen.indptr[row + 1]].tolist())
            pool = np.setdiff1d(np.arange(train.shape[1]), list(blocked))
            negatives = rng.choice(
                pool, min(len(pool), n_negatives * len(positives)), replace=False
            )
            items = np.concatenate([positives, negatives])
            feats.append(np.stack([normalised[n][row, items] for n in names], axis=1))
            labels.append(np.r_[np.ones(len(positives)), np.zeros(len(negatives))])
        coef = fit_logistic(np.vstack(feats), np.concatenate(labels))
        self.coefficients_ = dict(zip(names, coef[:-1], strict=True))
        self.weights = {n: float(c) for n, c in self.coefficients_.items()}
        return self


def weight_grid_search(
    components: dict[str, Model],
    grid: dict[str, list[float]],
    valid: Interactions,
    *,
    normalization: str = "zscore",
    k: int = 10,
) -> pd.DataFrame:
    """Validation metrics of :class:`HybridModel` for every combination of component weights.

    components: name -> Model fitted on the fit part; grid: name -> candidate weights (a
    component missing from ``grid`` gets weight 1). Sorted by nDCG@k, best first.
    """
    import itertools

    names = list(grid)
    train = next(iter(components.values()))._require_fitted()
    rows = []
    for values in itertools.product(*(grid[n] for n in names)):
        weights = {n: 1.0 for n in components} | dict(zip(names, values, strict=True))
        if not any(weights.values()):
            continue
        model = HybridModel(components, weights, normalization).fit(train)
        rows.append({**{f"w_{n}": w for n, w in weights.items()}, **evaluate(model, valid, k)})
    return (
        pd.DataFrame(rows)
        .sort_values(f"ndcg@{k}", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
