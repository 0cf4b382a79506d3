import numpy as np
import pandas as pd
import pytest

from recsys_lib.data.interactions import shared_interactions
from recsys_lib.evaluation.tuning import (
    best_params,
    grid_search,
    read_search,
    search_key,
    write_search,
)
from recsys_lib.models.mf import (
    ALS,
    BPR,
    EASE,
    PureSVD,
    available_memory_bytes,
    numpy_als,
)


def block_interactions(n_per_block=6, seed=0):
    """Two taste groups: users 0-5 watch items 0-5, users 6-11 items 6-11; a few pairs held out."""
    pairs = [
        (u, i)
        for block in (0, 1)
        for u in range(block * n_per_block, (block + 1) * n_per_block)
        for i in range(block * n_per_block, (block + 1) * n_per_block)
    ]
    frame = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    held = frame.sample(frac=0.2, random_state=seed)
    train, test = shared_interactions(frame.drop(held.index), held)
    return train, test


@pytest.mark.parametrize(
    "model",
    [
        PureSVD(factors=2),
        ALS(factors=2, regularization=0.1, iterations=10, use_gpu=False),
        EASE(regularization=1.0),
        BPR(factors=4, iterations=300, learning_rate=0.05, use_gpu=False),
    ],
)
def test_models_recommend_within_the_taste_block(model):
    train, test = block_interactions()
    recs = model.fit(train).recommend(k=1)
    # Users with a held-out pair still have an unseen item of their own block to find.
    users = np.flatnonzero(np.diff(test.matrix.indptr))
    assert (recs[users, 0] // 6 == users // 6).mean() >= 0.9, type(model).__name__


def test_puresvd_vectors_are_orthonormal_and_scalings_agree():
    train, _ = block_interactions()
    sqrt = PureSVD(factors=3, scaling="sqrt").fit(train)
    full = PureSVD(factors=3, scaling="full").fit(train)
    assert np.allclose(sqrt.u_.T @ sqrt.u_, np.eye(3), atol=1e-8)
    assert np.all(np.diff(sqrt.singular_values_) <= 0)
    assert np.allclose(sqrt.score(), full.score(), atol=1e-5)
    with pytest.raises(ValueError, match="scaling"):
        PureSVD(scaling="half")


def test_puresvd_recovers_a_rank_one_matrix():
    frame = pd.DataFrame(
        [(u, i) for u in range(5) for i in range(4)], columns=["user_id", "item_id"]
    )
    (train,) = shared_interactions(frame)
    model = PureSVD(factors=1).fit(train)
    assert np.allclose(model.score(), 1.0, atol=1e-5)


def test_als_confidence_is_one_plus_alpha_r():
    train, _ = block_interactions()
    conf = ALS(alpha=3.0).confidence(train)
    assert set(conf.data.tolist()) == {4.0}


def test_numpy_als_matches_implicit_exact_solver():
    from implicit.cpu.als import AlternatingLeastSquares

    train, _ = block_interactions()
    conf = ALS(alpha=2.0).confidence(train)
    rng = np.random.default_rng(0)
    x0 = (rng.random((12, 3)) * 0.1).astype(np.float32)
    y0 = (rng.random((12, 3)) * 0.1).astype(np.float32)
    reference = AlternatingLeastSquares(factors=3, regularization=0.5, iterations=4, use_cg=False)
    reference.user_factors, reference.item_factors = x0.copy(), y0.copy()
    reference.fit(conf, show_progress=False)
    x, y = numpy_als(conf, x0, y0, regularization=0.5, iterations=4)
    assert np.allclose(x, reference.user_factors, atol=1e-4)
    assert np.allclose(y, reference.item_factors, atol=1e-4)


def test_ease_learns_an_obvious_item_rule():
    # Items 0 and 1 always go together; user 9 only saw item 0 -> item 1 must come first.
    pairs = [(u, i) for u in range(8) for i in (0, 1)] + [(u, 2 + u % 3) for u in range(8)]
    pairs += [(9, 0)]
    (train,) = shared_interactions(pd.DataFrame(pairs, columns=["user_id", "item_id"]))
    model = EASE(regularization=0.5).fit(train)
    assert np.allclose(np.diag(model.weights_), 0.0)
    user_row = train.catalogue.user_index([9])[0]
    assert model.recommend([user_row], k=1)[0, 0] == 1


def test_ease_memory_check_has_a_clear_message():
    train, _ = block_interactions()
    with pytest.raises(MemoryError, match="Keep the most popular items"):
        EASE(memory_fraction=1e-12).fit(train)
    assert available_memory_bytes() > 0


def test_grid_search_sorts_and_samples():
    train, valid = block_interactions()
    grid = {"factors": [1, 2], "regularization": [0.1, 1.0]}
    table = grid_search(
        lambda **p: ALS(iterations=5, use_gpu=False, **p), grid, train, valid, k=2, progress=False
    )
    assert len(table) == 4 and table["ndcg@2"].is_monotonic_decreasing
    params = best_params(table, grid)
    assert isinstance(params["factors"], int) and params["factors"] in (1, 2)
    sampled = grid_search(
        lambda **p: ALS(iterations=2, use_gpu=False, **p),
        grid,
        train,
        valid,
        k=2,
        n_samples=2,
        progress=False,
    )
    assert len(sampled) == 2
    with pytest.raises(KeyError, match="metric"):
        grid_search(
            lambda **p: ALS(iterations=1, use_gpu=False, **p),
            grid,
            train,
            valid,
            metric="auc",
            progress=False,
        )


@pytest.mark.gpu
def test_als_gpu_path_matches_cpu_quality():
    train, test = block_interactions()
    gpu = ALS(factors=2, regularization=0.1, iterations=10, use_gpu=True).fit(train)
    assert gpu.user_factors.shape == (12, 2)
    users = np.flatnonzero(np.diff(test.matrix.indptr))
    assert (gpu.recommend(users, k=1)[:, 0] // 6 == users // 6).mean() >= 0.9


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ALS(factors=0), "factors must be an integer >= 1, got 0"),
        (lambda: ALS(factors=2.5), "factors must be an integer >= 1, got 2.5"),
        (lambda: ALS(regularization=-1.0), "regularization must be a finite number >= 0, got -1.0"),
        (lambda: ALS(alpha=float("nan")), "alpha must be a finite number >= 0, got nan"),
        (lambda: ALS(iterations=0), "iterations must be an integer >= 1, got 0"),
        (lambda: BPR(factors=0), "BPR: factors must be an integer >= 1, got 0"),
        (lambda: BPR(learning_rate=0.0), "learning_rate must be a finite number > 0, got 0.0"),
        (lambda: BPR(regularization=-0.01), "regularization must be a finite number >= 0"),
        (lambda: EASE(regularization=-5.0), "EASE: regularization must be a finite number >= 0"),
        (lambda: EASE(memory_fraction=0.0), "memory_fraction must be a finite number in (0, 1]"),
        (lambda: PureSVD(factors=0), "PureSVD: factors must be an integer >= 1, got 0"),
    ],
)
def test_invalid_hyper_parameters_are_refused_with_the_value(make, message):
    import re

    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_explain_als_matches_implicit_explain():
    from implicit.cpu.als import AlternatingLeastSquares

    from recsys_lib.models.mf import explain_als

    train, _ = block_interactions()
    model = ALS(factors=3, regularization=0.5, alpha=2.0, iterations=5, use_gpu=False).fit(train)
    history, contributions, scores = explain_als(model, 2, [0, 7, 11])
    assert history.tolist() == train.matrix[2].indices.tolist()
    assert np.allclose(contributions.sum(1), scores)
    # The decomposition is exact: the recomputed user vector gives the same scores.
    reference = AlternatingLeastSquares(factors=3, regularization=0.5, alpha=1.0)
    reference.user_factors = model.user_factors.copy()
    reference.item_factors = model.item_factors.copy()
    confidence = model.confidence(train)
    for col, score, row in zip([0, 7, 11], scores, contributions, strict=True):
        total, top, _ = reference.explain(2, confidence, col, N=len(history))
        assert score == pytest.approx(total, rel=1e-4, abs=1e-6)
        assert dict(top) == pytest.approx(
            dict(zip(history.tolist(), row, strict=True)), rel=1e-4, abs=1e-6
        )
    # ... and close to the model's own scores (its last update was the items').
    assert np.allclose(scores, model.score([2])[0, [0, 7, 11]], atol=0.05)
    with pytest.raises(IndexError, match="out of range"):
        explain_als(model, 99, [0])


