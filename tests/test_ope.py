"""Tests for off-policy evaluation."""

import numpy as np
import pytest
from scipy import stats

from recsys_lib.business.ope import (
    Estimate,
    effective_sample_size,
    ips_estimate,
    item_position_match,
    snips_estimate,
)


def _bandit(n, seed):
    """3-armed bandit, logging probs mu, target deterministic arm 2; truth = means[2]."""
    rng = np.random.default_rng(seed)
    mu = np.array([0.5, 0.3, 0.2])
    means = np.array([0.1, 0.4, 0.7])
    a = rng.choice(3, size=n, p=mu)
    r = (rng.random(n) < means[a]).astype(float)
    target = (a == 2).astype(float)
    return r, target, mu[a], means[2]


def test_ips_unbiased_known_answer():
    ests = [ips_estimate(*_bandit(2_000, s)[:3]).value for s in range(300)]
    truth = 0.7
    se_mean = np.std(ests, ddof=1) / np.sqrt(len(ests))
    assert abs(np.mean(ests) - truth) < 4 * se_mean


def test_ips_value_and_ci_by_hand():
    r, t, mu, _ = _bandit(5_000, 0)
    est = ips_estimate(r, t, mu, alpha=0.1)
    x = t / mu * r
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert est.value == pytest.approx(x.mean())
    assert est.se == pytest.approx(se)
    assert est.ci_high - est.value == pytest.approx(stats.norm.ppf(0.95) * se)
    assert est.n == 5_000


def test_ips_coverage_bandit():
    cover = [ips_estimate(*_bandit(3_000, s)[:3]).covers(0.7) for s in range(200)]
    assert 0.90 <= np.mean(cover) <= 0.99


def test_snips_by_hand_and_shift_invariance():
    r, t, mu, _ = _bandit(5_000, 1)
    est = snips_estimate(r, t, mu)
    w = t / mu
    assert est.value == pytest.approx((w * r).sum() / w.sum())
    shifted = snips_estimate(r + 3.0, t, mu)
    assert shifted.value == pytest.approx(est.value + 3.0)
    assert shifted.se == pytest.approx(est.se)
    # close to the truth
    assert abs(est.value - 0.7) < 4 * est.se


def test_slate_shape_and_match():
    target = np.array([[1, 2, 3], [4, 5, 6]])
    logged = np.array([[1, 3, 2], [4, 5, 6]])
    m = item_position_match(target, logged)
    assert np.array_equal(m, [[1, 0, 0], [1, 1, 1]])
    rewards = np.array([[1.0, 0, 1], [0, 1, 0]])
    prop = np.full((2, 3), 0.5)
    est = ips_estimate(rewards, m, prop)
    per_req = (m / prop * rewards).mean(1)
    assert est.value == pytest.approx(per_req.mean())
    with pytest.raises(ValueError, match="must match"):
        item_position_match(target, logged[:, :2])


def test_clipping_and_errors():
    r, t, mu, _ = _bandit(1_000, 2)
    clipped = ips_estimate(r, t, mu, clip=2.0)
    assert clipped.value <= ips_estimate(r, t, mu).value
    with pytest.raises(
        ValueError, match=r"logging_prob must hold only values that are finite and > 0 and <= 1"
    ):
        ips_estimate(r, t, np.zeros_like(mu))
    with pytest.raises(ValueError, match="alpha"):
        snips_estimate(r, t, mu, alpha=1.5)


def test_estimate_covers_and_ess():
    e = Estimate(1.0, 0.1, 0.8, 1.2, 10)
    assert e.covers(1.1) and not e.covers(1.3)
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.array([1.0, 0, 0, 0])) == pytest.approx(1)
    with pytest.raises(ValueError):
        effective_sample_size(np.zeros(3))


def test_dr_estimate_by_hand_and_reduces_to_ips():
    from recsys_lib.business.ope import dr_estimate

    r, t, mu, _ = _bandit(4_000, 3)
    zero = np.zeros_like(r)
    ips = ips_estimate(r, t, mu)
    assert dr_estimate(r, t, mu, zero, zero).value == pytest.approx(ips.value)
    q_log, q_tgt = np.full_like(r, 0.3), np.full_like(r, 0.6)
    x = q_tgt + t / mu * (r - q_log)
    est = dr_estimate(r, t, mu, q_log, q_tgt, alpha=0.1)
    assert est.value == pytest.approx(x.mean())
    assert est.se == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)))
    # the true mean of the target arm as the model: only noise is left, far less than IPS
    perfect = dr_estimate(r, t, mu, np.full_like(r, 0.7), np.full_like(r, 0.7))
    assert perfect.se < ips.se and abs(perfect.value - 0.7) < 4 * perfect.se
    with pytest.raises(ValueError, match="must match"):
        dr_estimate(r, t, mu, q_log[:-1], q_tgt)


