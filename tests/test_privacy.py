import numpy as np
import pandas as pd
import pytest

from recsys_lib.data.interactions import Interactions, shared_interactions
from recsys_lib.evaluation.protocol import evaluate
from recsys_lib.models.base import Popularity
from recsys_lib.models.private import DPPopularity
from recsys_lib.production import privacy


@pytest.fixture
def users():
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4, 5],
            "age": [23, 27, 23, 41, 45],
            "gender": ["M", "M", "M", "F", "F"],
            "occupation": ["student", "student", "student", "writer", "doctor"],
            "zip_code": ["55455", "55414", "55455", "10003", "10016"],
        }
    )


def test_class_sizes_unique_share_and_k(users):
    assert privacy.class_sizes(users, ["age", "gender"]).tolist() == [2, 1, 2, 1, 1]
    assert privacy.unique_share(users, ["age", "gender"]) == pytest.approx(3 / 5)
    assert privacy.k_anonymity(users, ["age", "gender"]) == 1
    assert privacy.unique_share(users, ["gender"]) == 0.0
    assert privacy.k_anonymity(users, ["gender"]) == 2
    assert privacy.k_anonymity(users, []) == 5
    with pytest.raises(KeyError, match="include_zip=True"):
        privacy.unique_share(users.drop(columns="zip_code"), ["zip_code"])


def test_coarsening_lowers_the_unique_share(users):
    coarse = privacy.coarsen_users(users, age_width=10, zip_digits=3, drop=["occupation"])
    assert coarse["age"].tolist() == ["20-29", "20-29", "20-29", "40-49", "40-49"]
    assert coarse["zip_code"].tolist() == ["554", "554", "554", "100", "100"]
    assert "occupation" not in coarse and "occupation" in users  # input untouched
    fields = ["age", "gender", "zip_code"]
    assert privacy.unique_share(users, fields) == pytest.approx(3 / 5)
    assert privacy.unique_share(coarse, fields) == 0.0
    table = privacy.risk_table({"raw": (users, fields), "coarse": (coarse, fields)})
    assert table.loc["raw", "unique_share"] == pytest.approx(0.6)
    assert table.loc["coarse", "k_anonymity"] == 2 and table.loc["coarse", "groups"] == 2
    with pytest.raises(ValueError, match="age_width"):
        privacy.coarsen_users(users, age_width=0)


def test_history_unique_share_by_hand():
    # users a and b both have only item 1; c has items 2 and 3 that nobody else has
    frame = pd.DataFrame({"user_id": ["a", "b", "c", "c"], "item_id": [1, 1, 2, 3]})
    train = Interactions.from_frame(frame)
    assert privacy.history_unique_share(train, 1) == pytest.approx(1 / 3)
    assert privacy.history_unique_share(train, 2) == 1.0  # only c has two items
    with pytest.raises(ValueError, match="no user has 3"):
        privacy.history_unique_share(train, 3)


def test_laplace_noise_scale_matches_epsilon():
    b = privacy.laplace_scale(sensitivity=5, epsilon=0.5)
    assert b == 10.0
    noisy = privacy.laplace_mechanism(np.zeros(200_000), 5, 0.5, rng=0)
    assert np.std(noisy) == pytest.approx(np.sqrt(2) * b, rel=0.02)
    assert np.mean(np.abs(noisy)) == pytest.approx(b, rel=0.02)  # E|X| = b for Laplace(0, b)
    assert abs(np.mean(noisy)) < 0.1
    halved = privacy.laplace_mechanism(np.zeros(200_000), 5, 1.0, rng=1)
    assert np.std(halved) == pytest.approx(np.std(noisy) / 2, rel=0.03)
    values = np.arange(3.0)
    np.testing.assert_array_equal(privacy.laplace_mechanism(values, 1, np.inf), values)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        privacy.laplace_scale(1, 0)


def _random_interactions(n_users=30, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        (u, i)
        for u in range(n_users)
        for i in rng.choice(n_items, rng.integers(2, 25), replace=False)
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_bound_contributions_caps_each_user_with_a_subset():
    train = Interactions.from_frame(_random_interactions())
    bounded = privacy.bound_contributions(train, 5, rng=0)
    per_user = np.diff(bounded.matrix.indptr)
    original = np.diff(train.matrix.indptr)
    np.testing.assert_array_equal(per_user, np.minimum(original, 5))
    assert (bounded.matrix - bounded.matrix.multiply(train.matrix)).nnz == 0  # a subset


def test_dp_item_counts_sensitivity_is_the_cap():
    train = Interactions.from_frame(_random_interactions())
    counts, scale = privacy.dp_item_counts(train, epsilon=2.0, max_items_per_user=8, seed=0)
    assert scale == 4.0 and counts.shape == (train.shape[1],)
    capped = np.asarray(
        privacy.bound_contributions(train, 8, np.random.default_rng(0)).matrix.sum(0)
    )
    exact, _ = privacy.dp_item_counts(train, epsilon=np.inf, max_items_per_user=8, seed=0)
    np.testing.assert_array_equal(exact, capped.ravel())
    draws = np.stack([privacy.dp_item_counts(train, 2.0, 8, seed=s)[0] for s in range(200)])
    # the capping subset is random too, so compare the noise around each draw's own capped counts
    noise = draws - np.stack(
        [privacy.dp_item_counts(train, np.inf, 8, seed=s)[0] for s in range(200)]
    )
    assert np.std(noise) == pytest.approx(np.sqrt(2) * 4.0, rel=0.05)


def test_dp_popularity_without_noise_is_popularity():
    train_df = _random_interactions(seed=1)
    test_df = _random_interactions(seed=2)
    train, test = shared_interactions(train_df, test_df)
    dp = DPPopularity(np.inf, max_items_per_user=1000).fit(train)
    pop = Popularity().fit(train)
    np.testing.assert_array_equal(dp.recommend(k=5), pop.recommend(k=5))
    table = privacy.dp_utility(train, test, [0.01, np.inf], max_items_per_user=1000, repeats=2,
                               k=5, progress=False)  # fmt: skip
    assert table.loc[np.inf, "ndcg@5"] == pytest.approx(evaluate(pop, test, 5)["ndcg@5"])
    assert table.loc[np.inf, "spearman"] == pytest.approx(1.0)
    assert table.loc[0.01, "noise_scale"] == pytest.approx(1000 / 0.01)
    assert table.loc[0.01, "spearman"] < 0.9
