"""The shared numeric building blocks (recsys_lib.linalg): each tested here, once."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_lib.linalg import (
    fit_logistic,
    group_ranks,
    normalize_rows,
    positions,
    row_cosine,
    sigmoid,
)


def test_normalize_rows_unit_rows_zero_rows_stay_zero_and_dtype():
    x = np.array([[3, 4], [0, 0]])
    out = normalize_rows(x)
    assert out.dtype == np.float32
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert normalize_rows(x, dtype=np.float64).dtype == np.float64
    assert normalize_rows(x.astype(np.float64), dtype=None).dtype == np.float64
    assert normalize_rows(x, dtype=None).dtype == np.float64  # integers become floats


def test_normalize_rows_works_along_the_last_axis_of_any_rank():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    norms = np.linalg.norm(normalize_rows(x, dtype=None), axis=-1)
    assert np.allclose(norms, 1.0)


def test_normalize_rows_takes_a_torch_tensor():
    torch = pytest.importorskip("torch")
    out = normalize_rows(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert isinstance(out, torch.Tensor)
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_row_cosine_by_hand_and_zero_rows():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    assert np.allclose(row_cosine(a, b), [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="one shape"):
        row_cosine(a, b[:2])


def test_sigmoid_values_and_saturation_without_warnings():
    assert sigmoid(np.array([0.0]))[0] == 0.5
    with np.errstate(over="raise"):
        out = sigmoid(np.array([-1000.0, 1000.0]))
    assert out.tolist() == [0.0, 1.0]


def test_fit_logistic_matches_a_direct_optimiser():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2))
    y = (rng.random(400) < sigmoid(1.5 * x[:, 0] - 0.5 * x[:, 1] + 0.3)).astype(float)
    w = fit_logistic(x, y, l2=0.01)
    # The gradient of the penalised mean log-loss vanishes at the solution.
    z = np.hstack([x, np.ones((400, 1))])
    grad = z.T @ (sigmoid(z @ w) - y) / len(y) + 0.01 * np.r_[w[:-1], 0.0]
    assert np.abs(grad).max() < 1e-8


def test_fit_logistic_rejects_bad_input():
    with pytest.raises(ValueError, match="0 and 1"):
        fit_logistic(np.ones((3, 1)), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        fit_logistic(np.ones(3), np.array([0.0, 1.0, 1.0]))


def test_positions_sorted_unsorted_absent_and_precomputed_order():
    table = np.array([50, 10, 30])
    assert positions(table, [30, 50, 11, 10]).tolist() == [2, 0, -1, 1]
    order = np.argsort(table)
    assert positions(table, np.array([[10], [99]]), order).tolist() == [[1], [-1]]
    assert positions(np.array([1, 2, 3]), [3, 0, 4]).tolist() == [2, -1, -1]
    assert positions(np.array([], dtype=np.int64), [1]).tolist() == [-1]


def test_positions_of_another_kind_or_mixed_ids_are_absent():
    assert positions(np.array([1, 2]), np.array(["1"])).tolist() == [-1]
    assert positions(np.array(["a", "b"]), np.array([0])).tolist() == [-1]
    mixed = np.array([2, "b"], dtype=object)
    assert positions(np.array(["a", "b"], dtype=object), mixed).tolist() == [-1, 1]
    assert positions(np.array([1, 2]), np.array([2.0, 1.5])).tolist() == [1, -1]


def test_group_ranks_counts_within_runs_of_equal_keys():
    rank, size = group_ranks(np.array([7, 7, 3, 9, 9, 9]))
    assert rank.tolist() == [0, 1, 0, 0, 1, 2]
    assert size.tolist() == [2, 2, 1, 3, 3, 3]
    empty_rank, empty_size = group_ranks(np.array([]))
    assert empty_rank.size == 0 and empty_size.size == 0


def test_fit_logistic_recovers_separating_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(2 * x[:, 0] - 1)))).astype(float)
    w = fit_logistic(x, y, l2=0.0)
    assert (
        w[0] == pytest.approx(2.0, abs=0.3)
        and abs(w[1]) < 0.3
        and w[2] == pytest.approx(-1, abs=0.3)
    )
