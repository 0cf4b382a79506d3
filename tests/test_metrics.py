import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lib.evaluation import metrics as m

# Three users; user 1 has no relevant items (ignored); user 2's list is short (-1 padding).
RECOMMENDED = np.array([[0, 1, 2], [3, 4, -1], [5, 6, 7]])


def relevant(rows: dict[int, list[int]], n_users=3, n_items=12) -> sp.csr_matrix:
    r = [u for u, items in rows.items() for _ in items]
    c = [i for items in rows.values() for i in items]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_users, n_items))


REL = relevant({0: [1, 2, 9, 10], 2: [5]})
DCG0 = 1 / np.log2(3) + 1 / np.log2(4)  # hits at ranks 2 and 3
IDCG0 = 1 + 1 / np.log2(3) + 1 / np.log2(4)  # min(4 relevant, k=3) ideal hits


def test_hit_matrix_marks_relevant_positions_and_ignores_padding():
    hits = m.hit_matrix(RECOMMENDED, REL)
    assert hits.tolist() == [[False, True, True], [False, False, False], [True, False, False]]


@pytest.mark.parametrize(
    "fn, expected",
    [
        (m.precision_at_k, (2 / 3 + 1 / 3) / 2),
        (m.recall_at_k, (2 / 4 + 1) / 2),
        (m.ndcg_at_k, (DCG0 / IDCG0 + 1) / 2),
        (m.map_at_k, ((1 / 2 + 2 / 3) / 3 + 1) / 2),
        (m.map_recommenders, ((1 / 2 + 2 / 3) / 4 + 1) / 2),
        (m.hit_rate_at_k, 1.0),
        (m.mrr_at_k, (1 / 2 + 1) / 2),
    ],
)
def test_ranking_metrics_match_hand_computed_values(fn, expected):
    assert fn(RECOMMENDED, REL, k=3) == pytest.approx(expected, rel=1e-12)


def test_precision_divides_by_k_when_list_is_short():
    rel = relevant({1: [4]})
    assert m.precision_at_k(RECOMMENDED, rel, k=3) == pytest.approx(1 / 3)
    assert m.recall_at_k(RECOMMENDED, rel, k=3) == pytest.approx(1.0)


def test_metrics_at_smaller_k_truncate_the_list():
    assert m.precision_at_k(RECOMMENDED, REL, k=1) == pytest.approx((0 + 1) / 2)
    assert m.ndcg_at_k(RECOMMENDED, REL, k=1) == pytest.approx((0 + 1) / 2)


def test_no_relevant_users_gives_nan():
    empty = relevant({})
    assert np.isnan(m.ndcg_at_k(RECOMMENDED, empty, k=3))


def test_perfect_ranking_scores_one():
    rel = relevant({0: [0, 1, 2], 1: [3, 4], 2: [5, 6, 7]})
    for fn in (m.ndcg_at_k, m.map_at_k, m.map_recommenders, m.hit_rate_at_k, m.mrr_at_k):
        assert fn(RECOMMENDED, rel, k=3) == pytest.approx(1.0), fn.__name__


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same users"):
        m.ndcg_at_k(RECOMMENDED, relevant({}, n_users=2), k=3)
    with pytest.raises(ValueError, match=r"columns must be in \[0, 12\)"):
        m.ndcg_at_k(np.array([[50]]), relevant({}, n_users=1), k=1)


def test_ranking_report_names_metrics_at_k():
    report = m.ranking_report(RECOMMENDED, REL, k=3)
    assert set(report) == {
        "map",
        "map@3",
        "ndcg@3",
        "precision@3",
        "recall@3",
        "hit_rate@3",
        "mrr@3",
    }
    assert report["ndcg@3"] == pytest.approx(m.ndcg_at_k(RECOMMENDED, REL, 3))
    table = m.report_table({"a": report, "b": report})
    assert list(table.index) == ["a", "b"] and "ndcg@3" in table


def test_coverage_counts_distinct_items():
    assert m.catalogue_coverage(RECOMMENDED, n_items=16) == pytest.approx(8 / 16)


def test_novelty_is_mean_self_information():
    pop = np.array([0.5, 0.25, 0.125, 1.0])
    rec = np.array([[0, 1], [2, -1]])
    assert m.novelty(rec, pop) == pytest.approx((1 + 2 + 3) / 3)
    with pytest.raises(ValueError, match="shares"):
        m.novelty(rec, np.array([3, 1, 1, 1]))


