import numpy as np
import pandas as pd
import pytest

from recsys_lib.production import monitoring as mon


def test_item_distribution_counts_events_in_catalogue_order():
    p = mon.item_distribution([30, 10, 30, 30], [10, 20, 30])
    np.testing.assert_allclose(p, [0.25, 0.0, 0.75])
    with pytest.raises(KeyError, match=r"\[40\]"):
        mon.item_distribution([10, 40], [10, 20, 30])
    with pytest.raises(ValueError, match="no interactions"):
        mon.item_distribution([], [10])


def test_divergences_by_hand():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    assert mon.total_variation(p, q) == pytest.approx(0.5)
    # m = [.25, .5, .25]; KL(p||m) = .5*log2(2) + .5*log2(1) = 0.5, same for q
    assert mon.js_divergence(p, q) == pytest.approx(0.5)
    assert mon.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert mon.total_variation(p, p) == 0.0 and mon.js_divergence(p, p) == 0.0
    # unnormalised counts are normalised first
    assert mon.total_variation([2, 2, 0], [0, 1, 1]) == pytest.approx(0.5)
    a, b = np.array([0.2, 0.8]), np.array([0.4, 0.6])
    want = (0.4 - 0.2) * np.log(2.0) + (0.6 - 0.8) * np.log(0.6 / 0.8)
    assert mon.psi(a, b) == pytest.approx(want)
    assert np.isfinite(mon.psi(p, q))  # zero shares are floored
    with pytest.raises(ValueError, match="differ in length"):
        mon.total_variation([1, 0], [1, 0, 0])


def test_centroid_shift_by_hand():
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert mon.centroid_shift([1, 0], [0, 1], emb) == pytest.approx(1.0)
    assert mon.centroid_shift([1, 1], [2, 2], emb) == pytest.approx(0.0, abs=1e-12)
    assert mon.centroid_shift([1, 0], [1, 1], emb) == pytest.approx(1 - 1 / np.sqrt(2))
    with pytest.raises(ValueError, match="n_items=2"):
        mon.centroid_shift([1, 0], [0, 1], np.ones((3, 2)))


def test_windows_and_drift_report():
    day = mon.DAY_SECONDS
    assert mon.assign_windows([0, day * 6.9, day * 7, day * 15], 7).tolist() == [0, 0, 1, 2]
    # window 0: item 1 only; window 1: half 1 half 2; window 2 (3 events) is thin -> merged
    ratings = pd.DataFrame(
        {
            "item_id": [1] * 4 + [1, 1, 2, 2] + [2, 2, 2],
            "timestamp": [0, 1, 2, 3] + [7 * day + i for i in range(4)] + [14 * day] * 3,
        }
    )
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    report = mon.drift_report(ratings, [1, 2], window_days=7, min_events=4, item_embeddings=emb)
    assert report["events"].tolist() == [4, 7]
    assert np.isnan(report.loc[0, "tv"])
    assert report.loc[1, "tv"] == pytest.approx(5 / 7)  # p=[1,0], q=[2/7, 5/7]
    assert report.loc[1, "centroid_shift"] == pytest.approx(1 - 2 / np.sqrt(29))
    split = mon.drift_report(ratings, [1, 2], window_days=7, min_events=1)
    assert split["events"].tolist() == [4, 4, 3]
    first = mon.drift_report(ratings, [1, 2], window_days=7, min_events=1, reference="first")
    assert first.loc[2, "tv"] == pytest.approx(1.0) and split.loc[2, "tv"] == pytest.approx(0.5)
    flags = mon.drift_alerts(split, {"tv": 0.75, "js": 0.3})  # JS of both shifts = 0.311
    assert flags["alert"].tolist() == [False, True, True]
    assert flags["tv"].tolist() == [False, False, False]
    with pytest.raises(KeyError, match="centroid_shift"):
        mon.drift_alerts(split, {"centroid_shift": 0.1})


def _window_pair(rng, p, n_ref, n_cur):
    """Event counts per item of two windows of sizes n_ref and n_cur drawn from p and q."""
    return rng.multinomial(n_ref, p[0]), rng.multinomial(n_cur, p[1])


def _zipf(n_items: int, s: float = 1.0) -> np.ndarray:
    w = 1.0 / np.arange(1, n_items + 1) ** s
    return w / w.sum()


@pytest.mark.parametrize("n_events", [500, 2_000, 6_000, 14_000])
def test_same_distribution_windows_do_not_alert_above_the_noise_floor(n_events):
    # MovieLens-like: 1,682 items with a long tail; the raw statistics are far from zero
    p = _zipf(1682)
    rng = np.random.default_rng(n_events)
    alerts, raw_psi = 0, []
    for rep in range(20):
        a, b = _window_pair(rng, (p, p), n_events, int(0.7 * n_events))  # unequal sizes
        null = mon.permutation_null(a, b, n_permutations=100, quantile=0.99, seed=rep)
        raw_psi.append(mon.psi(a, b))
        alerts += mon.total_variation(a, b) > null["tv_null"] or mon.psi(a, b) > null["psi_null"]
        assert 0 < null["tv_p"] <= 1 and 0 < null["psi_p"] <= 1
    assert alerts <= 2  # about 2% expected (two statistics at their 99% floor)
    if n_events <= 6_000:  # the fixed rule of thumb (PSI > 0.25) fires on pure noise here
        assert np.median(raw_psi) > 0.25


