"""Tests for the shop simulator."""

import numpy as np
import pytest

from recsys_lib.business.shop import (
    ShopConfig,
    affinity,
    click_prob,
    logging_propensity,
    make_shop,
    position_bias,
    production_scores,
    purchase_prob,
    sample_requests,
    simulate_logs,
    simulate_outcomes,
    true_policy_value,
)
from recsys_lib.retrieval.topk import top_k_candidates

SMALL = ShopConfig(n_items=200, n_users=300, n_candidates=30)


@pytest.fixture(scope="module")
def shop():
    return make_shop(SMALL, seed=3)


def test_make_shop_deterministic_and_shapes(shop):
    other = make_shop(SMALL, seed=3)
    assert np.array_equal(shop.price, other.price)
    assert np.allclose(shop.user_taste, other.user_taste)
    assert not np.array_equal(shop.price, make_shop(SMALL, seed=4).price)
    assert shop.catalog.shape[0] == 200 and shop.item_emb.shape == (200, SMALL.dim)
    assert (shop.price > 0).all() and (shop.margin > 0).all() and (shop.margin < shop.price).all()
    assert shop.is_new.sum() == round(SMALL.new_item_frac * SMALL.n_items)
    assert shop.catalog["description"].str.contains("brand_").all()
    assert np.allclose(np.linalg.norm(shop.item_emb, axis=1), 1.0)


def test_prices_lognormal():
    big = make_shop(ShopConfig(n_items=5000, n_categories=1, category_price_sd=0.0), seed=0)
    logp = np.log(big.price)
    assert abs(logp.std() - 0.8) < 0.05
    assert abs(logp.mean() - 3.5) < 0.05


def test_bad_config_messages():
    with pytest.raises(ValueError, match="logging_epsilon"):
        make_shop(ShopConfig(logging_epsilon=0.0))
    with pytest.raises(ValueError, match="n_candidates"):
        make_shop(ShopConfig(n_candidates=5, slate_size=10))


def test_probabilities_in_unit_interval_and_position_bias(shop):
    req = sample_requests(shop, 50, seed=1)
    pc = click_prob(shop, req.users, req.candidates)
    pb = purchase_prob(shop, req.users, req.candidates)
    assert pc.shape == pb.shape == (50, SMALL.n_candidates)
    for p in (pc, pb):
        assert ((p > 0) & (p < 1)).all()
    k = np.arange(SMALL.n_candidates)
    pos = click_prob(shop, req.users, req.candidates, k)
    assert np.allclose(pos, pc * position_bias(SMALL.n_candidates))
    assert np.all(np.diff(position_bias(10)) < 0) and position_bias(1)[0] == 1.0


def test_price_sensitivity_lowers_purchase_of_expensive_items(shop):
    users = np.zeros(2, dtype=int)
    cheap, dear = np.argmin(shop.price), np.argmax(shop.price)
    items = np.array([[cheap], [dear]])
    a = affinity(shop, users, items)[:, 0]
    pb = purchase_prob(shop, users, items)[:, 0]
    cfg = SMALL
    s = shop.user_sensitivity[0]
    logit = (
        cfg.buy_bias + cfg.buy_affinity * a - s * np.log(shop.price[items[:, 0]] / shop.ref_price)
    )
    assert np.allclose(pb, 1 / (1 + np.exp(-logit)))


def test_requests_distinct_candidates(shop):
    req = sample_requests(shop, 100, seed=0)
    assert all(len(set(row)) == SMALL.n_candidates for row in req.candidates)
    assert req.users.max() < SMALL.n_users


@pytest.mark.parametrize("n", [1_000, 20_000])
def test_simulate_logs_requested_size_and_determinism(shop, n):
    log = simulate_logs(shop, n, seed=7)
    assert log.n_impressions == n
    df = log.to_frame(shop)
    assert len(df) == n
    again = simulate_logs(shop, n, seed=7)
    assert np.array_equal(log.slates, again.slates)
    assert np.array_equal(log.clicks, again.clicks)
    assert not (log.purchases & ~log.clicks).any()
    assert ((df.propensity > 0) & (df.propensity <= 1)).all()
    assert np.allclose(df.revenue, df.price * df.purchase)


def test_simulate_logs_rejects_bad_size(shop):
    with pytest.raises(ValueError, match="multiple of slate_size"):
        simulate_logs(shop, 1005, seed=0)


def test_chunking_does_not_change_structure(shop):
    log = simulate_logs(shop, 5_000, seed=2, chunk_requests=64)
    # every shown item is one of the request's candidates, no duplicates in a slate
    for cands, slate in zip(log.requests.candidates[:50], log.slates[:50], strict=True):
        assert set(slate) <= set(cands) and len(set(slate)) == len(slate)