def test_intra_list_diversity_by_hand():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # List [0, 1]: orthogonal -> distance 1. List [0, 2]: cos 45deg -> 1 - 0.7071.
    rec = np.array([[0, 1], [0, 2], [1, -1]])
    expected = (1.0 + (1 - 1 / np.sqrt(2))) / 2  # the single-item list is skipped
    assert m.intra_list_diversity(rec, vectors) == pytest.approx(expected)
    # three items, and a padded slot in the middle of a list
    rec3 = np.array([[0, 1, 2], [2, -1, 0]])
    c = 1 / np.sqrt(2)
    expected3 = ((1.0 + 2 * (1 - c)) / 3 + (1 - c)) / 2
    assert m.intra_list_diversity(rec3, vectors) == pytest.approx(expected3)


def test_coverage_rejects_empty_catalogue():
    with pytest.raises(ValueError, match="n_items"):
        m.catalogue_coverage(RECOMMENDED, n_items=0)


def test_per_user_metrics_by_hand():
    table = m.per_user_metrics(RECOMMENDED, REL, 3)
    assert table.index.tolist() == [0, 2]  # user 1 has nothing relevant
    assert table["ndcg@3"].tolist() == pytest.approx([DCG0 / IDCG0, 1.0])
    assert table["precision@3"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert table["recall@3"].tolist() == pytest.approx([2 / 4, 1.0])
    report = m.ranking_report(RECOMMENDED, REL, 3)
    for name in table:
        assert table[name].mean() == pytest.approx(report[name])


def test_paired_bootstrap_by_hand():
    a = np.array([0.5, 0.2, 0.9, 0.4])
    b = a - 0.1  # a constant per-user gap: every resample differs by exactly 0.1
    out = m.paired_bootstrap(a, b, n_boot=200, seed=1)
    assert out["difference"] == pytest.approx(0.1)
    assert out["ci_low"] == pytest.approx(0.1) and out["ci_high"] == pytest.approx(0.1)
    assert out["mean_a"] == pytest.approx(0.5) and out["mean_b"] == pytest.approx(0.4)
    assert out["relative"] == pytest.approx(0.5 / 0.4 - 1)
    assert out["p_value"] == 0.0 and out["n_users"] == 4
    same = m.paired_bootstrap(a, a, n_boot=50)
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0.0
    assert same["p_value"] == 1.0


def test_paired_bootstrap_matches_a_hand_resampling():
    rng = np.random.default_rng(0)
    a, b = rng.random(30), rng.random(30)
    out = m.paired_bootstrap(a, b, n_boot=500, seed=3, alpha=0.1)
    rows = np.random.default_rng(3).integers(0, 30, (500, 30))
    diffs = a[rows].mean(1) - b[rows].mean(1)
    assert out["ci_low"] == pytest.approx(np.quantile(diffs, 0.05))
    assert out["ci_high"] == pytest.approx(np.quantile(diffs, 0.95))
    ratios = a[rows].mean(1) / b[rows].mean(1) - 1
    assert out["relative_high"] == pytest.approx(np.quantile(ratios, 0.95))


def test_paired_bootstrap_pairing_narrows_the_interval():
    rng = np.random.default_rng(0)
    difficulty = rng.random(400)  # shared by both models: pairing cancels it
    a, b = difficulty + 0.02, difficulty + rng.normal(0, 0.01, 400)
    out = m.paired_bootstrap(a, b, seed=0)
    assert out["ci_low"] > 0  # a real gap of 0.02 is found despite spread 0.29 across users
    assert out["ci_high"] - out["ci_low"] < 0.01


def test_paired_bootstrap_errors():
    with pytest.raises(ValueError, match="same users"):
        m.paired_bootstrap(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        m.paired_bootstrap(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="at least 2"):
        m.paired_bootstrap(np.ones(1), np.ones(1))


def test_k_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        m.ndcg_at_k(RECOMMENDED, REL, 0)


def test_interval_verdict_reads_the_side_of_zero():
    assert m.interval_verdict({"ci_low": 0.01, "ci_high": 0.02}) == "a real gain"
    assert m.interval_verdict({"ci_low": -0.02, "ci_high": -0.001}) == "a real loss"
    assert m.interval_verdict({"ci_low": -0.01, "ci_high": 0.02}) == "not distinguishable from zero"


def test_roc_auc_and_log_loss_by_hand():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.4, 0.1])
    # pairs (pos, neg): (0.9,0.9)=0.5, (0.9,0.1)=1, (0.4,0.9)=0, (0.4,0.1)=1 -> 2.5 / 4
    assert m.roc_auc(labels, scores) == pytest.approx(0.625)
    probs = np.array([0.8, 0.3, 0.6, 0.1])
    expected = -np.log([0.8, 0.7, 0.6, 0.9]).mean()
    assert m.log_loss(labels, probs) == pytest.approx(expected)
    with pytest.raises(ValueError, match="both classes"):
        m.roc_auc(np.ones(3), np.arange(3))


