"""Train / test splitting protocols.

All splitters take a long ratings frame (user_id, item_id, rating, timestamp) and return
frames; none of them look at the test part when deciding the train part. Hyper-parameters
are chosen on a validation split carved from TRAIN with the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_lib.data.interactions import Interactions, shared_interactions
from recsys_lib.linalg import group_ranks
from recsys_lib.validation import NON_NEGATIVE_INT, POSITIVE_INT, SEED, check_params


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}.")


def _check_columns(frame: pd.DataFrame, *cols: str, name: str = "frame") -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}.")


def min_count_filter(ratings: pd.DataFrame, min_count: int, by: str = "item_id") -> pd.DataFrame:
    """Keep rows whose ``by`` value occurs at least ``min_count`` times."""
    check_params("min_count_filter", {"min_count": (POSITIVE_INT, min_count)})
    counts = ratings.groupby(by)[by].transform("count")
    return ratings[counts >= min_count]


def subsample_ratings(
    ratings: pd.DataFrame, n_users: int, n_items: int, seed: int = 0, min_per_user: int = 5
) -> pd.DataFrame:
    """A small, dense slice for quick runs: the ``n_items`` most-rated items, then ``n_users``
    random users among those with at least ``min_per_user`` ratings on them. Rows keep their
    original order."""
    check_params("subsample_ratings", {"n_users": (POSITIVE_INT, n_users),
                 "n_items": (POSITIVE_INT, n_items), "seed": (SEED, seed),
                 "min_per_user": (NON_NEGATIVE_INT, min_per_user)})  # fmt: skip
    _check_columns(ratings, "user_id", "item_id", name="ratings")
    top = ratings["item_id"].value_counts(sort=True).index[:n_items]
    kept = ratings[ratings["item_id"].isin(top)]
    counts = kept["user_id"].value_counts()
    eligible = np.sort(counts.index[counts >= min_per_user].to_numpy())
    if len(eligible) < n_users:
        raise ValueError(
            f"only {len(eligible)} users have >= {min_per_user} ratings on the top {n_items} "
            f"items; ask for fewer users (got n_users={n_users}) or more items."
        )
    chosen = np.random.default_rng(seed).choice(eligible, size=n_users, replace=False)
    return kept[kept["user_id"].isin(chosen)]


def recommenders_stratified_split(
    ratings: pd.DataFrame,
    ratio: float = 0.75,
    min_rating: int = 1,
    filter_by: str = "item",
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommenders-team benchmark split, checked against upstream's current code.

    Equivalent to ``recommenders.datasets.python_splitters.python_stratified_split`` with the
    same arguments (its rule since commit d6311285, July 2022, still current in 2025): draw one
    uniform number per row, in the frame's order, from ``RandomState(seed)`` (the same numbers
    as upstream's ``np.random.seed(seed); np.random.rand(n)``, without touching numpy's global
    generator), sort by (group, random) and, within each group (item by default), send a row
    to train when ``rank <= round(ratio * count)`` (rank counted from 1; numpy's round, half
    to even). So an item with ``n`` ratings keeps ``round(ratio * n)`` of them in train: an
    item with 2 ratings keeps both, one with 6 keeps 4. On MovieLens-100K: 75,066 train and
    24,934 test rows. Upstream's rule before July 2022 (``rank / count <= ratio``, i.e.
    ``floor(ratio * n)``) gave 74,331 / 25,669; no chapter uses it any more.

    Returns (train, test), each sorted by (group, random draw).
    """
    if filter_by not in ("user", "item"):
        raise ValueError(f"filter_by must be 'user' or 'item', got {filter_by!r}.")
    _check_ratio(ratio)
    column = f"{filter_by}_id"
    _check_columns(ratings, column)
    if min_rating > 1:
        ratings = min_count_filter(ratings, min_rating, by=column)

    # Upstream seeds the legacy global generator; a local RandomState draws the same numbers.
    draws = np.random.RandomState(seed).rand(len(ratings))
    order = np.lexsort((draws, ratings[column].to_numpy()))
    rank, size = group_ranks(ratings[column].to_numpy()[order])
    in_train = rank + 1 <= np.round(ratio * size)
    ordered = ratings.iloc[order]
    return ordered[in_train], ordered[~in_train]


