"""Tests for business metrics, the multi-task model and re-rankers."""

import itertools

import numpy as np
import pandas as pd
import pytest

from recsys_lib.business import (
    candidate_positions,
    catalog_coverage,
    choose_operating_point,
    ctr,
    cvr,
    expected_value,
    exposure_constrained_rerank,
    exposure_share,
    fit_multitask,
    intra_list_diversity,
    margin_per_impression,
    mmr_rerank,
    novelty,
    one_hot,
    pareto_front,
    pareto_sweep,
    predict_ctr_cvr,
    revenue_per_impression,
    scalarise,
    tradeoff_slates,
    value_weight_tradeoff,
)
from recsys_lib.business.shop import (
    ShopConfig,
    click_prob,
    make_shop,
    sample_requests,
    simulate_logs,
)
from recsys_lib.evaluation import metrics
from recsys_lib.retrieval.topk import top_k_candidates

SLATES = np.array([[0, 1, 2], [2, 3, 4]])
CLICKS = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)
PURCH = np.array([[1, 0, 0], [0, 0, 1]], dtype=bool)
PRICE = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])


def test_rate_metrics_by_hand():
    assert ctr(CLICKS) == pytest.approx(3 / 6)
    assert cvr(CLICKS, PURCH) == pytest.approx(2 / 3)
    assert revenue_per_impression(PURCH, SLATES, PRICE) == pytest.approx((10 + 50) / 6)
    assert margin_per_impression(PURCH, SLATES, PRICE / 10) == pytest.approx(6 / 6)
    assert np.isnan(cvr(np.zeros((1, 2)), np.zeros((1, 2))))
    with pytest.raises(ValueError, match="same shape"):
        cvr(CLICKS, PURCH[:, :2])
    with pytest.raises(ValueError, match="empty"):
        ctr(np.array([]))


def test_coverage_novelty_diversity_exposure():
    assert catalog_coverage(SLATES, 10) == pytest.approx(5 / 10)
    # One definition with metrics.novelty: shares of users; unseen items clipped to the rarest.
    pop = np.array([0.5, 0.25, 0.0, 0.0, 0.0, 0.0])
    p = np.array([0.5, 0.25, 0.25, 0.25, 0.25, 0.25])
    assert novelty(SLATES, pop) == pytest.approx(-np.log2(p[SLATES]).mean())
    assert novelty is metrics.novelty and catalog_coverage is metrics.catalogue_coverage
    with pytest.raises(ValueError, match="shares"):
        novelty(SLATES, np.array([7.0, 1, 0, 0, 0, 0]))  # raw counts are refused
    cats = one_hot(np.array([0, 0, 1, 1, 2, 2]))
    # slate 0: cats 0,0,1 -> 1 of 3 pairs same -> dissimilarity 2/3; slate 1: 1,1,2 -> 2/3
    assert intra_list_diversity(SLATES, cats) == pytest.approx(2 / 3)
    new = np.array([False, False, True, False, False, False])
    assert exposure_share(SLATES, new) == pytest.approx(2 / 6)
    w = np.array([1.0, 0.5, 0.25])
    assert exposure_share(SLATES, new, w) == pytest.approx((0.25 + 1.0) / (2 * 1.75))
    with pytest.raises(ValueError, match=">= 2 items"):
        intra_list_diversity(SLATES[:, :1], cats)
    with pytest.raises(ValueError, match="position_weights"):
        exposure_share(SLATES, new, w[:2])


def test_expected_value_and_scalarise():
    pc, pv, v = np.full((2, 3), 0.1), np.full((2, 3), 0.5), np.arange(6.0).reshape(2, 3)
    assert np.allclose(expected_value(pc, pv, v), 0.05 * v)
    obj = {"a": np.ones((2, 3)), "b": np.arange(6.0).reshape(2, 3)}
    assert np.allclose(scalarise(obj, {"a": 2.0, "b": 0.5}), 2 + 0.5 * obj["b"])
    with pytest.raises(ValueError, match="unknown objectives"):
        scalarise(obj, {"c": 1.0})