def _pbm_logs(n, seed, eps=0.5):
    """Slates of K=2 from C=4 candidates, epsilon-greedy logging (production shows [0, 1]),
    clicks with P = b_k v_i; returns rewards, logged slates, propensities, b, v."""
    rng = np.random.default_rng(seed)
    v, b, c, k = np.array([0.5, 0.2, 0.9, 0.4]), np.array([1.0, 0.5]), 4, 2
    slates = np.tile([0, 1], (n, 1))
    explore = rng.random(n) < eps
    slates[explore] = np.argsort(rng.random((explore.sum(), c)), axis=1)[:, :k]
    mu = (1 - eps) * (slates == [0, 1]) + eps / c
    rewards = (rng.random((n, k)) < b * v[slates]).astype(float)
    return rewards, slates, mu, b, v


def test_pbm_estimate_by_hand():
    from recsys_lib.business.ope import pbm_estimate

    logged, target = np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]])
    mu, b = np.array([[0.5, 0.25], [0.5, 0.1]]), np.array([1.0, 0.5])
    rewards = np.array([[1.0, 0.0], [0.0, 1.0]])
    # visit 0: item 1 (logged at slot 0, y/(K b mu) = 1) is shown at slot 1 -> b_1 * 1 / K
    # visit 1: item 3 logged with y = 0; item 5 was never logged -> 0
    assert pbm_estimate(rewards, logged, target, mu, b).value == pytest.approx(0.125)
    # a model that predicts the rewards exactly leaves only the direct method
    q = rewards / b
    direct = pbm_estimate(rewards, logged, logged, mu, b, q, q)
    assert direct.value == pytest.approx(((b * q).mean(1)).mean())
    with pytest.raises(ValueError, match="same"):
        pbm_estimate(rewards, logged, target[:, :1], mu, b)
    with pytest.raises(ValueError, match="position_bias"):
        pbm_estimate(rewards, logged, target, mu, np.array([1.0, 0.0]))


def test_pbm_estimate_unbiased_and_tighter_than_item_position_ips():
    from recsys_lib.business.ope import pbm_estimate

    target = np.array([2, 0])  # item 2 on top, item 0 second
    errors, widths = [], []
    for seed in range(60):
        rewards, slates, mu, b, v = _pbm_logs(4_000, seed)
        truth = float((b * v[target]).mean())
        tgt = np.tile(target, (len(slates), 1))
        est = pbm_estimate(rewards, slates, tgt, mu, b)
        ips = ips_estimate(rewards, item_position_match(tgt, slates), mu)
        errors.append(est.value - truth)
        widths.append(est.se / ips.se)
    errors = np.array(errors)
    assert abs(errors.mean()) < 4 * errors.std(ddof=1) / np.sqrt(len(errors))
    assert np.mean(widths) < 0.9  # every logged slot counts, not only the same slot


def test_position_bias_from_exploration():
    from recsys_lib.business.ope import position_bias_from_exploration

    clicks = np.array([[1, 0], [1, 1], [0, 0], [1, 1]])
    explored = np.array([True, True, False, False])
    np.testing.assert_allclose(position_bias_from_exploration(clicks, explored), [1.0, 0.5])
    rewards, slates, mu, b, _ = _pbm_logs(200_000, 0, eps=1.0)  # all exploration
    est = position_bias_from_exploration(rewards, np.ones(len(rewards), bool))
    np.testing.assert_allclose(est, b, atol=0.02)
    with pytest.raises(ValueError, match="no clicks"):
        position_bias_from_exploration(clicks, np.array([False, False, True, False]))


