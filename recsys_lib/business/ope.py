"""Off-policy evaluation of ranking policies on logged data: IPS, self-normalised IPS and
doubly robust (DR) estimates.

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

from recsys_lib.validation import POSITIVE, check_array, check_params


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
    return np.asarray((t == lg).astype(float))


def _weights(target_prob: np.ndarray, logging_prob: np.ndarray, clip: float | None) -> np.ndarray:
    check_params("IPS", {"clip": ([None, POSITIVE], clip)})
    tp = check_array("target_prob", target_prob, low=0, high=1, hint="pass probabilities")
    lp = check_array("logging_prob", logging_prob, low=0, high=1, low_open=True,
                     hint="IPS needs every logged action to have a logging propensity in (0, 1]; "
                     "log the propensity at serving time")  # fmt: skip
    if tp.shape != lp.shape:
        raise ValueError(f"target_prob {tp.shape} and logging_prob {lp.shape} must match")
    w = tp / lp
    return np.asarray(np.minimum(w, clip) if clip is not None else w)


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[:, None] if x.ndim == 1 else x


def _checked_inputs(
    rewards: np.ndarray,
    target_prob: np.ndarray,
    logging_prob: np.ndarray,
    alpha: float,
    clip: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rewards and importance weights as matching (n, K) arrays, after argument checks."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    r = _as_2d(check_array("rewards", rewards))
    w = _as_2d(_weights(target_prob, logging_prob, clip))
    if r.shape != w.shape:
        raise ValueError(f"rewards {r.shape} must match the propensity arrays {w.shape}")
    return r, w


def _require_requests(n: int) -> None:
    if n < 2:
        raise ValueError(f"need at least 2 requests for a standard error, got {n}")


def _normal_estimate(value: float, se: float, n: int, alpha: float) -> Estimate:
    """``value`` with its normal (1 - alpha) interval from standard error ``se``."""
    z = stats.norm.ppf(1 - alpha / 2)
    return Estimate(value, se, value - z * se, value + z * se, n)


def _mean_estimate(per_request: np.ndarray, alpha: float) -> Estimate:
    """Mean of i.i.d. per-request values (n,) with its normal (1 - alpha) interval."""
    n = len(per_request)
    _require_requests(n)
    se = float(per_request.std(ddof=1) / np.sqrt(n))
    return _normal_estimate(float(per_request.mean()), se, n, alpha)


def mean_estimate(per_request: np.ndarray, alpha: float = 0.05) -> Estimate:
    """Mean of i.i.d. per-request values (n,), e.g. :func:`pbm_values`, with its normal
    (1 - alpha) interval from the standard error over requests."""
    values = check_array("per_request", per_request, ndim=1)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    return _mean_estimate(values, alpha)


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
    return _mean_estimate((w * r).mean(axis=1), alpha)


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
    _require_requests(n)
    if b.sum() <= 0:
        raise ValueError("all importance weights are zero: the target never agrees with the logs")
    v = float(a.sum() / b.sum())
    se = float(np.std(a - v * b, ddof=1) / np.sqrt(n) / b.mean())
    return _normal_estimate(v, se, n, alpha)


def dr_estimate(
    rewards: np.ndarray,
    target_prob: np.ndarray,
    logging_prob: np.ndarray,
    predicted_logged: np.ndarray,
    predicted_target: np.ndarray,
    alpha: float = 0.05,
    clip: float | None = None,
) -> Estimate:
    """Doubly robust estimate: a reward model's value of the target (the direct method) plus
    the importance-weighted residuals of the logged actions::

        V_DR = 1/n sum_r 1/K sum_k [ q(x_r, pi_k) + w_rk (y_rk - q(x_r, a_rk)) ]

    rewards, target_prob, logging_prob: as in :func:`ips_estimate`, (n,) or (n, K).
    predicted_logged: the model's expected reward of each *logged* action (same shape);
    predicted_target: its expected reward of what the target policy shows there (same shape).
    Unbiased when the propensities are right, whatever the model; lower variance than IPS when
    the model is good (the residuals are small). With a zero model it equals IPS. The normal
    interval uses the standard error of the per-request averages (Dudik, Langford & Li 2011).
    """
    r, w = _checked_inputs(rewards, target_prob, logging_prob, alpha, clip)
    q_log = _as_2d(check_array("predicted_logged", predicted_logged))
    q_tgt = _as_2d(check_array("predicted_target", predicted_target))
    if q_log.shape != r.shape or q_tgt.shape != r.shape:
        raise ValueError(
            f"predicted_logged {q_log.shape} and predicted_target {q_tgt.shape} must match "
            f"rewards {r.shape}"
        )
    return _mean_estimate((q_tgt + w * (r - q_log)).mean(axis=1), alpha)


def position_bias_from_exploration(clicks: np.ndarray, explored: np.ndarray) -> np.ndarray:
    """Examination probability of each slot relative to the top one, ``CTR_k / CTR_0``,
    measured on visits whose slate was a uniformly random ordering (exploration traffic), where
    every item is equally likely at every slot so CTR differences are due to position alone.

    clicks (n, K) 0/1; explored (n,) bool. Returns (K,) with entry 0 equal to 1.
    """
    c = check_array("clicks", clicks, low=0, high=1)
    e = np.asarray(explored, dtype=bool)
    if c.ndim != 2 or e.shape != (c.shape[0],):
        raise ValueError(f"need clicks (n, K) and explored (n,); got {c.shape}, {e.shape}")
    rate = c[e].mean(axis=0) if e.any() else np.zeros(c.shape[1])
    if rate[0] <= 0 or (rate <= 0).any():
        raise ValueError(
            f"exploration traffic has no clicks at some slot ({int(e.sum())} explored visits); "
            "position bias cannot be measured: log more exploration traffic"
        )
    return np.asarray(rate / rate[0])


def pbm_values(
    rewards: np.ndarray,
    logged_slates: np.ndarray,
    target_slates: np.ndarray,
    logging_prob: np.ndarray,
    position_bias: np.ndarray,
    predicted_logged: np.ndarray | None = None,
    predicted_target: np.ndarray | None = None,
) -> np.ndarray:
    """Per-request terms (n,) of the position-based estimate :func:`pbm_estimate`: their mean
    is the estimate, and two policies' terms on the same logged requests can be subtracted
    request by request (a paired comparison, see :func:`paired_difference`).

    Off-policy value of a slate policy under the position-based model (PBM): the reward of
    item i at slot k is ``b_k * v(x, i)``, an examination probability times an item value.

    Then one logged (item, slot j) tells about that item at *any* slot: the item-level
    estimate ``v(x, i) = 1/K sum_j 1[a_j = i] y_j / (b_j mu_j)`` is unbiased, and::

        V = 1/n sum_r 1/K sum_k [ b_k q(x_r, pi_k)
                                  + b_k sum_j 1[a_rj = pi_k] (y_rj - b_j q(x_r, a_rj)) / (K b_j mu_rj) ]

    a doubly robust form (Li et al. 2018, "Offline evaluation of ranking policies with click
    models"; DR after Dudik et al. 2011). It uses every logged slot where the target shows the
    item anywhere, not only the same slot, so its variance is far below item-position IPS.

    rewards, logged_slates, target_slates, logging_prob: (n, K) (``logging_prob`` = propensity
    of each logged item at its logged slot); position_bias (K,) with ``b_0 = 1`` (e.g.
    :func:`position_bias_from_exploration`). predicted_logged / predicted_target: (n, K) a
    model's expected reward of each logged / target item *at the top slot*; None = 0 (plain
    PBM-IPS). Unbiased for any model when the PBM and the propensities hold.
    """
    r = check_array("rewards", rewards)
    lg, tg = np.asarray(logged_slates), np.asarray(target_slates)
    mu = check_array("logging_prob", logging_prob, low=0, high=1, low_open=True)
    b = check_array("position_bias", position_bias, low=0, low_open=True)
    if not r.shape == lg.shape == tg.shape == mu.shape or r.ndim != 2:
        raise ValueError(f"rewards {r.shape}, logged_slates {lg.shape}, target_slates {tg.shape} "
                         f"and logging_prob {mu.shape} must all be the same (n, K)")  # fmt: skip
    if b.shape != (r.shape[1],) or (b <= 0).any():
        raise ValueError(f"position_bias must be (K,)=({r.shape[1]},) and positive, got {b}")
    if (mu <= 0).any():
        raise ValueError(f"logging_prob has {(mu <= 0).sum()} non-positive entries")
    zero = np.zeros_like(r)
    q_log = zero if predicted_logged is None else check_array("predicted_logged", predicted_logged)
    q_tgt = zero if predicted_target is None else check_array("predicted_target", predicted_target)
    if q_log.shape != r.shape or q_tgt.shape != r.shape:
        raise ValueError(f"predictions {q_log.shape}, {q_tgt.shape} must be {r.shape}")
    k = r.shape[1]
    item_value = (r - b * q_log) / (k * b * mu)  # (n, K): residual value of the logged item
    same = tg[:, :, None] == lg[:, None, :]  # (n, K target slots, K logged slots)
    correction = np.einsum("nkj,nj->nk", same, item_value)
    return np.asarray((b * (q_tgt + correction)).mean(axis=1))


def pbm_estimate(
    rewards: np.ndarray,
    logged_slates: np.ndarray,
    target_slates: np.ndarray,
    logging_prob: np.ndarray,
    position_bias: np.ndarray,
    predicted_logged: np.ndarray | None = None,
    predicted_target: np.ndarray | None = None,
    alpha: float = 0.05,
) -> Estimate:
    """The position-based doubly robust estimate with its normal (1 - alpha) interval over
    requests; arguments and model as in :func:`pbm_values`."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    values = pbm_values(rewards, logged_slates, target_slates, logging_prob, position_bias,
                        predicted_logged, predicted_target)  # fmt: skip
    return _mean_estimate(values, alpha)