def test_logging_propensity_matches_empirical_frequency(shop):
    # fix one request, replay the logging policy many times, compare frequency of the
    # production top item at position 0 with the exact propensity
    cfg = shop.config
    log = simulate_logs(shop, 200_000, seed=11)
    explore = (log.slates != log.production).any(1)
    assert abs(explore.mean() - cfg.logging_epsilon * 1.0) < 0.01
    prop = logging_propensity(log.slates, log.production, cfg.logging_epsilon, cfg.n_candidates)
    assert np.allclose(prop, log.propensity)
    # in exploration rows each candidate shows up at position 0 with prob 1/C
    rows = np.flatnonzero(explore)
    hit = (log.requests.candidates[rows, 0] == log.slates[rows, 0]).mean()
    assert abs(hit - 1 / cfg.n_candidates) < 3 * np.sqrt(1 / cfg.n_candidates / len(rows))


def test_top_k_and_production(shop):
    req = sample_requests(shop, 20, seed=0)
    sc = production_scores(shop, req, seed=0)
    sl = top_k_candidates(sc, req.candidates, 5)
    idx = np.argsort(-sc, axis=1)[:, :5]
    assert np.array_equal(sl, np.take_along_axis(req.candidates, idx, 1))
    with pytest.raises(ValueError, match="between 1 and"):
        top_k_candidates(sc, req.candidates, 999)


def test_true_policy_value_matches_simulation(shop):
    req = sample_requests(shop, 40_000, seed=9)
    slates = req.candidates[:, :10]
    truth = true_policy_value(shop, req.users, slates)
    c, p = simulate_outcomes(shop, req.users, slates, seed=1)
    rev = (p * shop.price[slates]).mean()
    assert abs(c.mean() - truth["ctr"]) < 4 * np.sqrt(truth["ctr"] / c.size)
    assert abs(rev - truth["revenue_per_impression"]) < 0.05 * truth["revenue_per_impression"]
    assert 0 < truth["cvr"] < 1


def test_explored_visits_follow_epsilon(shop):
    log = simulate_logs(shop, 200_000, seed=3)
    explored = log.explored
    assert explored.shape == (len(log.requests),)
    assert abs(explored.mean() - shop.config.logging_epsilon) < 0.02
    # production visits show the production slate, explored ones a different one
    assert (log.slates[~explored] == log.production[~explored]).all()


def test_stage_seeds_are_independent_of_other_stages():
    from recsys_lib.business.shop import stage_seeds

    a = stage_seeds(42, ["world", "log", "pilot"])
    b = stage_seeds(42, ["world", "log", "pilot", "extra"])
    assert a == {k: b[k] for k in a}  # appending a stage keeps the others
    assert len(set(a.values())) == 3 and stage_seeds(43, ["world"])["world"] != a["world"]
    seq = np.random.SeedSequence(42).spawn(2)[1]
    assert a["log"] == int(seq.generate_state(1)[0])
    with pytest.raises(ValueError, match="distinct"):
        stage_seeds(0, ["a", "a"])


def test_visit_outcomes_sum_each_visit_and_split_arms_by_assignment():
    from recsys_lib.business import abtest
    from recsys_lib.business.shop import visit_outcomes

    shop = make_shop(ShopConfig(n_users=50, n_items=40, n_candidates=10, slate_size=4), seed=0)
    users = np.arange(6)
    slates = np.tile(np.arange(4), (6, 1))
    clicks, buys, per_visit = visit_outcomes(shop, users, slates, seed=3)
    c, p = simulate_outcomes(shop, users, slates, seed=3)
    assert np.array_equal(clicks, c) and np.array_equal(buys, p)
    for v in range(6):  # by hand, visit by visit
        assert per_visit["clicks_per_visit"][v] == c[v].sum()
        assert per_visit["revenue_per_visit"][v] == pytest.approx(shop.price[slates[v]][p[v]].sum())
        assert per_visit["margin_per_visit"][v] == pytest.approx(shop.margin[slates[v]][p[v]].sum())
    treated = np.array([True, False, False, True, False, True])
    arms = abtest.split_arms({"x": np.arange(6.0)}, treated)
    assert arms["x"][0].tolist() == [1.0, 2.0, 4.0] and arms["x"][1].tolist() == [0.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="shape"):
        abtest.split_arms({"clicks": clicks}, treated)  # a per-impression matrix, not per visit
    with pytest.raises(ValueError, match="boolean"):
        abtest.split_arms({"x": np.arange(6.0)}, treated.astype(int))