def stratified_split(
    ratings: pd.DataFrame, ratio: float = 0.75, by: str = "user_id", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-group random split: each user (or item) keeps ``round(ratio * n)`` rows in train.

    Groups with a single row keep it in train. Uses its own generator; rows keep file order.
    """
    _check_ratio(ratio)
    _check_columns(ratings, by)
    rng = np.random.default_rng(seed)
    keys = rng.random(len(ratings))
    group = ratings[by].to_numpy()
    order = np.lexsort((keys, group))
    rank, size = group_ranks(group[order])
    mask = np.empty(len(ratings), dtype=bool)
    mask[order] = rank < np.maximum(np.round(ratio * size), 1)
    return ratings[mask], ratings[~mask]


def temporal_split(
    ratings: pd.DataFrame, ratio: float = 0.8, per_user: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earliest ``ratio`` of interactions to train, the rest to test.

    Global: one time cut for everybody (what a production system sees). Per user: each
    user's own earliest share (stable sort on timestamp, ties kept in file order).
    """
    _check_ratio(ratio)
    _check_columns(ratings, "timestamp", "user_id")
    if not per_user:
        order = np.argsort(ratings["timestamp"].to_numpy(), kind="stable")
        n_train = int(round(ratio * len(ratings)))
        mask = np.zeros(len(ratings), dtype=bool)
        mask[order[:n_train]] = True
        return ratings[mask], ratings[~mask]
    users = ratings["user_id"].to_numpy()
    order = np.lexsort((np.arange(len(ratings)), ratings["timestamp"].to_numpy(), users))
    rank, size = group_ranks(users[order])
    mask = np.empty(len(ratings), dtype=bool)
    mask[order] = rank < np.maximum(np.round(ratio * size), 1)
    return ratings[mask], ratings[~mask]


def leave_k_out(
    ratings: pd.DataFrame, k: int = 1, how: str = "last", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``k`` interactions per user (the latest, or random ones).

    Users with ``k`` or fewer interactions keep everything in train.
    """
    check_params("leave_k_out", {"k": (POSITIVE_INT, k), "seed": (SEED, seed)})
    if how not in ("last", "random"):
        raise ValueError(f"how must be 'last' or 'random', got {how!r}.")
    _check_columns(ratings, "user_id", "timestamp")
    users = ratings["user_id"].to_numpy()
    if how == "last":
        secondary = ratings["timestamp"].to_numpy()
    else:
        secondary = np.random.default_rng(seed).random(len(ratings))
    order = np.lexsort((np.arange(len(ratings)), secondary, users))
    rank, size = group_ranks(users[order])
    from_end = size - rank  # 1 = last
    held = (from_end <= k) & (size > k)
    mask = np.empty(len(ratings), dtype=bool)
    mask[order] = ~held
    return ratings[mask], ratings[~mask]


def cold_item_split(
    ratings: pd.DataFrame, cold_fraction: float = 0.1, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Hold out a fraction of items entirely: none of their interactions are in train.

    Returns (train, test_cold, cold_item_ids): train holds every interaction with a warm
    item, test_cold every interaction with a cold one. Combine with another split of the
    warm part to evaluate warm and cold items side by side.
    """
    _check_ratio(cold_fraction)
    items = np.unique(ratings["item_id"].to_numpy())
    rng = np.random.default_rng(seed)
    n_cold = max(1, int(round(cold_fraction * len(items))))
    cold = np.sort(rng.choice(items, size=n_cold, replace=False))
    is_cold = ratings["item_id"].isin(cold).to_numpy()
    return ratings[~is_cold], ratings[is_cold], cold


@dataclass(frozen=True)
class BenchmarkData:
    """The recommenders benchmark split plus a validation split carved from its train part.

    ``fit`` + ``valid`` partition ``train`` (same protocol, another seed): choose
    hyper-parameters on (fit, valid), refit on train, report on test once. All four
    :class:`Interactions` share one catalogue, so rows and columns line up.
    """

    train_df: pd.DataFrame
    test_df: pd.DataFrame
    fit_df: pd.DataFrame
    valid_df: pd.DataFrame
    train: Interactions
    test: Interactions
    fit: Interactions
    valid: Interactions


def benchmark_data(
    ratings: pd.DataFrame, seed: int = 42, validation_seed: int = 7, ratio: float = 0.75
) -> BenchmarkData:
    """Test split as recommenders does it; validation carved from train the same way."""
    train_df, test_df = recommenders_stratified_split(ratings, ratio=ratio, seed=seed)
    fit_df, valid_df = recommenders_stratified_split(train_df, ratio=ratio, seed=validation_seed)
    train, test, fit, valid = shared_interactions(train_df, test_df, fit_df, valid_df)
    return BenchmarkData(train_df, test_df, fit_df, valid_df, train, test, fit, valid)


def temporal_benchmark(
    ratings: pd.DataFrame, ratio: float = 0.75
) -> tuple[Interactions, Interactions, dict[str, int]]:
    """The global temporal split (:func:`temporal_split`) as (train, test) on one catalogue,
    with test kept to users who have at least one train rating (a model can only personalise
    for users it has seen; users who first appear after the cut are a cold-start problem).

    Returns (train, test, counts): counts of test users kept and dropped, test ratings kept, and
    test ratings on films with no train rating (no collaborative model can rank those).
    """
    train_df, test_df = temporal_split(ratings, ratio)
    known = test_df["user_id"].isin(set(train_df["user_id"]))
    kept = test_df[known]
    counts = {
        "test users kept": int(kept["user_id"].nunique()),
        "test users dropped (first seen after the cut)": int(test_df[~known]["user_id"].nunique()),
        "test ratings kept": int(len(kept)),
        "of which on films with no train rating": int(
            (~kept["item_id"].isin(set(train_df["item_id"]))).sum()
        ),
    }
    train, test = shared_interactions(train_df, kept)
    return train, test, counts