@pytest.mark.parametrize("n_events", [2_000, 14_000])
def test_planted_shift_alerts(n_events):
    p = _zipf(1682)
    q = p.copy()
    q[:20], q[200:220] = p[200:220], p[:20]  # the top 20 items swap places with 20 others
    rng = np.random.default_rng(1)
    a, b = _window_pair(rng, (p, q), n_events, n_events)
    null = mon.permutation_null(a, b, n_permutations=100, seed=0)
    assert mon.total_variation(a, b) > null["tv_null"] and mon.psi(a, b) > null["psi_null"]
    assert null["tv_p"] == pytest.approx(1 / 101) and null["psi_p"] == pytest.approx(1 / 101)


def test_permutation_null_grows_as_windows_shrink_and_checks_input():
    p = _zipf(500)
    rng = np.random.default_rng(0)
    small = mon.permutation_null(*_window_pair(rng, (p, p), 1_000, 1_000), n_permutations=50)
    large = mon.permutation_null(*_window_pair(rng, (p, p), 20_000, 20_000), n_permutations=50)
    assert small["tv_null"] > 2 * large["tv_null"] and small["psi_null"] > 2 * large["psi_null"]
    with pytest.raises(ValueError, match="n_permutations"):
        mon.permutation_null([1, 2], [2, 1], n_permutations=5)
    with pytest.raises(ValueError, match="integers"):
        mon.permutation_null([0.5, 2], [2, 1])
    with pytest.raises(ValueError, match="differ in shape"):
        mon.permutation_null([1, 2], [2, 1, 0])
    with pytest.raises(ValueError, match="needs events"):
        mon.permutation_null([0, 0], [2, 1])


def test_drift_report_null_columns_gate_the_alerts():
    day = mon.DAY_SECONDS
    p = _zipf(300)
    rng = np.random.default_rng(3)
    items = np.arange(300)
    same = [rng.choice(items, 800, p=p) for _ in range(2)]
    q = p[::-1]  # third window: popularity reversed
    shifted = rng.choice(items, 800, p=q)
    ratings = pd.DataFrame(
        {
            "item_id": np.concatenate([*same, shifted]),
            "timestamp": np.repeat([0, 7 * day, 14 * day], 800),
        }
    )
    report = mon.drift_report(ratings, items, window_days=7, n_permutations=50, seed=0)
    assert {"tv_null", "tv_p", "psi_null", "js_null"} <= set(report.columns)
    assert np.isnan(report.loc[0, "tv_null"])
    assert report.loc[1, "psi"] > 0.25  # the rule of thumb alone would alert on noise
    flags = mon.drift_alerts(report, {"tv": 0.0, "psi": 0.25})
    assert flags["alert"].tolist() == [False, False, True]
    plain = mon.drift_alerts(report.drop(columns=["psi_null", "tv_null"]), {"psi": 0.25})
    assert plain["alert"].tolist() == [False, True, True]


def test_permutation_null_per_unit_moves_whole_rows():
    # two "users" per window, each always rating the same two items: splitting events at random
    # (wrong unit) would invent variation a user-level split cannot produce
    a = np.array([[30, 30, 0, 0], [0, 0, 30, 30]])
    b = np.array([[30, 30, 0, 0], [0, 0, 30, 30]])
    by_user = mon.permutation_null(a, b, n_permutations=50, seed=0)
    by_event = mon.permutation_null(a.sum(0), b.sum(0), n_permutations=50, seed=0)
    assert by_user["tv_null"] == pytest.approx(1.0)  # the only splits: identical or disjoint
    assert by_event["tv_null"] < 0.5
    from scipy import sparse

    sparse_null = mon.permutation_null(sparse.csr_matrix(a), b, n_permutations=50, seed=0)
    assert sparse_null == by_user
    with pytest.raises(ValueError, match="differ in shape"):
        mon.permutation_null(a, b.sum(0))


def test_drift_report_per_user_unit():
    day = mon.DAY_SECONDS
    rng = np.random.default_rng(5)
    p = _zipf(200)
    rows = [
        (user, item, window * 7 * day)
        for window in range(3)
        for user in range(window * 40, window * 40 + 40)
        for item in rng.choice(200, 15, replace=False, p=p if window < 2 else p[::-1])
    ]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    report = mon.drift_report(
        ratings,
        np.arange(200),
        window_days=7,
        n_permutations=100,
        unit="user_id",
        null_quantile=0.99,
        seed=1,
    )
    flags = mon.drift_alerts(report, {"tv": 0.0})
    assert flags["alert"].tolist() == [False, False, True]
    with pytest.raises(KeyError, match="unit='session'"):
        mon.drift_report(ratings, np.arange(200), n_permutations=5, unit="session")