R, T, MU = np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.5, 0.25])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"logging_prob": np.array([0.5, -0.5, 0.25])}, "logging_prob must hold only values"),
        ({"logging_prob": np.array([0.5, np.nan, 0.25])}, "logging_prob must hold only values"),
        ({"logging_prob": np.array([0.5, 1.5, 0.25])}, "logging_prob must hold only values"),
        ({"target_prob": np.array([1.0, -1.0, 1.0])}, "target_prob must hold only values"),
        ({"target_prob": np.array([1.0, np.nan, 1.0])}, "target_prob must hold only values"),
        ({"rewards": np.array([1.0, np.inf, 1.0])}, "rewards must hold only values"),
        ({"clip": 0.0}, "clip must be"),
        ({"clip": float("nan")}, "clip must be"),
    ],
)
def test_ips_refuses_propensities_outside_0_1_and_non_finite_inputs(kwargs, pattern):
    args = {"rewards": R, "target_prob": T, "logging_prob": MU, **kwargs}
    for estimator in (ips_estimate, snips_estimate):
        with pytest.raises(ValueError, match=pattern):
            estimator(**args)


def test_ips_hand_computed():
    # weights 2, 0, 4; rewards 1, 0, 1 -> per-request 2, 0, 4, mean 2
    assert ips_estimate(R, T, MU).value == pytest.approx(2.0)


def test_effective_sample_size_refuses_negative_or_nan_weights():
    for bad in ([1.0, -1.0], [1.0, np.nan]):
        with pytest.raises(ValueError, match="weights must hold only values"):
            effective_sample_size(np.array(bad))


def test_pbm_values_average_to_the_estimate_and_pair_by_request():
    from recsys_lib.business.ope import paired_difference, pbm_estimate, pbm_values

    rng = np.random.default_rng(0)
    n, k = 400, 3
    logged = np.stack([rng.permutation(6)[:k] for _ in range(n)])
    target = np.stack([rng.permutation(6)[:k] for _ in range(n)])
    mu = np.full((n, k), 1 / 6)
    y = (rng.random((n, k)) < 0.3).astype(float)
    b = np.array([1.0, 0.6, 0.4])
    v = pbm_values(y, logged, target, mu, b)
    assert v.shape == (n,)
    assert pbm_estimate(y, logged, target, mu, b).value == pytest.approx(v.mean())
    # paired: the shared per-request noise cancels; the difference's interval is by hand
    shared = rng.normal(0, 5, n)
    a, c = shared + rng.normal(1.0, 0.1, n), shared + rng.normal(0.0, 0.1, n)
    d = paired_difference(a, c)
    se = (a - c).std(ddof=1) / np.sqrt(n)
    assert d.value == pytest.approx((a - c).mean()) and d.se == pytest.approx(se)
    assert d.ci_high - d.ci_low < 0.05  # unpaired, the shared noise would make it ~1 wide
    rel = paired_difference(a + 10, c + 10, relative=True)
    ratio = (a + 10).mean() / (c + 10).mean()
    se_rel = ((a + 10) - ratio * (c + 10)).std(ddof=1) / np.sqrt(n) / (c + 10).mean()
    assert rel.value == pytest.approx(ratio - 1) and rel.se == pytest.approx(se_rel)
    with pytest.raises(ValueError, match="same requests"):
        paired_difference(a, c[:-1])
    with pytest.raises(ValueError, match="mean is 0"):
        paired_difference(a, np.r_[1.0, -1.0, np.zeros(n - 2)], relative=True)


def test_paired_relative_interval_covers_at_its_level():
    from recsys_lib.business.ope import paired_difference

    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(400):
        base = rng.poisson(0.7, 2000).astype(float)  # clicks per visit
        treat = base * 0 + rng.binomial(base.astype(int) + 1, 0.6)  # correlated with base
        truth = (0.6 * (0.7 + 1)) / 0.7 - 1
        covered += paired_difference(treat, base, relative=True).covers(truth)
    assert 0.92 <= covered / 400 <= 0.98


def test_mean_estimate_by_hand():
    from recsys_lib.business.ope import mean_estimate

    v = np.array([1.0, 2.0, 3.0, 6.0])
    e = mean_estimate(v, alpha=0.1)
    se = v.std(ddof=1) / 2
    assert e.value == 3.0 and e.se == pytest.approx(se)
    assert e.ci_high - e.ci_low == pytest.approx(2 * stats.norm.ppf(0.95) * se)
    with pytest.raises(ValueError, match="alpha"):
        mean_estimate(v, alpha=1.0)
