"""The evaluation protocol: a fitted model, test interactions, ranking metrics at k.

    report = evaluate(model, test, k=10)            # {"ndcg@10": ..., "recall@10": ..., ...}
    per_user = evaluate_per_user(model, test, k=10) # one row per test user, for paired intervals
    table = evaluate_models({"pop": Popularity(), "als": ALS()}, train, test)

Every test user with at least one relevant item counts once; items seen in train are excluded
from the ranking (:meth:`recsys_lib.models.base.Model.recommend`); the metrics themselves live
in :mod:`recsys_lib.evaluation.metrics`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.data.interactions import Interactions
from recsys_lib.evaluation.metrics import per_user_metrics, ranking_report
from recsys_lib.models.base import Model, _item_columns


def evaluation_users(test: Interactions) -> np.ndarray:
    """Rows of users with at least one test interaction (the users every metric averages)."""
    return np.flatnonzero(np.diff(test.matrix.indptr) > 0)


def _ranked_for_test(
    model: Model, test: Interactions, k: int, candidates: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """(users, their top-k, their relevant rows) for :func:`evaluate` and its per-user twin."""
    train = model._require_fitted()
    if test.catalogue is not train.catalogue and (
        not np.array_equal(test.catalogue.user_ids, train.catalogue.user_ids)
        or not np.array_equal(test.catalogue.item_ids, train.catalogue.item_ids)
    ):
        raise ValueError(
            "train and test use different catalogues, so rows/columns do not line up; build "
            "both with the same Catalogue (Catalogue.from_frames(train, test))."
        )
    relevant = test.matrix
    if candidates is not None:
        keep = np.zeros(test.shape[1], dtype=np.float32)
        keep[_item_columns(candidates, test.shape[1])] = 1.0
        relevant = (relevant @ sp.diags(keep)).tocsr()
        relevant.eliminate_zeros()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    return users, model.recommend(users, k, candidates=candidates), relevant[users]


def evaluate(
    model: Model, test: Interactions, k: int = 10, candidates: np.ndarray | None = None
) -> dict[str, float]:
    """Ranking metrics at k of a fitted model on the test users (seen items excluded).

    With ``candidates`` (item columns) both the ranking and the relevant test items are
    restricted to those items (e.g. cold items only); users with no relevant candidate drop out.
    """
    _, recommended, relevant = _ranked_for_test(model, test, k, candidates)
    return ranking_report(recommended, relevant, k)


def evaluate_per_user(
    model: Model, test: Interactions, k: int = 10, candidates: np.ndarray | None = None
) -> pd.DataFrame:
    """:func:`evaluate`, one row per test user (index: raw user id), one column per metric.

    Column means equal :func:`evaluate`'s values. Two models' columns, on the same users, go
    to :func:`recsys_lib.evaluation.metrics.paired_bootstrap` for an interval on their difference.
    """
    users, recommended, relevant = _ranked_for_test(model, test, k, candidates)
    table = per_user_metrics(recommended, relevant, k)
    table.index = pd.Index(test.catalogue.user_ids[users[table.index]], name="user_id")
    return table


def evaluate_models(
    models: dict[str, Model], train: Interactions, test: Interactions, k: int = 10
) -> pd.DataFrame:
    """Fit and evaluate several models; one row each, with fit time in seconds."""
    rows = {}
    for name, model in models.items():
        model.fit(train)
        rows[name] = {**evaluate(model, test, k), "fit_s": model.fit_seconds_}
    return pd.DataFrame.from_dict(rows, orient="index")
