import numpy as np
import pandas as pd
import pytest

from recsys_lib.data import splits


def upstream_stratified(frame, ratio=0.75, by="item_id", seed=42):
    """recommenders' python_stratified_split rule as written upstream today.

    Checked by reading recommenders-team/recommenders at b02c95e2 (2025):
    recommenders/datasets/python_splitters.py, ``_do_stratification``: global seed, one draw
    per row, sort by (group, random), then ``rank <= round(threshold * count)`` on pandas
    Series (numpy round, half to even), with thresholds ``np.cumsum([ratio, 1 - ratio])``.
    """
    df = frame.copy()
    np.random.seed(seed)
    df["random"] = np.random.rand(len(df))
    df = df.sort_values([by, "random"])
    groups = df.groupby(by)
    df["count"] = groups[by].transform("count")
    df["rank"] = groups.cumcount() + 1
    parts, previous = [], None
    for threshold in np.cumsum([ratio, 1 - ratio]):
        keep = df["rank"] <= round(threshold * df["count"])
        if previous is not None:
            keep &= df["rank"] > round(previous * df["count"])
        parts.append(df[keep].drop(columns=["random", "rank", "count"]))
        previous = threshold
    return parts[0], parts[1]


def test_recommenders_split_reproduces_upstream_on_small_frame():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 30, 400),
            "item_id": rng.integers(0, 25, 400),
            "rating": rng.integers(1, 6, 400),
            "timestamp": rng.integers(0, 10**6, 400),
        }
    )
    train, test = splits.recommenders_stratified_split(frame)
    ref_train, ref_test = upstream_stratified(frame)
    assert train.index.tolist() == ref_train.index.tolist()  # same rows, same order
    assert test.index.tolist() == ref_test.index.tolist()


def test_recommenders_split_per_item_counts_by_hand():
    # Items with 1, 2, 4, 6 and 10 ratings: round(0.75 n) half to even = 1, 2, 3, 4, 8.
    sizes = {1: 1, 2: 2, 3: 4, 4: 6, 5: 10}
    frame = pd.DataFrame(
        {"user_id": np.arange(23), "item_id": np.repeat(list(sizes), list(sizes.values()))}
    )
    train, test = splits.recommenders_stratified_split(frame, seed=0)
    kept = train.groupby("item_id").size().reindex(list(sizes), fill_value=0)
    assert kept.tolist() == [1, 2, 3, 4, 8]
    assert len(test) == 23 - 18


def test_recommenders_split_on_movielens(movielens):
    train, test = splits.recommenders_stratified_split(movielens.ratings)
    # Upstream's split of ML-100K (recommenders >= July 2022, seed 42, filter_by="item").
    assert (len(train), len(test)) == (75_066, 24_934)
    ref_train, _ = upstream_stratified(movielens.ratings)
    assert set(train.index) == set(ref_train.index)


def test_recommenders_split_leaves_global_generator_alone():
    frame = pd.DataFrame({"user_id": np.arange(50), "item_id": np.arange(50) % 7})
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    splits.recommenders_stratified_split(frame, seed=42)
    assert np.array_equal(np.random.rand(3), expected)


def test_recommenders_split_arguments():
    frame = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2]})
    with pytest.raises(ValueError, match="filter_by"):
        splits.recommenders_stratified_split(frame, filter_by="movie")
    with pytest.raises(ValueError, match="ratio"):
        splits.recommenders_stratified_split(frame, ratio=1.5)


def test_min_count_filter():
    frame = pd.DataFrame({"item_id": [1, 1, 2, 3, 3, 3]})
    assert splits.min_count_filter(frame, 2)["item_id"].tolist() == [1, 1, 3, 3, 3]


def test_stratified_split_per_user(tiny_ratings):
    train, test = splits.stratified_split(tiny_ratings, ratio=0.67, seed=1)
    assert (train.groupby("user_id").size() == 2).all()
    assert (test.groupby("user_id").size() == 1).all()
    again, _ = splits.stratified_split(tiny_ratings, ratio=0.67, seed=1)
    assert train.index.equals(again.index)


def test_temporal_split_global_and_per_user(tiny_ratings):
    train, test = splits.temporal_split(tiny_ratings, ratio=0.75)
    assert train["timestamp"].max() < test["timestamp"].min()
    assert len(train) == 9
    train_u, test_u = splits.temporal_split(tiny_ratings, ratio=0.67, per_user=True)
    latest = tiny_ratings.groupby("user_id")["timestamp"].max()
    assert (test_u.set_index("user_id")["timestamp"] == latest).all()
    assert len(train_u) == 8


def test_leave_k_out(tiny_ratings):
    train, test = splits.leave_k_out(tiny_ratings, k=1)
    assert len(test) == 4 and test.groupby("user_id").size().eq(1).all()
    latest = tiny_ratings.groupby("user_id")["timestamp"].max()
    assert (test.set_index("user_id")["timestamp"] == latest).all()
    train_r, test_r = splits.leave_k_out(tiny_ratings, k=3, how="random")
    assert len(test_r) == 0 and len(train_r) == 12  # users with <= k interactions keep all
    with pytest.raises(ValueError, match="how"):
        splits.leave_k_out(tiny_ratings, how="oldest")


def test_cold_item_split_removes_items_from_train(movielens):
    train, cold_test, cold = splits.cold_item_split(movielens.ratings, 0.1, seed=0)
    assert len(cold) == round(0.1 * 1682)
    assert not train["item_id"].isin(cold).any()
    assert cold_test["item_id"].isin(cold).all()
    assert len(train) + len(cold_test) == 100_000


def test_temporal_benchmark_keeps_test_users_seen_before_the_cut():
    from recsys_lib.data.splits import temporal_benchmark

    # user 1 rates early and late; user 2 only after the cut; film 40 first appears after it
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2],
            "item_id": [10, 20, 30, 40, 10, 20],
            "rating": [4.0] * 6,
            "timestamp": [1, 2, 3, 10, 11, 12],
        }
    )
    train, test, counts = temporal_benchmark(frame, ratio=0.5)
    assert train.nnz == 3 and test.nnz == 1  # user 1's film 40; user 2's ratings dropped
    assert counts == {
        "test users kept": 1,
        "test users dropped (first seen after the cut)": 1,
        "test ratings kept": 1,
        "of which on films with no train rating": 1,
    }
    assert train.shape == test.shape  # one catalogue: rows and columns line up
    assert test.matrix[train.catalogue.user_index([1])[0]].nnz == 1