def test_als_fold_in_is_the_trained_users_closed_form():
    """A user folded in from their history gets the vector explain_als recomputes for them,
    and implicit's own recalculate_user agrees."""
    from implicit.cpu.als import AlternatingLeastSquares

    from recsys_lib.models.mf import als_fold_in, als_history_terms, explain_als

    train, _ = block_interactions()
    model = ALS(factors=3, regularization=0.5, alpha=2.0, iterations=5, use_gpu=False).fit(train)
    history = train.matrix[2].indices
    vector = als_fold_in(model.item_factors, history, 0.5, alpha=2.0)
    _, _, scores = explain_als(model, 2, np.arange(train.shape[1]))
    assert np.allclose(model.item_factors @ vector, scores, atol=1e-5)
    reference = AlternatingLeastSquares(factors=3, regularization=0.5, alpha=1.0, use_cg=False)
    reference.item_factors = model.item_factors.copy()
    reference.user_factors = model.user_factors.copy()
    recalculated = reference.recalculate_user(2, model.confidence(train)[2])
    assert np.allclose(vector, recalculated, atol=1e-4)
    terms = als_history_terms(model.item_factors, history, np.full(len(history), 3.0), 0.5)
    assert terms.shape == (3, len(history)) and np.allclose(terms.sum(1), vector)
    with pytest.raises(ValueError, match="history is empty"):
        als_fold_in(model.item_factors, [], 0.5)
    with pytest.raises(ValueError, match="one confidence per history item"):
        als_history_terms(model.item_factors, history, [1.0], 0.5)