def test_mmr_zero_diversity_is_top_k_and_diversity_spreads_categories():
    rng = np.random.default_rng(0)
    scores = rng.random((30, 12))
    cands = np.tile(np.arange(12), (30, 1))
    feats = one_hot(np.arange(12) % 3)
    assert np.array_equal(
        mmr_rerank(scores, cands, feats, 4, 0.0), top_k_candidates(scores, cands, 4)
    )
    div = mmr_rerank(scores, cands, feats, 3, 0.7)
    assert intra_list_diversity(div, feats) == pytest.approx(1.0)
    assert intra_list_diversity(top_k_candidates(scores, cands, 3), feats) < 1.0
    with pytest.raises(ValueError, match="diversity"):
        mmr_rerank(scores, cands, feats, 3, 1.5)


def test_mmr_matches_bruteforce_greedy():
    rng = np.random.default_rng(1)
    scores, feats = rng.random((1, 6)), rng.normal(size=(6, 3))
    cands = np.arange(6)[None]
    lam = 0.4
    rel = (scores[0] - scores[0].min()) / np.ptp(scores[0])
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    chosen: list[int] = []
    for _ in range(4):
        best = max(
            (j for j in range(6) if j not in chosen),
            key=lambda j: (1 - lam) * rel[j] - lam * max([f[j] @ f[s] for s in chosen] + [0.0]),
        )
        chosen.append(best)
    assert mmr_rerank(scores, cands, feats, 4, lam)[0].tolist() == chosen  # per-step cosines
    many = mmr_rerank(np.repeat(scores, 20, 0), np.repeat(cands, 20, 0), feats, 4, lam)
    assert many.tolist() == [chosen] * 20  # 20 rows: cosines read from the item Gram matrix


def test_exposure_constrained_rerank():
    scores = np.array([[0.9, 0.8, 0.7, 0.2, 0.1], [0.9, 0.8, 0.7, 0.6, 0.5]])
    cands = np.array([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]])
    new = np.array([False, False, False, True, True])
    out = exposure_constrained_rerank(scores, cands, new, 3, 1)
    assert out[0].tolist() == [0, 1, 3]  # best new item replaces the weakest old one
    out2 = exposure_constrained_rerank(scores, cands, new, 3, 2)
    assert out2[1].tolist() == [0, 3, 4]
    assert np.array_equal(
        exposure_constrained_rerank(scores, cands, new, 3, 0), top_k_candidates(scores, cands, 3)
    )
    none_new = np.zeros(5, dtype=bool)  # constraint cannot bind: plain top-k
    assert np.array_equal(
        exposure_constrained_rerank(scores, cands, none_new, 3, 2),
        top_k_candidates(scores, cands, 3),
    )
    with pytest.raises(ValueError, match="min_count"):
        exposure_constrained_rerank(scores, cands, new, 3, 4)


def test_pareto_front_bruteforce():
    rng = np.random.default_rng(0)
    pts = rng.random((40, 3))
    mask = pareto_front(pts)
    for i, j in itertools.product(range(40), repeat=2):
        if (pts[j] >= pts[i]).all() and (pts[j] > pts[i]).any():
            assert not mask[i]
    for i in np.flatnonzero(mask):
        assert not any(((pts[j] >= pts[i]).all() and (pts[j] > pts[i]).any()) for j in range(40))
    # minimisation flips
    two = np.array([[1.0, 1.0], [2.0, 2.0]])
    assert pareto_front(two).tolist() == [False, True]
    assert pareto_front(two, maximise=False).tolist() == [True, False]
    assert pareto_front(two, maximise=[True, False]).tolist() == [True, True]


def test_pareto_sweep():
    df = pareto_sweep(
        lambda w: {"x": w, "y": 1 - w**2, "z": 0.0},
        [{"w": w} for w in (0.0, 0.5, 1.0, -1.0)],
        {"x": True, "y": True},
    )
    assert df["pareto"].tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="did not return"):
        pareto_sweep(lambda w: {"x": w}, [{"w": 1}], {"q": True})


@pytest.fixture(scope="module")
def shop_and_log():
    shop = make_shop(ShopConfig(n_items=150, n_users=200, n_candidates=20), seed=0)
    return shop, simulate_logs(shop, 30_000, seed=1)


