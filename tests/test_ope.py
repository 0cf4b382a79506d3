"""Tests for off-policy evaluation."""

import numpy as np
import pytest
from scipy import stats

from recsys_lib.ope import (
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
    with pytest.raises(ValueError, match="non-positive"):
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
