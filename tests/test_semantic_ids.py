"""Semantic IDs: residual k-means codes, collisions, round trip, quality measures."""

import numpy as np
import pytest

from recsys_lib.models import semantic_ids as si


def blobs(seed=0):
    """Four well-separated clusters of 25 points in 3-D."""
    rng = np.random.default_rng(seed)
    centres = np.array([[10.0, 0, 0], [0, 10, 0], [0, 0, 10], [-10, -10, -10]])
    labels = np.repeat(np.arange(4), 25)
    return centres[labels] + rng.normal(scale=0.5, size=(100, 3)), labels


def test_first_level_recovers_separated_clusters():
    x, labels = blobs()
    assignments, books = si.residual_kmeans(x, levels=2, codes=4, seed=0)
    assert assignments.shape == (100, 2) and [b.shape for b in books] == [(4, 3), (4, 3)]
    # each true cluster maps to exactly one code and vice versa
    pairs = set(zip(labels.tolist(), assignments[:, 0].tolist(), strict=True))
    assert len(pairs) == 4 and len({c for _, c in pairs}) == 4


def test_reconstruction_error_falls_with_levels():
    x = np.random.default_rng(1).normal(size=(300, 8))
    assignments, books = si.residual_kmeans(x, levels=3, codes=8, seed=0)
    err = si.reconstruction_error(x, assignments, books)
    assert err.shape == (3,) and 0 < err[2] < err[1] < err[0] < 1
    # by hand: level-1 error = mean squared distance to the chosen centroid / centred variance
    level1 = ((x - books[0][assignments[:, 0]]) ** 2).sum(1).mean()
    assert err[0] == pytest.approx(level1 / ((x - x.mean(0)) ** 2).sum(1).mean())


def test_seeded_codes_repeat():
    x = np.random.default_rng(2).normal(size=(120, 5))
    a1, _ = si.residual_kmeans(x, 2, 6, seed=3)
    a2, _ = si.residual_kmeans(x, 2, 6, seed=3)
    np.testing.assert_array_equal(a1, a2)


def test_collision_level_by_hand():
    codes = np.array([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    full = si.add_collision_level(codes)
    assert full[:, -1].tolist() == [0, 0, 1, 2, 0]
    assert len(np.unique(full, axis=0)) == len(full)


def test_semantic_ids_round_trip_and_uniqueness():
    x = np.random.default_rng(4).normal(size=(200, 6))
    ids = si.SemanticIDs.fit(x, levels=2, codes=4, seed=0)  # 16 tuples for 200 items: collisions
    assert ids.codes.shape == (200, 3)
    assert len(np.unique(ids.codes, axis=0)) == 200
    assert ids.collisions == int((ids.codes[:, -1] > 0).sum()) > 0
    assert all(ids.item_of(ids.codes[i]) == i for i in range(200))
    with pytest.raises(KeyError, match="names no item"):
        ids.item_of((99, 99, 99))
    recon = ids.reconstruct()
    err = si.reconstruction_error(x, ids.codes, list(ids.codebooks))
    assert ((x - recon) ** 2).sum(1).mean() / ((x - x.mean(0)) ** 2).sum(1).mean() == (
        pytest.approx(err[-1])
    )


def test_code_purity_by_hand():
    table = si.code_purity(np.array([0, 0, 0, 1, 1]), np.array(["a", "a", "b", "c", "d"]))
    assert table.loc[0, "purity"] == pytest.approx(2 / 3) and table.loc[0, "top_label"] == "a"
    assert table.loc[1, "purity"] == pytest.approx(1 / 2) and table["size"].tolist() == [3, 2]
    assert si.weighted_purity(table) == pytest.approx((2 + 1) / 5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="codes"):
        si.residual_kmeans(np.zeros((5, 2)), codes=10)