def test_auc_difference_by_hand_and_its_interval():
    labels = np.array([1, 0, 1, 0])
    a = np.array([0.9, 0.9, 0.4, 0.1])  # AUC 0.625 (see above)
    b = np.array([0.9, 0.1, 0.4, 0.5])  # pairs: 1, 1, 1, 0 -> 0.75
    out = m.auc_difference(labels, a, b, groups=np.arange(4), n_boot=200, seed=1)
    assert out["auc_a"] == pytest.approx(0.625) and out["auc_b"] == pytest.approx(0.75)
    assert out["difference"] == pytest.approx(-0.125)
    assert out["ci_low"] <= out["ci_high"] and out["n_groups"] == 4
    same = m.auc_difference(labels, a, a, groups=np.arange(4), n_boot=50)  # against itself
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0.0
    # a clearly better model on many pairs: the interval excludes zero
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    good, noisy = y + rng.normal(0, 0.5, 2000), y + rng.normal(0, 2.0, 2000)
    far = m.auc_difference(y, good, noisy, groups=np.arange(2000) // 4, n_boot=200)
    assert far["ci_low"] > 0 and far["ci_low"] < far["difference"] < far["ci_high"]
    with pytest.raises(ValueError, match="same pairs"):
        m.auc_difference(labels, a, b[:3], groups=np.arange(4))
    with pytest.raises(ValueError, match="groups"):
        m.auc_difference(labels, a, b, groups=np.arange(3))
    with pytest.raises(ValueError, match="distinct group"):
        m.auc_difference(labels, a, b, groups=np.zeros(4))


def test_auc_difference_resamples_users_by_hand():
    # user 7: both models rank its positive first; user 3: a right, b wrong.
    labels = np.array([1, 0, 1, 0])
    groups = np.array([7, 7, 3, 3])
    a = np.array([0.9, 0.1, 0.8, 0.2])
    b = np.array([0.9, 0.1, 0.2, 0.8])
    # resamples of the two users: {7,7} (p 1/4) diff 0; {3,3} (1/4) diff 1 - 0 = 1;
    # {7,3} (1/2): AUC(a) = 1, AUC(b) = 3/4 (0.2 loses to 0.8 only) -> diff 0.25
    out = m.auc_difference(labels, a, b, groups=groups, n_boot=2000, alpha=0.2, seed=0)
    assert out["difference"] == pytest.approx(0.25) and out["n_groups"] == 2
    assert out["ci_low"] == 0.0 and out["ci_high"] == pytest.approx(1.0)
    # resampling pairs instead can mix one user's positive with the other's negative, and can
    # draw a pair set with a class missing: the values differ
    pairs = m.auc_difference(labels, a, b, groups=np.arange(4), n_boot=2000, alpha=0.2)
    assert (pairs["ci_low"], pairs["ci_high"]) != (out["ci_low"], out["ci_high"])


def test_auc_difference_interval_is_not_narrowed_by_duplicating_users_pairs():
    rng = np.random.default_rng(3)
    n_users, per_user = 150, 4
    users = np.repeat(np.arange(n_users), per_user)
    y = np.tile([1, 0, 1, 0], n_users)
    taste = rng.normal(0, 1, n_users)[users]  # a per-user effect shared by the user's pairs
    a = y + taste * (2 * y - 1) + rng.normal(0, 1.0, y.size)
    b = y + rng.normal(0, 1.5, y.size)

    def width(copies, groups_of):
        rows = np.repeat(np.arange(y.size), copies)  # each pair `copies` times, same user
        groups = groups_of(rows)
        out = m.auc_difference(y[rows], a[rows], b[rows], groups=groups, n_boot=400, seed=0)
        return out["ci_high"] - out["ci_low"]

    by_user = width(1, lambda r: users[r])
    by_user_dup = width(4, lambda r: users[r])
    by_pair_dup = width(4, lambda r: np.arange(r.size))  # the old pair bootstrap
    # four copies of each pair add no information: the clustered interval keeps its width,
    # while resampling pairs believes it has 4x the data and halves it
    assert by_user_dup == pytest.approx(by_user, rel=0.2)
    assert by_user_dup > 1.6 * by_pair_dup


def test_bootstrap_rows_is_seeded_chunked_and_checked():
    chunks = list(m.bootstrap_rows(5, 7, seed=3, chunk=3))
    assert [start for start, _ in chunks] == [0, 3, 6]
    assert [rows.shape for _, rows in chunks] == [(3, 5), (3, 5), (1, 5)]
    again = np.vstack([rows for _, rows in m.bootstrap_rows(5, 7, seed=3, chunk=3)])
    assert np.array_equal(np.vstack([rows for _, rows in chunks]), again)
    assert ((again >= 0) & (again < 5)).all()
    with pytest.raises(ValueError, match="n_rows must be an integer >= 1"):
        next(m.bootstrap_rows(0, 5))


# ------------------------------------------------------------------ malformed input is refused
@pytest.mark.parametrize("fn", list(m.RANKING_METRICS.values()) + [m.ranking_report])
def test_a_list_that_repeats_an_item_is_refused(fn):
    # unchecked, user 0's one relevant item counted twice: nDCG@3 = (1 + 1/log2(3)) / 1 > 1
    repeated = np.array([[1, 1, 2], [3, 4, -1], [5, 6, 7]])
    with pytest.raises(ValueError, match="item column 1 more than once for user row 0"):
        fn(repeated, relevant({0: [1]}), k=3)


@pytest.mark.parametrize(
    ("recommended", "k", "pattern"),
    [
        (RECOMMENDED, 0, "k must be an integer >= 1"),
        (RECOMMENDED, 2.0, "k must be an integer >= 1"),
        (RECOMMENDED, 5, "3 column\\(s\\) but k=5"),  # 3-item lists scored @5: refused
        (RECOMMENDED[0], 3, "must be 2-D"),
        (RECOMMENDED.astype(float) + 0.5, 3, "whole numbers"),
        (np.array([[0, -2, 1]]), 3, "item column -2"),
        (np.array([[0.0, np.nan, 1]]), 3, "whole numbers"),
    ],
)
def test_malformed_lists_and_k_are_refused(recommended, k, pattern):
    rel = relevant({0: [0]}, n_users=len(np.atleast_2d(recommended)))
    with pytest.raises(ValueError, match=pattern):
        m.ndcg_at_k(recommended, rel, k=k)


def test_k_above_the_catalogue_size_scores_the_whole_catalogue():
    # 3 items, every one ranked: @10 is the list itself; precision still divides by k
    rel = relevant({0: [2]}, n_users=1, n_items=3)
    everything = np.array([[0, 1, 2]])
    assert m.ndcg_at_k(everything, rel, k=10) == pytest.approx(1 / np.log2(4))
    assert m.precision_at_k(everything, rel, k=10) == pytest.approx(1 / 10)


@pytest.mark.parametrize(
    ("labels", "scores", "pattern"),
    [
        ([1, 0, 1, 0], [0.9, np.nan, 0.2, 0.1], "scores must hold only values that are finite"),
        ([1, 0, 1, 0], [0.9, np.inf, 0.2, 0.1], "scores must hold only values that are finite"),
        ([1, 0, 1], [0.9, 0.1, 0.2, 0.3], r"labels \(3,\), scores \(4,\)"),
        ([1, 0, 2, 0], [0.9, 0.1, 0.2, 0.3], "labels must hold only values"),
        ([1, 0, 0.5, 0], [0.9, 0.1, 0.2, 0.3], "labels must be 0/1"),
        ([[1, 0]], [[0.9, 0.1]], "labels must be 1-D"),
    ],
)
def test_roc_auc_refuses_what_it_cannot_rank(labels, scores, pattern):
    with pytest.raises(ValueError, match=pattern):
        m.roc_auc(labels, scores)


def test_roc_auc_hand_computed():
    # positives 0.8, 0.4; negatives 0.5, 0.4: pairs (0.8>0.5)=1, (0.8>0.4)=1, (0.4<0.5)=0,
    # (0.4=0.4)=1/2 -> 2.5 / 4
    assert m.roc_auc([1, 0, 1, 0], [0.8, 0.5, 0.4, 0.4]) == pytest.approx(0.625)


@pytest.mark.parametrize(
    ("labels", "probs", "kwargs", "pattern"),
    [
        ([1, 0, 1, 0], [0.5], {}, r"labels \(4,\), probs \(1,\)"),  # was broadcast
        ([1, 0], [0.5, np.nan], {}, "probs must hold only values"),
        ([1, 0], [1.5, 0.5], {}, "probs must hold only values"),
        ([1, 0], [0.5, -0.1], {}, "probs must hold only values"),
        ([1, 0], [0.5, 0.5], {"eps": 0.0}, "eps must be"),
        ([], [], {}, "empty"),
    ],
)
def test_log_loss_refuses_mismatched_or_impossible_probabilities(labels, probs, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        m.log_loss(labels, probs, **kwargs)


def test_log_loss_hand_computed():
    expected = -(np.log(0.8) + np.log(1 - 0.3)) / 2
    assert m.log_loss([1, 0], [0.8, 0.3]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: m.novelty(np.array([[0, 5]]), np.array([0.5, 0.1])), "recommended must hold"),
        (lambda: m.catalogue_coverage(np.array([[0, 9]]), 3), "recommended must hold"),
        (lambda: m.catalogue_coverage(np.array([[0, 1]]), 0), "n_items must be an integer >= 1"),
        (lambda: m.intra_list_diversity(np.array([[0, 1]]), np.array([[1.0, np.nan], [0, 1]])),
         "item_vectors must hold only values that are finite"),
        (lambda: m.intra_list_diversity(np.array([[0, 4]]), np.eye(2)), "recommended must hold"),
    ],
)  # fmt: skip
def test_beyond_accuracy_metrics_refuse_out_of_range_items(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_topk_overlap_by_hand():
    from recsys_lib.evaluation.metrics import topk_overlap

    a = np.array([[1, 2, 3], [4, 5, 6]])
    b = np.array([[3, 2, 9], [7, 8, 0]])  # 2 of 3 shared, then none
    assert topk_overlap(a, b) == pytest.approx((2 / 3 + 0) / 2)
    assert topk_overlap(a, a) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        topk_overlap(a, b[:, :2])
    with pytest.raises(ValueError, match="no users"):
        topk_overlap(a[:0], b[:0])


def test_topk_overlap_refuses_repeats_and_ignores_padding():
    from recsys_lib.evaluation.metrics import topk_overlap

    with pytest.raises(ValueError, match="recommended_b lists item column 3 more than once"):
        topk_overlap(np.array([[1, 2, 3]]), np.array([[3, 3, 3]]))  # was 1/3 "shared"
    padded = np.array([[1, -1, -1]])
    assert topk_overlap(padded, padded) == pytest.approx(1 / 3)  # -1 is not a shared item


def test_pad_lists_widens_short_lists_with_empty_slots_and_keeps_the_score():
    from recsys_lib.evaluation.metrics import ndcg_at_k, pad_lists

    short = np.array([[2, 0], [1, 3]])
    padded = pad_lists(short, 4)
    assert padded.tolist() == [[2, 0, -1, -1], [1, 3, -1, -1]]
    assert pad_lists(padded, 3) is padded  # long enough already
    relevant = sp.csr_matrix(np.array([[1, 0, 0, 1, 1], [0, 1, 0, 0, 0]]))
    # user 0: hit at rank 2 of 3 relevant, ideal over 3; user 1: hit at rank 1
    by_hand = ((1 / np.log2(3)) / (1 + 1 / np.log2(3) + 1 / np.log2(4)) + 1.0) / 2
    assert ndcg_at_k(padded, relevant, 4) == pytest.approx(by_hand)
    with pytest.raises(ValueError, match="k must be at least 1"):
        pad_lists(short, 0)


def test_auc_by_regime_splits_pairs_into_four_cells():
    from recsys_lib.evaluation.metrics import auc_by_regime

    labels = np.array([1, 0, 1, 0, 1, 0, 1, 1])
    user_count = np.array([1, 1, 1, 1, 9, 9, 9, 9])
    item_count = np.array([1, 1, 9, 9, 1, 1, 9, 9])
    good = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.5])
    out = auc_by_regime(labels, {"good": good, "bad": -good}, user_count, item_count, 5, 5)
    assert len(out) == 8 and out["n_pairs"].sum() == 16
    cell = out.set_index(["model", "users", "items"])
    assert cell.loc[("good", "sparse users", "rare films"), "auc"] == 1.0
    assert cell.loc[("bad", "sparse users", "popular films"), "auc"] == 0.0
    assert np.isnan(cell.loc[("good", "active users", "popular films"), "auc"])  # positives only
    with pytest.raises(ValueError):
        auc_by_regime(labels, {"short": good[:3]}, user_count, item_count, 5, 5)
