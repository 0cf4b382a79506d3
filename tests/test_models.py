import numpy as np
import pandas as pd
import pytest

from recsys_lib.data.interactions import Catalogue, Interactions, shared_interactions
from recsys_lib.evaluation.protocol import evaluate, evaluate_models, evaluation_users
from recsys_lib.models.base import FactorModel, NotFittedError, Popularity, RandomModel


@pytest.fixture
def toy():
    train = pd.DataFrame({"user_id": [1, 1, 2, 3, 3], "item_id": [10, 20, 10, 10, 30]})
    test = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [30, 20, 40]})
    return shared_interactions(train, test)


def test_popularity_ranks_by_train_count_and_excludes_seen(toy):
    train, _ = toy
    model = Popularity().fit(train)
    # Items: 10 (3 users), 20 (1), 30 (1), 40 (0). User 1 saw 10 and 20.
    assert model.recommend([0], k=2).tolist() == [[2, 3]]
    assert model.recommend([1], k=2, exclude_seen=False).tolist() == [[0, 1]]
    frame = model.recommend_frame([2], k=2)
    assert frame["item_id"].tolist() == [20, 30] and frame["rank"].tolist() == [1, 2]


def test_recommend_pads_when_user_has_seen_almost_everything():
    train = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3]})
    (inter,) = shared_interactions(train)
    assert Popularity().fit(inter).recommend([0], k=2).tolist() == [[-1, -1]]


def test_blocked_recommend_equals_unblocked(toy):
    train, _ = toy
    model = RandomModel(seed=3).fit(train)
    assert np.array_equal(model.recommend(k=3, block_size=1), model.recommend(k=3))
    assert np.array_equal(model.score([1]), model.score([0, 1])[1:])


def test_evaluate_on_hand_checked_case(toy):
    train, test = toy
    report = evaluate(Popularity().fit(train), test, k=2)
    # User 1 gets [30, 40]: hit at rank 1 -> ndcg 1. User 2 gets [20, 30]: 1 hit of 2 -> ndcg 1/idcg
    idcg = 1 + 1 / np.log2(3)
    assert report["ndcg@2"] == pytest.approx((1 + 1 / idcg) / 2)
    assert report["precision@2"] == pytest.approx((0.5 + 0.5) / 2)
    assert evaluation_users(test).tolist() == [0, 1]
    table = evaluate_models({"pop": Popularity(), "rand": RandomModel()}, train, test, k=2)
    assert list(table.index) == ["pop", "rand"] and (table["fit_s"] >= 0).all()


def test_contract_errors(toy):
    train, test = toy
    with pytest.raises(NotFittedError):
        Popularity().recommend([0])
    with pytest.raises(TypeError, match="Interactions"):
        Popularity().fit(train.matrix)
    model = Popularity().fit(train)
    with pytest.raises(IndexError, match="row positions"):
        model.recommend([99])
    other = Interactions.from_frame(pd.DataFrame({"user_id": [7], "item_id": [8]}))
    with pytest.raises(ValueError, match="different catalogues"):
        evaluate(model, other)


def test_interactions_orientation_and_mapping(tiny_ratings):
    inter = Interactions.from_frame(tiny_ratings, value_col="rating")
    assert inter.shape == (4, 5)  # users x items
    row = inter.catalogue.user_index([2])[0]
    col = inter.catalogue.item_index([20])[0]
    expected = tiny_ratings.query("user_id == 2 and item_id == 20")["rating"].iloc[0]
    assert inter.matrix[row, col] == expected
    assert inter.binary().matrix.data.tolist() == [1.0] * 12
    back = inter.to_frame("rating").sort_values(["user_id", "item_id"]).reset_index(drop=True)
    want = tiny_ratings.sort_values(["user_id", "item_id"]).reset_index(drop=True)
    assert back["item_id"].tolist() == want["item_id"].tolist()
    assert inter.density() == pytest.approx(12 / 20)
    with pytest.raises(KeyError, match="not in the catalogue"):
        inter.catalogue.item_index([999])
    assert inter.catalogue.item_index([999], strict=False).tolist() == [-1]


def test_duplicate_pairs_keep_last_value():
    frame = pd.DataFrame({"user_id": [1, 1], "item_id": [5, 5], "rating": [2.0, 4.0]})
    inter = Interactions.from_frame(frame, value_col="rating")
    assert inter.nnz == 1 and inter.matrix[0, 0] == 4.0


def test_catalogue_rejects_duplicates_and_bad_matrix():
    with pytest.raises(ValueError, match="duplicates"):
        Catalogue(np.array([1, 1]), np.array([2]))
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="users x items CSR"):
        Interactions(sp.csr_matrix((3, 2)), Catalogue(np.array([1, 2]), np.array([5, 6, 7])))


def test_candidates_restrict_ranking_and_relevance(toy):
    train, test = toy
    model = Popularity().fit(train)
    # Only item 40 (column 3) is a candidate: user 1 has nothing relevant there, user 2 does.
    assert model.recommend([0, 1], k=2, candidates=[3]).tolist() == [[3, -1], [3, -1]]
    report = evaluate(model, test, k=1, candidates=[3])
    assert report["precision@1"] == pytest.approx(1.0) and report["recall@1"] == pytest.approx(1.0)


def test_random_tie_break_only_reorders_exact_ties(toy):
    from recsys_lib.models.base import RandomTieBreak

    train, _ = toy
    base = FactorModel(np.ones((3, 1)), np.array([[2.0], [0.0], [0.0], [0.0]])).fit(train)
    orders = {
        tuple(RandomTieBreak(base, seed=s).fit(train).recommend([2], k=3, exclude_seen=False)[0])
        for s in range(20)
    }
    assert all(order[0] == 0 for order in orders)  # the real winner stays first
    assert len(orders) > 1  # the tied tail is shuffled
    assert base.recommend([2], k=3, exclude_seen=False)[0].tolist() == [0, 1, 2]


def test_resolve_device_and_seeding():
    from recsys_lib.runtime import resolve_device, seed_everything

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    a = seed_everything(3).random(3)
    b = seed_everything(3).random(3)
    assert np.array_equal(a, b)


def test_evaluate_per_user_means_equal_evaluate(toy):
    from recsys_lib.evaluation.protocol import evaluate_per_user

    train, test = toy
    model = Popularity().fit(train)
    table = evaluate_per_user(model, test, k=2)
    assert table.index.tolist() == [1, 2]  # raw user ids with test items
    idcg = 1 + 1 / np.log2(3)
    assert table["ndcg@2"].tolist() == pytest.approx([1.0, 1 / idcg])
    report = evaluate(model, test, k=2)
    for name in table:
        assert table[name].mean() == pytest.approx(report[name])


def test_interactions_refuse_nan_values():
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [5, 6], "rating": [4.0, np.nan]})
    with pytest.raises(ValueError, match="NaN.*user id 2"):
        Interactions.from_frame(frame, value_col="rating")