@pytest.fixture(scope="module")
def multitask_model(shop_and_log):
    """The multi-task model fitted once on the shared log (two epochs), for the tests that only
    read its predictions."""
    shop, log = shop_and_log
    return fit_multitask(log.requests.users, log.slates, log.clicks, log.purchases, shop.catalog,
                         shop.n_users, epochs=2, seed=0, device="cpu")  # fmt: skip


def test_fit_multitask_learns_signal(shop_and_log):
    shop, log = shop_and_log
    u, sl = log.requests.users, log.slates
    m = fit_multitask(u, sl, log.clicks, log.purchases, shop.catalog, shop.n_users, epochs=3,
                      seed=0, device="cpu")  # fmt: skip
    assert m.losses[-1] < m.losses[0]
    cands = log.requests.candidates[:2_000]
    pc, pv = predict_ctr_cvr(m, u[:2_000], cands, shop.catalog)
    assert pc.shape == pv.shape == cands.shape and ((pc > 0) & (pc < 1)).all()
    truth = click_prob(shop, u[:2_000], cands)
    assert np.corrcoef(pc.ravel(), truth.ravel())[0, 1] > 0.3
    # deterministic with the same seed
    m2 = fit_multitask(u, sl, log.clicks, log.purchases, shop.catalog, shop.n_users, epochs=3,
                       seed=0, device="cpu")  # fmt: skip
    assert np.allclose(predict_ctr_cvr(m2, u[:50], cands[:50], shop.catalog)[0], pc[:50])


def test_fit_multitask_thread_setting_is_restored_and_does_not_change_the_model(shop_and_log):
    import torch

    shop, log = shop_and_log
    u, sl = log.requests.users[:3_000], log.slates[:3_000]
    c, p = log.clicks[:3_000], log.purchases[:3_000]
    before = torch.get_num_threads()
    fits = [fit_multitask(u, sl, c, p, shop.catalog, shop.n_users, epochs=1, seed=0,
                          device="cpu", num_threads=t) for t in (1, 2)]  # fmt: skip
    assert torch.get_num_threads() == before
    assert fits[0].losses == fits[1].losses


def test_value_weighted_training_favours_expensive_items(shop_and_log):
    shop, log = shop_and_log
    u, sl = log.requests.users, log.slates
    kw = dict(epochs=3, seed=0, device="cpu")
    plain = fit_multitask(u, sl, log.clicks, log.purchases, shop.catalog, shop.n_users, **kw)
    w = np.where(log.clicks, shop.price[sl] / shop.ref_price, 1.0)  # value-weighted positives
    rich = fit_multitask(u, sl, log.clicks, log.purchases, shop.catalog, shop.n_users,
                         click_weight=w, **kw)  # fmt: skip
    cands = log.requests.candidates[:2_000]
    k_plain = top_k_candidates(predict_ctr_cvr(plain, u[:2_000], cands, shop.catalog)[0], cands, 5)
    k_rich = top_k_candidates(predict_ctr_cvr(rich, u[:2_000], cands, shop.catalog)[0], cands, 5)
    assert shop.price[k_rich].mean() > shop.price[k_plain].mean()
    with pytest.raises(ValueError, match="non-negative"):
        fit_multitask(u, sl, log.clicks, log.purchases, shop.catalog, shop.n_users,
                      click_weight=-w)  # fmt: skip


