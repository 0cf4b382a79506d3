import numpy as np
import pandas as pd
import pytest

from recsys_lib import splits


def reference_stratified(frame, ratio=0.75, by="item_id", seed=42):
    """An independent pandas re-implementation of recommenders' python_stratified_split."""
    df = frame.copy()
    np.random.seed(seed)
    df["random"] = np.random.rand(len(df))
    df = df.sort_values([by, "random"])
    grouped = df.groupby(by)
    df["rank"] = (grouped.cumcount() + 1) / grouped[by].transform("count")
    return df[df["rank"] <= ratio].drop(columns=["random", "rank"]), df[df["rank"] > ratio].drop(
        columns=["random", "rank"]
    )


def test_recommenders_split_reproduces_reference_on_small_frame():
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
    ref_train, ref_test = reference_stratified(frame)
    assert sorted(train.index) == sorted(ref_train.index)
    assert sorted(test.index) == sorted(ref_test.index)


def test_recommenders_split_on_movielens(movielens):
    train, test = splits.recommenders_stratified_split(movielens.ratings)
    ref_train, _ = reference_stratified(movielens.ratings)
    assert set(train.index) == set(ref_train.index)
    assert len(train) + len(test) == 100_000
    # floor(0.75 * n) per item: an item with 2 ratings keeps 1 in train.
    counts = movielens.ratings.groupby("item_id").size()
    kept = train.groupby("item_id").size().reindex(counts.index, fill_value=0)
    assert (kept == np.floor(0.75 * counts + 1e-9)).all()


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
