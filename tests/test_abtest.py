"""Tests for A/B testing helpers, checked against statsmodels/scipy and hand formulas."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest

from recsys_lib.business.abtest import (
    bootstrap_test,
    guardrail_check,
    minimum_detectable_effect,
    noninferiority_test,
    round_up_sample_size,
    sample_size_means,
    sample_size_proportions,
    simulate_peeking,
    two_proportion_ztest,
    welch_test,
)


def test_sample_size_proportions_hand_formula():
    p1, p2 = 0.10, 0.11
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    pbar = (p1 + p2) / 2
    expected = (
        za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / (p2 - p1) ** 2
    assert sample_size_proportions(0.10, 0.10) == math.ceil(expected)
    assert sample_size_proportions(0.10, 0.01, relative=False) == math.ceil(expected)
    # close to statsmodels' arcsine (Cohen's h) answer
    h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
    sm = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8)
    assert sample_size_proportions(0.10, 0.10) == pytest.approx(sm, rel=0.02)
    with pytest.raises(ValueError, match="p_baseline"):
        sample_size_proportions(0.9, 0.5)


def test_sample_size_means_matches_statsmodels_and_mde_inverts():
    sd, mde = 20.0, 1.5
    n = sample_size_means(sd, mde, alpha=0.05, power=0.9)
    sm = NormalIndPower().solve_power(effect_size=mde / sd, alpha=0.05, power=0.9)
    assert n == math.ceil(sm)
    assert minimum_detectable_effect(sd, n, power=0.9) == pytest.approx(mde, rel=0.01)
    assert sample_size_means(sd, mde, two_sided=False) < sample_size_means(sd, mde)
    with pytest.raises(ValueError, match="power"):
        sample_size_means(sd, mde, power=1.2)


def test_two_proportion_ztest_matches_statsmodels():
    x_a, n_a, x_b, n_b = 480, 10_000, 560, 10_200
    res = two_proportion_ztest(x_a, n_a, x_b, n_b)
    z, p = proportions_ztest([x_b, x_a], [n_b, n_a])
    assert res.statistic == pytest.approx(z)
    assert res.p_value == pytest.approx(p)
    pa, pb = x_a / n_a, x_b / n_b
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    assert res.ci_low == pytest.approx(pb - pa - 1.959964 * se, rel=1e-5)
    assert res.lift == pytest.approx(pb / pa - 1)
    assert res.lift_low < res.lift < res.lift_high
    with pytest.raises(ValueError, match="x_a"):
        two_proportion_ztest(20, 10, 1, 10)


def test_welch_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.lognormal(1.0, 1.5, 3_000)
    b = rng.lognormal(1.1, 1.5, 2_500)
    res = welch_test(a, b)
    t, p = stats.ttest_ind(b, a, equal_var=False)
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(p)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert res.ci_low == pytest.approx(ci.low) and res.ci_high == pytest.approx(ci.high)
    assert res.lift == pytest.approx(b.mean() / a.mean() - 1)


def test_bootstrap_close_to_welch_and_scipy():
    rng = np.random.default_rng(1)
    # heavy tailed revenue: mostly zero, log-normal when non-zero
    a = (rng.random(4_000) < 0.05) * rng.lognormal(3.5, 0.8, 4_000)
    b = (rng.random(4_000) < 0.06) * rng.lognormal(3.5, 0.8, 4_000)
    res = bootstrap_test(a, b, n_boot=2_000, seed=0)
    w = welch_test(a, b)
    assert res.diff == pytest.approx(b.mean() - a.mean())
    width = w.ci_high - w.ci_low
    assert abs(res.ci_low - w.ci_low) < 0.1 * width
    assert abs(res.ci_high - w.ci_high) < 0.1 * width
    ref = stats.bootstrap(
        (b, a),
        lambda x, y: x.mean() - y.mean(),
        n_resamples=2_000,
        method="percentile",
        random_state=0,
    )
    assert abs(res.ci_low - ref.confidence_interval.low) < 0.1 * width
    assert bootstrap_test(a, b, seed=3).p_value == pytest.approx(w.p_value, abs=0.05)


def test_bootstrap_deterministic():
    a, b = np.arange(50.0), np.arange(50.0) + 5
    assert bootstrap_test(a, b, seed=4) == bootstrap_test(a, b, seed=4)


def test_noninferiority_by_hand_and_guardrails():
    rng = np.random.default_rng(2)
    a = rng.normal(10, 2, 5_000)
    b = rng.normal(9.9, 2, 5_000)  # 1% drop
    z, p = noninferiority_test(a, b, max_relative_drop=0.03)
    c = 0.97
    z_hand = (b.mean() - c * a.mean()) / math.sqrt(
        b.var(ddof=1) / 5_000 + c**2 * a.var(ddof=1) / 5_000
    )
    assert z == pytest.approx(z_hand) and p == pytest.approx(stats.norm.sf(z_hand))
    df = guardrail_check(
        {"ctr": (a, b), "bad": (a, b * 0.9), "unclear": (a[:50], b[:50] * 0.97)},
        {"ctr": 0.03, "bad": 0.03, "unclear": 0.03},
    ).set_index("metric")
    assert df.loc["ctr", "passed"] and df.loc["ctr", "noninferior"]
    assert not df.loc["bad", "passed"] and not df.loc["bad", "noninferior"]
    # too little data to prove non-inferiority, but no evidence of harm either
    assert df.loc["unclear", "passed"] and not df.loc["unclear", "noninferior"]
    assert df.loc["ctr", "p_noninferior"] == pytest.approx(p)
    assert df.loc["bad", "p_harm"] == pytest.approx(1 - df.loc["bad", "p_noninferior"])
    with pytest.raises(ValueError, match="no data"):
        guardrail_check({"ctr": (a, b)}, {"latency": 0.1})


def test_peeking_inflates_false_positives():
    out = simulate_peeking(n_experiments=3_000, n_per_arm=5_000, n_looks=10, p=0.1, seed=0)
    se = math.sqrt(0.05 * 0.95 / 3_000)
    assert abs(out["fpr_fixed_horizon"] - 0.05) < 4 * se
    assert out["fpr_peeking"] > out["fpr_fixed_horizon"] + 0.05
    one = simulate_peeking(n_experiments=3_000, n_per_arm=5_000, n_looks=1, p=0.1, seed=0)
    assert one["fpr_peeking"] == one["fpr_fixed_horizon"]


def test_welch_refuses_constant_arms_and_nan():
    with pytest.raises(ValueError, match="both arms are constant"):
        welch_test(np.zeros(10), np.zeros(12))
    with pytest.raises(ValueError, match="NaN"):
        welch_test(np.array([1.0, np.nan, 2.0]), np.ones(3))
    # one constant arm is fine: the other's variance carries the test
    assert np.isfinite(welch_test(np.zeros(10), np.arange(10.0)).p_value)


def test_bootstrap_and_noninferiority_refuse_constant_arms():
    with pytest.raises(ValueError, match="constant"):
        bootstrap_test(np.ones(10), np.ones(10))
    with pytest.raises(ValueError, match="constant"):
        noninferiority_test(np.ones(10), np.ones(10), 0.05)
    with pytest.raises(ValueError, match="NaN"):
        noninferiority_test(np.ones(10), np.r_[np.ones(9), np.inf], 0.05)


def test_round_up_sample_size_grid():
    from recsys_lib.business.abtest import round_up_sample_size

    assert round_up_sample_size(1796) == round_up_sample_size(1938) == 2000
    assert [round_up_sample_size(n) for n in (1, 7, 11, 150, 151, 2001, 7501, 53_400)] == [
        1, 8, 15, 150, 200, 3000, 10_000, 75_000,
    ]  # fmt: skip
    assert round_up_sample_size(1796, grid=(1, 2, 5)) == 2000
    assert round_up_sample_size(2001, grid=(1, 2, 5)) == 5000
    with pytest.raises(ValueError, match="grid"):
        round_up_sample_size(10, grid=(2, 5))
    with pytest.raises(ValueError, match="n must be a finite number >= 1, got 0"):
        round_up_sample_size(0)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: minimum_detectable_effect(-1.0, 100), "sd must be a finite number > 0, got -1.0"),
        (lambda: minimum_detectable_effect(float("nan"), 100), "sd must be a finite number > 0"),
        (lambda: minimum_detectable_effect(float("inf"), 100), "sd must be a finite number > 0"),
        (lambda: minimum_detectable_effect(1.0, 2.5), "n_per_arm must be an integer >= 2"),
        (lambda: sample_size_means(float("nan"), 1.0), "sd must be a finite number > 0"),
        (lambda: sample_size_means(1.0, float("nan")), "mde must be a finite non-zero number"),
        (lambda: sample_size_means(-2.0, 1.0), "sd must be a finite number > 0"),
        (lambda: two_proportion_ztest(1.5, 10, 2, 10), "x_a must be an integer >= 0"),
        (lambda: two_proportion_ztest(1, 10, 2, 0), "n_b must be an integer >= 1"),
        (lambda: round_up_sample_size(float("inf")), "n must be a finite number >= 1"),
        (lambda: simulate_peeking(n_experiments=0), "n_experiments must be an integer >= 1"),
        (lambda: simulate_peeking(p=1.5), "p must be a finite number between 0 and 1"),
        (lambda: sample_size_means(1.0, 1.0, alpha=True), "alpha and power must be numbers"),
    ],
)
def test_impossible_statistics_inputs_are_refused(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_minimum_detectable_effect_hand_computed():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert minimum_detectable_effect(2.0, 50) == pytest.approx(z * 2.0 * math.sqrt(2 / 50))


def test_sample_size_noninferiority_formula_and_simulated_power():
    from recsys_lib.business.abtest import sample_size_noninferiority

    sd, mean, drop = 0.8, 0.7, 0.03
    c = 1 - drop
    za, zb = stats.norm.ppf(0.95), stats.norm.ppf(0.8)
    want = (za + zb) ** 2 * sd**2 * (1 + c**2) / (mean * (1 - c)) ** 2
    assert sample_size_noninferiority(sd, mean, drop) == int(np.ceil(want))
    # a planned loss of 1% leaves a gap of 2%: (3/2)^2 times as many units
    n_loss = sample_size_noninferiority(sd, mean, drop, expected_change=-0.01)
    assert n_loss == pytest.approx(want * 2.25, rel=1e-3)
    # simulated: at the planned size the one-sided test shows non-inferiority ~80% of the time
    rng = np.random.default_rng(0)
    n = sample_size_noninferiority(1.0, 5.0, 0.05, expected_change=-0.01)
    shown = [
        noninferiority_test(rng.normal(5.0, 1.0, n), rng.normal(4.95, 1.0, n), 0.05)[1] < 0.05
        for _ in range(400)
    ]
    assert 0.74 <= np.mean(shown) <= 0.86
    with pytest.raises(ValueError, match="beyond the allowed drop"):
        sample_size_noninferiority(sd, mean, drop, expected_change=-0.03)
    with pytest.raises(ValueError, match="max_relative_drop"):
        sample_size_noninferiority(sd, mean, 1.5)


def test_ship_decision_needs_revenue_and_every_guardrail():
    from recsys_lib.business.abtest import ship_decision

    rng = np.random.default_rng(0)
    n = 20_000
    rev_a, rev_b = rng.exponential(1.0, n), rng.exponential(1.2, n)  # +20% revenue
    clicks_a = rng.poisson(1.0, n).astype(float)
    same, lower = rng.poisson(1.0, n).astype(float), rng.poisson(0.95, n).astype(float)
    drops = {"clicks": 0.03}
    ok = ship_decision((rev_a, rev_b), {"clicks": (clicks_a, same)}, drops, ["clicks"])
    assert ok["ship"] and ok["reasons"] == [] and ok["guardrails"]["holds"].all()
    # a 5% click loss against a 3% budget: the lenient rule may pass it, the powered one not
    bad = ship_decision((rev_a, rev_b), {"clicks": (clicks_a, lower)}, drops, ["clicks"])
    assert not bad["ship"] and "clicks changed -" in bad["reasons"][0]
    assert "not shown to be within" in bad["reasons"][0]
    flat = ship_decision((rev_a, rev_a[::-1]), {"clicks": (clicks_a, same)}, drops)
    assert not flat["ship"] and "not significantly positive" in flat["reasons"][0]
    with pytest.raises(ValueError, match="must_show_noninferior"):
        ship_decision((rev_a, rev_b), {"clicks": (clicks_a, same)}, drops, ["margin"])