def test_value_weight_tradeoff_chooses_on_tune_and_measures_on_test(shop_and_log, multitask_model):
    from recsys_lib.business import evaluate_slates

    shop, log = shop_and_log
    model = multitask_model
    tune, test = sample_requests(shop, 400, seed=5), sample_requests(shop, 400, seed=6)
    feats = one_hot(shop.category)
    weights = [0.0, 0.2, 0.5, 1.0]
    out = value_weight_tradeoff(shop, model, tune, test, 5, weights, 0.05, feats)
    # brute force on the tuning visits: the most revenue within the CTR budget
    pc, pv = predict_ctr_cvr(model, tune.users, tune.candidates, shop.catalog)
    price = shop.price[tune.candidates]
    truth = {w: evaluate_slates(shop, tune.users, tradeoff_slates(pc, pv, price, tune.candidates,
                                                                  5, w), feats)
             for w in weights}  # fmt: skip
    ok = [w for w in weights if truth[w]["ctr"] >= 0.95 * truth[0.0]["ctr"]]
    best = max(ok, key=lambda w: truth[w]["revenue_per_impression"])
    assert out["value_weight"] == best
    lift = truth[best]["revenue_per_impression"] / truth[0.0]["revenue_per_impression"] - 1
    assert out["tune_revenue_lift"] == pytest.approx(lift)
    assert out["tune_ctr_change"] >= -0.05
    assert set(out) == {"value_weight", "tune_revenue_lift", "tune_ctr_change",
                        "test_revenue_lift", "test_ctr_change"}  # fmt: skip
    # no CTR budget and only the baseline: nothing changes
    zero = value_weight_tradeoff(shop, model, tune, test, 5, [0.0], 0.0, feats)
    assert zero["value_weight"] == 0.0 and zero["test_revenue_lift"] == 0.0
    with pytest.raises(ValueError, match="include 0"):
        value_weight_tradeoff(shop, model, tune, test, 5, [0.5], 0.03, feats)


def test_offline_estimates_cover_the_truth_and_pbm_is_tightest(shop_and_log, multitask_model):
    from recsys_lib.business import offline_estimates, ope, slate_predictions
    from recsys_lib.business.shop import true_policy_value

    shop, log = shop_and_log
    model = multitask_model
    held = simulate_logs(shop, 60_000, seed=7)
    users, cands = held.requests.users, held.requests.candidates
    pc, pv = predict_ctr_cvr(model, users, cands, shop.catalog)
    target = tradeoff_slates(pc, pv, shop.price[cands], cands, 10, 0.3)
    q_log = slate_predictions(model, users, held.slates, shop.catalog)
    q_tgt = slate_predictions(model, users, target, shop.catalog)
    np.testing.assert_allclose(q_tgt["revenue_per_impression"],
                               predict_ctr_cvr(model, users, target, shop.catalog)[0]
                               * predict_ctr_cvr(model, users, target, shop.catalog)[1]
                               * shop.price[target], rtol=1e-6)  # fmt: skip
    b = ope.position_bias_from_exploration(held.clicks, held.explored)
    est = offline_estimates(held, target, shop.price, b, q_log, q_tgt)
    truth = true_policy_value(shop, users, target)
    for metric in ("ctr", "revenue_per_impression"):
        assert set(est[metric]) == {"IPS", "SNIPS", "DR", "PBM-DR"}
        for name, e in est[metric].items():
            assert abs(e.value - truth[metric]) < 4 * e.se, (metric, name)
        assert est[metric]["PBM-DR"].se < 0.7 * est[metric]["IPS"].se
    by_hand = ope.dr_estimate(held.clicks, ope.item_position_match(target, held.slates),
                              held.propensity, b * q_log["ctr"], b * q_tgt["ctr"])  # fmt: skip
    assert est["ctr"]["DR"].value == pytest.approx(by_hand.value)


def test_value_weight_tradeoff_on_logged_data_uses_the_estimates(shop_and_log, multitask_model):
    from recsys_lib.business import offline_estimates, ope, slate_predictions

    shop, log = shop_and_log
    model = multitask_model
    held, test = simulate_logs(shop, 20_000, seed=8), sample_requests(shop, 300, seed=6)
    weights = [0.0, 0.3, 1.0]
    out = value_weight_tradeoff(shop, model, held, test, 10, weights, 0.1, one_hot(shop.category))
    users, cands = held.requests.users, held.requests.candidates
    pc, pv = predict_ctr_cvr(model, users, cands, shop.catalog)
    b = ope.position_bias_from_exploration(held.clicks, held.explored)
    q_log = slate_predictions(model, users, held.slates, shop.catalog)
    est = {}
    for w in weights:
        sl = tradeoff_slates(pc, pv, shop.price[cands], cands, 10, w)
        e = offline_estimates(
            held, sl, shop.price, b, q_log, slate_predictions(model, users, sl, shop.catalog)
        )
        est[w] = {m: e[m]["PBM-DR"].value for m in e}
    ok = [w for w in weights if est[w]["ctr"] >= 0.9 * est[0.0]["ctr"]]
    best = max(ok, key=lambda w: est[w]["revenue_per_impression"])
    assert out["value_weight"] == best
    assert out["tune_ctr_change"] == pytest.approx(est[best]["ctr"] / est[0.0]["ctr"] - 1)