def test_explicit_als_recovers_a_low_rank_rating_matrix():
    from recsys_lib.data.interactions import Interactions
    from recsys_lib.models.mf import ExplicitALS

    rng = np.random.default_rng(0)
    truth = 1 + 4 * rng.random((10, 2)) @ rng.random((2, 8))  # ratings of rank 3 at most
    mask = rng.random(truth.shape) < 0.8
    users, items = np.nonzero(mask)
    frame = pd.DataFrame({"user_id": users, "item_id": items, "rating": truth[users, items]})
    train = Interactions.from_frame(frame, value_col="rating")
    model = ExplicitALS(factors=3, regularization=1e-6, iterations=2000, seed=0).fit(train)
    fitted = model.user_factors @ model.item_factors.T
    rmse = np.sqrt(((fitted[users, items] - truth[users, items]) ** 2).mean())
    assert rmse < 0.01 * truth.std()


def test_explicit_als_half_step_is_the_weighted_ridge_solution():
    import scipy.sparse as sp

    from recsys_lib.models.mf import ExplicitALS

    rng = np.random.default_rng(1)
    r = sp.random(5, 7, density=0.5, random_state=1, format="csr") * 5
    y = rng.normal(size=(7, 3))
    x = ExplicitALS._half_step(r, y, 0.3)
    for u in range(5):
        cols = r[u].indices
        a = y[cols].T @ y[cols] + 0.3 * max(len(cols), 1) * np.eye(3)
        assert np.allclose(x[u], np.linalg.solve(a, y[cols].T @ r[u].data))


def test_explicit_als_warns_on_binary_input(caplog):
    from recsys_lib.models.mf import ExplicitALS

    train, _ = block_interactions()
    with caplog.at_level("WARNING"):
        ExplicitALS(factors=2, iterations=1).fit(train)
    assert "pass ratings" in caplog.text


def test_stored_search_is_read_back_only_for_the_same_splits(tmp_path):
    train, valid = block_interactions(seed=0)
    other_train, other_valid = block_interactions(seed=1)  # other held-out pairs
    table = pd.DataFrame({"factors": [2, 1], "ndcg@2": [0.5, 0.25], "fit_s": [0.1, 0.1]})
    key = search_key(train, valid, dataset="blocks", seed=0)
    assert key == search_key(train, valid, dataset="blocks", seed=0)
    assert key != search_key(other_train, other_valid, dataset="blocks", seed=0)
    assert key != search_key(train, valid, dataset="blocks", seed=1)
    path = write_search(tmp_path / "search.json", table, key, script="test")
    pd.testing.assert_frame_equal(read_search(path, key), table)
    assert read_search(path, search_key(other_train, other_valid, dataset="blocks", seed=0)) is None
    assert read_search(tmp_path / "absent.json", key) is None
