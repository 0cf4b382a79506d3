"""Off-policy evaluation of ranking policies on logged data: IPS and self-normalised IPS.

We use the item-position estimator: if a click depends only on (user, item, position) -- true in
the shop simulator -- then for a target policy pi and logging policy mu::

    V(pi) = E_x[ 1/K sum_k sum_i pi(i at k | x) r(x, i, k) ]
          = E_{x, slate ~ mu}[ 1/K sum_k  pi(a_k at k | x) / mu(a_k at k | x) * r_k ]

with ``a_k`` the logged item at position k. Requests are i.i.d., so confidence intervals use the
per-request averages (this respects correlation between positions of one request).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and two-sided (1 - alpha) normal interval."""

    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int

    def covers(self, truth: float) -> bool:
        """True if ``truth`` lies within [ci_low, ci_high]."""
        return bool(self.ci_low <= truth <= self.ci_high)


def item_position_match(target_slates: np.ndarray, logged_slates: np.ndarray) -> np.ndarray:
    """pi(logged item at its position) for a deterministic target: 1.0 where the target slate
    has the logged item at the same position, else 0.0; both (n, K) -> (n, K)."""
    t, lg = np.asarray(target_slates), np.asarray(logged_slates)
    if t.shape != lg.shape:
        raise ValueError(f"target_slates {t.shape} and logged_slates {lg.shape} must match")
    return (t == lg).astype(float)


def _weights(target_prob: np.ndarray, logging_prob: np.ndarray, clip: float | None) -> np.ndarray:
    tp, lp = np.asarray(target_prob, dtype=float), np.asarray(logging_prob, dtype=float)
    if tp.shape != lp.shape:
        raise ValueError(f"target_prob {tp.shape} and logging_prob {lp.shape} must match")
    if (lp <= 0).any():
        raise ValueError(
            f"logging_prob has {(lp <= 0).sum()} non-positive entries; IPS needs every logged "
            "action to have positive logging propensity"
        )
    w = tp / lp
    return np.minimum(w, clip) if clip is not None else w


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[:, None] if x.ndim == 1 else x


def _checked_inputs(rewards, target_prob, logging_prob, alpha: float, clip: float | None):
    """Rewards and importance weights as matching (n, K) arrays, after argument checks."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    r = _as_2d(rewards)
    w = _as_2d(_weights(target_prob, logging_prob, clip))
    if r.shape != w.shape:
        raise ValueError(f"rewards {r.shape} must match the propensity arrays {w.shape}")
    return r, w


def ips_estimate(
    rewards: np.ndarray,
    target_prob: np.ndarray,
    logging_prob: np.ndarray,
    alpha: float = 0.05,
    clip: float | None = None,
) -> Estimate:
    """Inverse-propensity-scored estimate of the target policy's mean reward per impression.

    rewards, target_prob, logging_prob: (n,) for bandits or (n, K) for slates (one row per
    i.i.d. request). ``clip`` caps the weights (adds bias, lowers variance). The CI is normal
    with the standard error of the per-request averages.
    """
    r, w = _checked_inputs(rewards, target_prob, logging_prob, alpha, clip)
    x = (w * r).mean(axis=1)
    n = len(x)
    if n < 2:
        raise ValueError(f"need at least 2 requests for a standard error, got {n}")
    v, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(n))
    z = stats.norm.ppf(1 - alpha / 2)
    return Estimate(v, se, v - z * se, v + z * se, n)


def snips_estimate(
    rewards: np.ndarray,
    target_prob: np.ndarray,
    logging_prob: np.ndarray,
    alpha: float = 0.05,
    clip: float | None = None,
) -> Estimate:
    """Self-normalised IPS: ``sum(w r) / sum(w)``; delta-method standard error.

    Same shapes as :func:`ips_estimate`. Slightly biased but usually much lower variance, and
    invariant to adding a constant to every reward.
    """
    r, w = _checked_inputs(rewards, target_prob, logging_prob, alpha, clip)
    a, b = (w * r).mean(axis=1), w.mean(axis=1)
    n = len(a)
    if n < 2:
        raise ValueError(f"need at least 2 requests for a standard error, got {n}")
    if b.sum() <= 0:
        raise ValueError("all importance weights are zero: the target never agrees with the logs")
    v = float(a.sum() / b.sum())
    se = float(np.std(a - v * b, ddof=1) / np.sqrt(n) / b.mean())
    z = stats.norm.ppf(1 - alpha / 2)
    return Estimate(v, se, v - z * se, v + z * se, n)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of importance weights (any shape)."""
    w = np.asarray(weights, dtype=float).ravel()
    s2 = float((w**2).sum())
    if s2 == 0:
        raise ValueError("all weights are zero; effective sample size is undefined")
    return float(w.sum() ** 2 / s2)