def test_slate_predictions_from_candidates_equal_a_new_forward_pass(shop_and_log):
    from recsys_lib.business import slate_predictions, slate_predictions_from

    shop, log = shop_and_log
    model = fit_multitask(log.requests.users, log.slates, log.clicks, log.purchases, shop.catalog,
                          shop.n_users, epochs=1, seed=0, device="cpu")  # fmt: skip
    req = sample_requests(shop, 500, seed=9)
    pc, pv = predict_ctr_cvr(model, req.users, req.candidates, shop.catalog)
    slates = tradeoff_slates(pc, pv, shop.price[req.candidates], req.candidates, 5, 0.5)
    direct = slate_predictions(model, req.users, slates, shop.catalog)
    gathered = slate_predictions_from(pc, pv, req.candidates, slates, shop.price)
    for metric in direct:
        np.testing.assert_allclose(gathered[metric], direct[metric], rtol=1e-6)
    assert (req.candidates[np.arange(500)[:, None], candidate_positions(req.candidates, slates)]
            == slates).all()  # fmt: skip
    with pytest.raises(ValueError, match="not among"):
        candidate_positions(req.candidates[:1], np.array([[-1]]))


def test_choose_operating_point_on_a_ctr_loss_bound():
    sweep = pd.DataFrame(
        {
            "value_weight": [0.0, 0.1, 0.2, 0.3],
            "ctr": [0.100, 0.099, 0.098, 0.090],
            "revenue_per_impression": [1.0, 1.1, 1.2, 1.5],
            "ctr_loss_high": [0.0, 0.02, 0.035, 0.12],  # upper bounds of the relative loss
            "pareto": [True] * 4,
        }
    )
    base = sweep.iloc[0]
    # point estimates: 0.2 loses 2% (within 3%); its bound (3.5%) does not fit the budget
    assert choose_operating_point(sweep, base, 0.03).value_weight == 0.2
    bounded = choose_operating_point(sweep, base, 0.03, ctr_loss_bound_col="ctr_loss_high")
    assert bounded.value_weight == 0.1
    with pytest.raises(ValueError, match="no Pareto point"):
        choose_operating_point(sweep.iloc[1:], base, 0.01, ctr_loss_bound_col="ctr_loss_high")


def test_value_weight_tradeoff_with_a_ctr_bound_is_more_cautious(shop_and_log, multitask_model):
    from recsys_lib.business import offline_values, ope, slate_predictions

    shop, log = shop_and_log
    model = multitask_model
    held, test = simulate_logs(shop, 20_000, seed=8), sample_requests(shop, 300, seed=6)
    weights = [0.0, 0.1, 0.3, 1.0]
    feats = one_hot(shop.category)
    bounded = value_weight_tradeoff(shop, model, held, test, 10, weights, 0.1, feats,
                                    ctr_bound_alpha=0.05)  # fmt: skip
    users, cands = held.requests.users, held.requests.candidates
    pc, pv = predict_ctr_cvr(model, users, cands, shop.catalog)
    b = ope.position_bias_from_exploration(held.clicks, held.explored)
    q_log = slate_predictions(model, users, held.slates, shop.catalog)
    vals = {}
    for w in weights:
        sl = tradeoff_slates(pc, pv, shop.price[cands], cands, 10, w)
        vals[w] = offline_values(held, sl, shop.price, b, q_log,
                                 slate_predictions(model, users, sl, shop.catalog))  # fmt: skip
    bound = {
        w: -ope.paired_difference(vals[w]["ctr"], vals[0.0]["ctr"], 0.1, relative=True).ci_low
        for w in weights
    }
    ok = [w for w in weights if w == 0.0 or bound[w] <= 0.1]
    best = max(ok, key=lambda w: vals[w]["revenue_per_impression"].mean())
    assert bounded["value_weight"] == best
    plain = value_weight_tradeoff(shop, model, held, test, 10, weights, 0.1, feats)
    assert bounded["value_weight"] <= plain["value_weight"]
