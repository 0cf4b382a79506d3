import numpy as np
import pytest

from recsys_lib.retrieval.topk import top_k


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
    from recsys_lib.retrieval.topk import top_k_numpy

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(64, 30)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[0, :] = -np.inf  # a row with nothing eligible
    for k in (1, 3, 10, 30):
        fast_idx, fast_val = top_k(scores, k)
        ref_idx, ref_val = top_k_numpy(scores, k)
        assert np.array_equal(fast_idx, ref_idx)
        assert np.array_equal(fast_val, ref_val)


def test_exclude_entries_sets_minus_inf_at_stored_entries_numpy_and_torch():
    import scipy.sparse as sp

    from recsys_lib.retrieval.topk import exclude_entries

    mask = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1]]))
    scores = np.zeros((2, 3))
    assert exclude_entries(scores, mask) is scores
    assert np.isneginf(scores).tolist() == [[False, True, False], [True, False, True]]
    torch = pytest.importorskip("torch")
    t = torch.zeros(2, 3)
    exclude_entries(t, mask)
    assert torch.isinf(t).tolist() == [[False, True, False], [True, False, True]]
    with pytest.raises(ValueError, match="exclude is"):
        exclude_entries(np.zeros((3, 3)), mask)


def test_top_k_candidates_maps_positions_to_ids_with_the_one_tie_rule():
    from recsys_lib.retrieval.topk import top_k_candidates

    scores = np.array([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    cands = np.array([[10, 11, 12], [20, 21, 22], [32, 31, 30]])
    # Ties go to the lower candidate *position*, whatever the ids.
    assert top_k_candidates(scores, cands, 2).tolist() == [[11, 12], [20, 22], [32, 31]]
    masked = np.array([[0.5, -np.inf, np.nan]])
    assert top_k_candidates(masked, np.array([[1, 2, 3]]), 2).tolist() == [[1, -1]]
    for k in (0, 4):
        with pytest.raises(ValueError, match="between 1 and"):
            top_k_candidates(scores, cands, k)
    with pytest.raises(ValueError, match="one \\(n, C\\) shape"):
        top_k_candidates(scores, cands[:2], 1)