def paired_difference(
    target: np.ndarray, reference: np.ndarray, alpha: float = 0.05, relative: bool = False
) -> Estimate:
    """Difference of two policies' values measured on the *same* requests, with its interval.

    target, reference: (n,) per-request values (e.g. :func:`pbm_values` of two policies on one
    log, or a policy's estimate and the logging policy's observed per-request reward). The
    standard error is that of the per-request differences, so noise the two share (the same
    visitors, the same lucky purchases) cancels instead of adding up. ``relative``: the
    relative change ``mean(target) / mean(reference) - 1`` with a delta-method interval
    (standard error of ``target - R * reference`` over ``mean(reference)``), else the
    difference of means.
    """
    t = check_array("target", target, ndim=1)
    r = check_array("reference", reference, ndim=1)
    if t.shape != r.shape:
        raise ValueError(f"target {t.shape} and reference {r.shape} must be the same requests (n,)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    _require_requests(len(t))
    if not relative:
        return _mean_estimate(t - r, alpha)
    base = float(r.mean())
    if base == 0:
        raise ValueError("the reference's mean is 0, so a relative change is undefined")
    ratio = float(t.mean()) / base
    se = float((t - ratio * r).std(ddof=1) / np.sqrt(len(t)) / abs(base))
    return _normal_estimate(ratio - 1, se, len(t), alpha)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of importance weights (any shape)."""
    w = check_array("weights", weights, low=0, hint="importance weights are >= 0").ravel()
    s2 = float((w**2).sum())
    if s2 == 0:
        raise ValueError("all weights are zero; effective sample size is undefined")
    return float(w.sum() ** 2 / s2)
