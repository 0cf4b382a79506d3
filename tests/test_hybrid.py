import numpy as np
import pandas as pd
import pytest

from recsys_lib.data.interactions import Catalogue, Interactions, shared_interactions
from recsys_lib.models.base import FactorModel, Popularity
from recsys_lib.models.coldstart import RidgeMapping, TextToFactors, warm_item_columns
from recsys_lib.models.hybrid import (
    HybridModel,
    LearnedBlend,
    blend,
    blend_weight_curve,
    normalize_scores,
)


def test_zscore_and_rank_normalisation_by_hand():
    scores = np.array([[1.0, 2.0, 3.0, -np.inf]])
    z = normalize_scores(scores, "zscore")
    assert np.allclose(z[0, :3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    assert np.isneginf(z[0, 3])
    r = normalize_scores(np.array([[5.0, 1.0, 3.0]]), "rank")
    assert r.tolist() == [[1.0, 0.0, 0.5]]
    with pytest.raises(ValueError, match="zscore"):
        normalize_scores(scores, "minmax")


@pytest.fixture
def two_models():
    frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 2, 3, 1]})
    (train,) = shared_interactions(frame)
    users = np.eye(3, 2, dtype=np.float32)
    cf = FactorModel(users, np.array([[1, 0], [0, 1], [2, 0]], np.float32)).fit(train)
    text = FactorModel(users, np.array([[0, 1], [1, 0], [0, 2]], np.float32)).fit(train)
    return train, cf, text


def test_blend_endpoints_equal_components(two_models):
    train, cf, text = two_models
    assert np.allclose(blend(cf, text, 0.0).score(), normalize_scores(cf.score()))
    assert np.allclose(blend(cf, text, 1.0).score(), normalize_scores(text.score()))
    mid = blend(cf, text, 0.25).score()
    expected = 0.75 * normalize_scores(cf.score()) + 0.25 * normalize_scores(text.score())
    assert np.allclose(mid, expected)
    with pytest.raises(ValueError, match="weight"):
        blend(cf, text, 1.5)
    with pytest.raises(ValueError, match="unknown components"):
        HybridModel({"cf": cf}, {"text": 1.0})


def test_blend_weight_curve_has_one_row_per_weight(two_models):
    train, cf, text = two_models
    curve = blend_weight_curve(cf, text, train, [0.0, 0.5, 1.0], k=2)
    assert curve["weight"].tolist() == [0.0, 0.5, 1.0] and "ndcg@2" in curve


def test_learned_blend_prefers_the_informative_component():
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    taste = rng.normal(size=(n_users, 3)).astype(np.float32)
    item = rng.normal(size=(n_items, 3)).astype(np.float32)
    truth = taste @ item.T
    pairs = [(u, i) for u in range(n_users) for i in np.argsort(-truth[u])[:6]]
    frame = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    valid_df = frame.groupby("user_id").head(2)
    catalogue = Catalogue(np.arange(n_users), np.arange(n_items))
    train = Interactions.from_frame(frame.drop(valid_df.index), catalogue)
    valid = Interactions.from_frame(valid_df, catalogue)
    good = FactorModel(taste, item).fit(train)
    noise = FactorModel(rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))).fit(train)
    model = LearnedBlend({"good": good, "noise": noise}).fit(train).learn(valid, seed=0)
    assert model.weights["good"] > 5 * abs(model.weights["noise"])


def test_ridge_mapping_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    w = rng.normal(size=(5, 3))
    y = x @ w + 0.5
    mapping = RidgeMapping(alpha=1e-6).fit(x, y)
    assert np.allclose(mapping.predict(x), y, atol=1e-4)
    assert np.allclose(mapping.coef_, w, atol=1e-4)
    with pytest.raises(ValueError, match="rows"):
        RidgeMapping().fit(x, y[:5])
    with pytest.raises(RuntimeError, match="not fitted"):
        RidgeMapping().predict(x)


def test_text_to_factors_fills_only_cold_items():
    frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 2]})
    cold = pd.DataFrame({"user_id": [2], "item_id": [3]})
    train, _ = shared_interactions(frame, cold)
    text = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]], np.float32)
    base = FactorModel(np.ones((2, 2), np.float32), np.array([[2, 0], [0, 2], [0, 0]], np.float32))
    base.fit(train)
    model = TextToFactors(base, text, alpha=1e-6).fit(train)
    assert warm_item_columns(train).tolist() == [0, 1] and model.cold_items_.tolist() == [2]
    assert np.allclose(model.item_factors[:2], base.item_factors[:2])
    # The cold item's text is close to item 1's, so its predicted factors are close to item 1's.
    predicted = model.item_factors[2]
    assert np.linalg.norm(predicted - [2, 0]) < 0.2 < np.linalg.norm(predicted - [0, 2])
    with pytest.raises(ValueError, match="same train"):
        TextToFactors(Popularity().fit(train), text).fit(train)


def test_select_ridge_alpha_prefers_small_alpha_on_clean_linear_data():
    from recsys_lib.models.coldstart import select_ridge_alpha

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = x @ rng.normal(size=(4, 2))
    table = select_ridge_alpha(x, y, [1e-3, 10.0, 1000.0], seed=0)
    assert table["alpha"].tolist()[0] == 1e-3 and table["mean_cosine"].iloc[0] > 0.99
    assert table["mse"].is_monotonic_increasing


def test_cold_start_data_keeps_cold_items_out_of_train(movielens):
    from recsys_lib.models.coldstart import cold_start_data

    data = cold_start_data(movielens.ratings, cold_fraction=0.1, seed=0)
    assert data.train.matrix[:, data.cold_items].nnz == 0
    assert data.test.matrix[:, data.cold_items].nnz > 0
    assert len(data.cold_items) + len(data.warm_items) == data.train.shape[1]
    assert len(data.train_df) + len(data.test_df) == len(movielens.ratings)


def test_weight_grid_search_covers_the_grid_and_sorts(two_models):
    from recsys_lib.models.hybrid import weight_grid_search

    train, cf, text = two_models
    table = weight_grid_search({"cf": cf, "text": text}, {"text": [0.0, 0.5, 2.0]}, train, k=2)
    assert sorted(table["w_text"]) == [0.0, 0.5, 2.0] and (table["w_cf"] == 1.0).all()
    assert table["ndcg@2"].is_monotonic_decreasing
