import numpy as np
import pytest

from recsys_lib.retrieval import top_k


def brute_force(scores, k):
    """Reference: stable sort on (-score, column)."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)
    return order[:, :k]


def test_ties_go_to_the_lower_index():
    idx, val = top_k(np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]]), 2)
    assert idx.tolist() == [[1, 2], [0, 1]]
    assert val.tolist() == [[3.0, 3.0], [5.0, 5.0]]


def test_excluded_items_pad_with_minus_one():
    idx, _ = top_k(np.array([[-np.inf, 1.0, np.nan]]), 3)
    assert idx.tolist() == [[1, -1, -1]]


def test_matches_brute_force_on_random_data_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 7, size=(50, 40)).astype(float)  # many ties
    for k in (1, 5, 40, 60):
        idx, _ = top_k(scores, k)
        assert np.array_equal(idx, brute_force(scores, min(k, 40)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        top_k(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="2-D"):
        top_k(np.zeros(3), 1)


def test_torch_and_numpy_paths_agree_on_ties_and_exclusions():
    from recsys_lib.retrieval import top_k_numpy

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(64, 30)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[0, :] = -np.inf  # a row with nothing eligible
    for k in (1, 3, 10, 30):
        fast_idx, fast_val = top_k(scores, k)
        ref_idx, ref_val = top_k_numpy(scores, k)
        assert np.array_equal(fast_idx, ref_idx)
        assert np.array_equal(fast_val, ref_val)
