import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lib.retrieval.similarity import (
    article_cosine,
    blocked_top_k,
    cosine_similarity,
    normalize_rows,
    similar_items,
    user_profiles,
)


def test_cosine_is_dot_over_norms_and_not_the_article_formula():
    u, v = np.array([3.0, 4.0]), np.array([4.0, 3.0])
    expected = (3 * 4 + 4 * 3) / (5 * 5)  # 0.96
    assert cosine_similarity(u[None], v[None])[0, 0] == pytest.approx(expected, rel=1e-6)
    # The article divides by sums of squares: 24 / 25 / 25, not a cosine at all.
    assert article_cosine(u, v) == pytest.approx(24 / 25 / 25)
    assert article_cosine(u, v) != pytest.approx(expected)
    # A cosine ignores scale; the article's formula does not.
    assert cosine_similarity(10 * u[None], v[None])[0, 0] == pytest.approx(expected, rel=1e-6)
    assert article_cosine(10 * u, v) == pytest.approx(article_cosine(u, v) / 10)


def test_cosine_matrix_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(4, 7))
    expected = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    assert np.allclose(cosine_similarity(a, b), expected, atol=1e-6)
    assert np.allclose(np.diag(cosine_similarity(a)), 1.0, atol=1e-6)


def test_normalize_rows_keeps_zero_rows():
    out = normalize_rows(np.array([[0.0, 0.0], [0.0, 2.0]]))
    assert out.tolist() == [[0.0, 0.0], [0.0, 1.0]]


def brute(scores, k):
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # stable: lower index on ties
    return idx, np.take_along_axis(scores, idx, 1)


@pytest.mark.parametrize("block_size", [1, 7, 1000])
def test_blocked_top_k_matches_brute_force_with_ties_and_masks(block_size):
    rng = np.random.default_rng(1)
    queries = rng.integers(-2, 3, size=(23, 4)).astype(np.float32)  # small ints: many ties
    items = rng.integers(-2, 3, size=(31, 4)).astype(np.float32)
    mask = sp.random(23, 31, density=0.2, random_state=2, format="csr")
    scores = queries @ items.T
    scores[mask.nonzero()] = -np.inf
    idx, val = blocked_top_k(queries, items, 5, exclude=mask, block_size=block_size, device="cpu")
    ref_idx, ref_val = brute(scores, 5)
    assert np.array_equal(idx, ref_idx)
    assert np.allclose(val, ref_val)


def test_blocked_top_k_errors_and_padding():
    with pytest.raises(ValueError, match="same"):
        blocked_top_k(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="k must be"):
        blocked_top_k(np.zeros((2, 3)), np.zeros((4, 3)), k=0)
    exclude = sp.csr_matrix(np.ones((1, 2)))
    idx, _ = blocked_top_k(np.ones((1, 2)), np.eye(2), k=2, exclude=exclude, device="cpu")
    assert idx.tolist() == [[-1, -1]]


def test_similar_items_excludes_itself():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert similar_items(vectors, [0, 2], k=1).tolist() == [[1], [3]]


def test_user_profiles_average_unit_item_vectors():
    from recsys_lib.data.interactions import Catalogue, Interactions

    matrix = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 0]], dtype=np.float32))
    train = Interactions(matrix, Catalogue(np.array([1, 2]), np.array([7, 8, 9])))
    vectors = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    profiles = user_profiles(train, vectors)
    assert np.allclose(profiles, [[0.5, 0.5], [0.0, 0.0]])


@pytest.mark.gpu
def test_blocked_top_k_on_cuda_matches_cpu():
    rng = np.random.default_rng(3)
    q, items = rng.normal(size=(100, 16)), rng.normal(size=(500, 16))
    cpu = blocked_top_k(q, items, 10, device="cpu")[0]
    gpu = blocked_top_k(q, items, 10, device="cuda")[0]
    assert (cpu == gpu).mean() > 0.99
