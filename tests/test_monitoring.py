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
