"""A/B testing: sample-size planning, tests for proportions and heavy-tailed means,
guardrails, and a simulation of the peeking problem.

Convention: arm ``a`` is control, arm ``b`` is treatment; differences are ``b - a`` and the
relative lift is ``(b - a) / a``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from recsys_lib.validation import (
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Interval,
    Satisfies,
    check_params,
)

SD = (POSITIVE, "a standard deviation is a finite number > 0; estimate it from a pilot")
EFFECT = Satisfies(lambda x: np.isfinite(float(x)) and x != 0, "a finite non-zero number", 0.0)


@dataclass(frozen=True)
class TestResult:
    """Outcome of a two-sample comparison.

    statistic: z or t; p_value: two-sided unless stated; diff: mean_b - mean_a with its
    (1 - alpha) interval [ci_low, ci_high]; lift: diff / mean_a with interval
    [lift_low, lift_high].
    """

    statistic: float
    p_value: float
    diff: float
    ci_low: float
    ci_high: float
    lift: float
    lift_low: float
    lift_high: float

    def significant(self, alpha: float = 0.05) -> bool:
        """True when p_value < alpha."""
        return bool(self.p_value < alpha)


def _check_alpha_power(alpha: float, power: float | None = None) -> None:
    if isinstance(alpha, bool) or (power is not None and isinstance(power, bool)):
        raise ValueError(f"alpha and power must be numbers in (0, 1), got {alpha!r}, {power!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    if power is not None and not 0 < power < 1:
        raise ValueError(f"power={power} must be in (0, 1)")


def _finite_arms(
    name: str, a: ArrayLike, b: ArrayLike, min_units: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Both arms as float arrays; refuses NaN/inf and arms with fewer than ``min_units``."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if min(a.size, b.size) < min_units:
        raise ValueError(f"{name}: each arm needs >= {min_units} units, got {a.size} and {b.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{name}: the samples hold NaN or infinite values; drop or fix them.")
    return a, b


def sample_size_proportions(
    p_baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    relative: bool = True,
    two_sided: bool = True,
) -> int:
    """Units per arm to detect a change of ``mde`` in a proportion (normal approximation)::

        n = (z_a * sqrt(2 pbar (1 - pbar)) + z_b * sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2

    ``mde`` is relative to ``p_baseline`` when ``relative`` (0.05 = +5%), else absolute.
    """
    _check_alpha_power(alpha, power)
    p1 = p_baseline
    p2 = p1 * (1 + mde) if relative else p1 + mde
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError(
            f"need 0 < p_baseline={p1} < 1 and a non-zero effect giving 0 < p2={p2} < 1"
        )
    za = stats.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha)
    zb = stats.norm.ppf(power)
    pbar = (p1 + p2) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return int(math.ceil(num**2 / (p2 - p1) ** 2))


def sample_size_means(
    sd: float, mde: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True
) -> int:
    """Units per arm to detect an absolute mean difference ``mde`` when each arm has standard
    deviation ``sd``: ``n = 2 (z_a + z_b)^2 sd^2 / mde^2`` (normal approximation)."""
    _check_alpha_power(alpha, power)
    check_params("sample_size_means", {"sd": (SD[0], sd), "mde": (EFFECT, mde)},
                 hints={"sd": SD[1]})  # fmt: skip
    za = stats.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha)
    zb = stats.norm.ppf(power)
    return int(math.ceil(2 * (za + zb) ** 2 * sd**2 / mde**2))


def sample_size_noninferiority(
    sd: float,
    mean: float,
    max_relative_drop: float,
    expected_change: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Units per arm for the one-sided non-inferiority test of :func:`noninferiority_test`
    to show, with probability ``power``, that the treatment loses less than
    ``max_relative_drop`` of the control's ``mean``, when its true relative change is
    ``expected_change`` (0 = no change; a planned small loss such as -0.01 needs more)::

        n = (z_{1-alpha} + z_power)^2 sd^2 (1 + c^2) / (mean (1 + expected_change - c))^2

    with ``c = 1 - max_relative_drop`` and the same ``sd`` per unit in both arms. A change at
    or beyond the margin cannot be shown non-inferior at any size: that is an error.
    """
    _check_alpha_power(alpha, power)
    check_params("sample_size_noninferiority", {"sd": (SD[0], sd), "mean": (EFFECT, mean),
                 "max_relative_drop": (Interval(float, 0, 1, closed="left"), max_relative_drop),
                 "expected_change": (Interval(float, -1, None), expected_change)},
                 hints={"sd": SD[1]})  # fmt: skip
    c = 1 - max_relative_drop
    gap = 1 + expected_change - c
    if gap <= 0:
        raise ValueError(
            f"expected_change={expected_change:+.2%} is at or beyond the allowed drop "
            f"-{max_relative_drop:.2%}: no sample size can show non-inferiority; choose a policy "
            "whose expected loss is inside the margin, or widen the margin"
        )
    za, zb = stats.norm.ppf(1 - alpha), stats.norm.ppf(power)
    return int(math.ceil((za + zb) ** 2 * sd**2 * (1 + c**2) / (mean * gap) ** 2))


SAMPLE_SIZE_GRID = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5)  # planned sizes: these times a power of 10


def round_up_sample_size(n: float, grid: tuple[float, ...] = SAMPLE_SIZE_GRID) -> int:
    """Round a planned sample size *up* to the next value ``m * 10^e`` with ``m`` in ``grid``.

    The default grid 1, 1.5, 2, 3, 5, 7.5 (x 10^e) over-provisions by at most 50%. A planned
    size comes from a pilot's noisy standard deviation; rounding to a coarse grid makes the
    plan (and every random draw that depends on it) stable when the pilot changes slightly,
    e.g. 1,796 and 1,938 both give 2,000. ``grid`` must hold increasing values in [1, 10).
    """
    g = tuple(float(m) for m in grid)
    if not g or g[0] != 1.0 or bool((np.diff(g) <= 0).any()) or g[-1] >= 10:
        raise ValueError(f"grid={grid} must start at 1 and increase strictly below 10")
    check_params("round_up_sample_size", {"n": (Interval(float, 1, None), n)},
                 hints={"n": "a planned number of units per arm"})  # fmt: skip
    e = 10 ** math.floor(math.log10(n))
    for m in (*g, 10.0):
        if m * e >= n - 1e-9 * e:
            return int(math.ceil(m * e - 1e-9 * e))
    raise AssertionError("unreachable: 10 * e >= n")  # pragma: no cover


def minimum_detectable_effect(
    sd: float, n_per_arm: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest absolute mean difference detectable with ``n_per_arm`` units per arm
    (two-sided), the inverse of :func:`sample_size_means`."""
    _check_alpha_power(alpha, power)
    check_params("minimum_detectable_effect", {"sd": (SD[0], sd),
                 "n_per_arm": (Interval(int, 2, None), n_per_arm)}, hints={"sd": SD[1]})  # fmt: skip
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float((za + zb) * sd * math.sqrt(2 / n_per_arm))


def two_proportion_ztest(x_a: int, n_a: int, x_b: int, n_b: int, alpha: float = 0.05) -> TestResult:
    """Pooled two-proportion z-test of ``x_b/n_b`` vs ``x_a/n_a`` (two-sided); the interval
    for the difference uses the unpooled Wald standard error, the lift interval the delta
    method on log(p_b / p_a)."""
    _check_alpha_power(alpha)
    check_params("two_proportion_ztest", {"x_a": (NON_NEGATIVE_INT, x_a), "n_a": (POSITIVE_INT, n_a),
                 "x_b": (NON_NEGATIVE_INT, x_b), "n_b": (POSITIVE_INT, n_b)})  # fmt: skip
    if min(n_a, n_b) <= 0 or not (0 <= x_a <= n_a and 0 <= x_b <= n_b):
        raise ValueError(f"need 0 <= x <= n and n > 0; got x_a={x_a}, n_a={n_a}, "
                         f"x_b={x_b}, n_b={n_b}")  # fmt: skip
    pa, pb = x_a / n_a, x_b / n_b
    pool = (x_a + x_b) / (n_a + n_b)
    se0 = math.sqrt(pool * (1 - pool) * (1 / n_a + 1 / n_b))
    z = (pb - pa) / se0 if se0 > 0 else 0.0
    p = float(2 * stats.norm.sf(abs(z)))
    se1 = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    q = stats.norm.ppf(1 - alpha / 2)
    diff = pb - pa
    if pa > 0 and pb > 0:
        se_log = math.sqrt((1 - pa) / x_a + (1 - pb) / x_b)
        lr = math.log(pb / pa)
        lift, lo, hi = pb / pa - 1, math.exp(lr - q * se_log) - 1, math.exp(lr + q * se_log) - 1
    else:
        lift = lo = hi = float("nan")
    return TestResult(z, p, diff, diff - q * se1, diff + q * se1, lift, lo, hi)


def welch_test(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> TestResult:
    """Welch's unequal-variance t-test of mean(b) vs mean(a), (n_a,), (n_b,) per-unit values.

    Robust enough for heavy-tailed revenue once samples are large (CLT); the lift interval uses
    the delta method for ``mean_b / mean_a - 1``.
    """
    _check_alpha_power(alpha)
    a, b = _finite_arms("welch_test", a, b)
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        raise ValueError(
            f"welch_test: both arms are constant (a = {ma:g} in all {a.size} units, b = {mb:g} "
            f"in all {b.size}), so there is no variance to test against; the t statistic is "
            "undefined. Compare the values directly, or collect more varied units."
        )
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    t = (mb - ma) / se
    p = float(2 * stats.t.sf(abs(t), df))
    q = stats.t.ppf(1 - alpha / 2, df)
    diff = mb - ma
    ratio = mb / ma if ma else float("nan")
    se_ratio = ratio * math.sqrt(va / ma**2 + vb / mb**2) if ma and mb else float("nan")
    return TestResult(
        float(t), p, float(diff), diff - q * se, diff + q * se,
        ratio - 1, ratio - 1 - q * se_ratio, ratio - 1 + q * se_ratio,
    )  # fmt: skip


def bootstrap_test(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> TestResult:
    """Percentile-bootstrap comparison of means for heavy-tailed per-unit values.

    Resamples each arm independently ``n_boot`` times. The p-value is the two-sided bootstrap
    p-value ``2 * min(P*(diff <= 0), P*(diff >= 0))``; the statistic is the observed diff / its
    bootstrap standard error.
    """
    _check_alpha_power(alpha)
    a, b = _finite_arms("bootstrap_test", a, b)
    check_params("bootstrap_test", {"n_boot": (POSITIVE_INT, n_boot), "seed": (SEED, seed)})
    if n_boot < 100:
        raise ValueError(f"bootstrap_test: n_boot={n_boot} must be >= 100.")
    if a.min() == a.max() and b.min() == b.max():
        raise ValueError(
            f"bootstrap_test: both arms are constant ({a[0]:g} and {b[0]:g}); every resample "
            "gives the same difference, so there is nothing to test."
        )
    rng = np.random.default_rng(seed)
    ma = np.empty(n_boot)
    mb = np.empty(n_boot)
    for s in range(0, n_boot, 200):  # chunks keep memory at 200 x n
        m = min(200, n_boot - s)
        ma[s : s + m] = a[rng.integers(0, a.size, (m, a.size))].mean(1)
        mb[s : s + m] = b[rng.integers(0, b.size, (m, b.size))].mean(1)
    d, lift = mb - ma, mb / ma - 1
    diff = b.mean() - a.mean()
    p = min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    llo, lhi = np.quantile(lift, [alpha / 2, 1 - alpha / 2])
    return TestResult(
        float(diff / d.std(ddof=1)), float(p), float(diff), float(lo), float(hi),
        float(b.mean() / a.mean() - 1), float(llo), float(lhi),
    )  # fmt: skip


def noninferiority_test(
    a: np.ndarray, b: np.ndarray, max_relative_drop: float, alpha: float = 0.05
) -> tuple[float, float]:
    """One-sided test of H0: mean_b <= (1 - max_relative_drop) * mean_a (treatment is worse
    than allowed) vs H1: it is not. Returns (z, p_value); small p = guardrail holds."""
    _check_alpha_power(alpha)
    a, b = _finite_arms("noninferiority_test", a, b)
    if not 0 <= max_relative_drop < 1:
        raise ValueError(f"max_relative_drop={max_relative_drop} must be in [0, 1)")
    c = 1 - max_relative_drop
    se = math.sqrt(b.var(ddof=1) / b.size + c**2 * a.var(ddof=1) / a.size)
    if se == 0.0:
        raise ValueError(
            "noninferiority_test: both arms are constant, so the z statistic is undefined; "
            "compare the values directly."
        )
    z = (b.mean() - c * a.mean()) / se
    return float(z), float(stats.norm.sf(z))


def guardrail_check(
    metrics: Mapping[str, tuple[np.ndarray, np.ndarray]],
    max_relative_drop: Mapping[str, float],
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Check guardrail metrics against an allowed relative drop each (higher is better).

    metrics: name -> (control per-unit values, treatment per-unit values).
    Returns one row per metric: control, treatment, lift, z, ``p_noninferior`` (small = the
    drop is shown to be smaller than allowed), ``p_harm`` = 1 - p_noninferior (small = the
    drop is shown to be larger than allowed), ``noninferior`` (p_noninferior < alpha) and
    ``passed`` = not significantly harmful (p_harm >= alpha), the usual guardrail rule.
    """
    rows = []
    for name, drop in max_relative_drop.items():
        if name not in metrics:
            raise ValueError(f"guardrail {name!r} has no data; metrics has {sorted(metrics)}")
        a, b = metrics[name]
        z, p = noninferiority_test(a, b, drop, alpha)
        ma, mb = float(np.mean(a)), float(np.mean(b))
        rows.append(
            {"metric": name, "control": ma, "treatment": mb, "lift": mb / ma - 1,
             "max_drop": drop, "z": z, "p_noninferior": p, "p_harm": 1 - p,
             "noninferior": p < alpha, "passed": 1 - p >= alpha}
        )  # fmt: skip
    return pd.DataFrame(rows)


def split_arms(
    per_visit: Mapping[str, np.ndarray], treated: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (control values, treatment values) of each per-visit array, split by the boolean
    ``treated`` (n,): the shape :func:`ship_decision` and :func:`guardrail_check` read. Arrays
    of another length (e.g. per-impression matrices) are refused, naming them."""
    treated = np.asarray(treated)
    if treated.dtype != bool or treated.ndim != 1:
        raise ValueError(f"treated must be a 1-d boolean array, got dtype {treated.dtype} "
                         f"and shape {treated.shape}.")  # fmt: skip
    wrong = {k: np.shape(v) for k, v in per_visit.items() if np.shape(v) != treated.shape}
    if wrong:
        raise ValueError(f"per-visit arrays must have shape {treated.shape} like treated; "
                         f"got {wrong}.")  # fmt: skip
    return {k: (np.asarray(v)[~treated], np.asarray(v)[treated]) for k, v in per_visit.items()}


def ship_decision(
    revenue: tuple[np.ndarray, np.ndarray],
    guardrails: Mapping[str, tuple[np.ndarray, np.ndarray]],
    max_relative_drop: Mapping[str, float],
    must_show_noninferior: Iterable[str] = (),
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The A/B decision: ship when the revenue lift is significant and positive (Welch) and
    every guardrail holds.

    revenue: (control, treatment) per-unit values; guardrails / max_relative_drop as in
    :func:`guardrail_check`. A guardrail named in ``must_show_noninferior`` holds only when
    the data *show* its drop is within the allowed one (``noninferior``: the powered
    non-inferiority test); the others hold unless the data show a larger drop (``passed``).
    Returns ``ship`` (bool), ``revenue`` (the Welch :class:`TestResult`), ``guardrails`` (the
    :func:`guardrail_check` table with a ``holds`` column) and ``reasons``: one sentence per
    failed condition (empty when shipping).
    """
    strict = set(must_show_noninferior)
    unknown = strict - set(max_relative_drop)
    if unknown:
        raise ValueError(f"must_show_noninferior names {sorted(unknown)}, which have no allowed "
                         f"drop in max_relative_drop ({sorted(max_relative_drop)})")  # fmt: skip
    welch = welch_test(*revenue, alpha=alpha)
    guard = guardrail_check(guardrails, max_relative_drop, alpha=alpha)
    guard["holds"] = np.where(guard["metric"].isin(strict), guard["noninferior"], guard["passed"])
    reasons = []
    if not (welch.significant(alpha) and welch.lift > 0):
        reasons.append(f"the revenue lift {welch.lift:+.2%} is not significantly positive "
                       f"(p = {welch.p_value:.3g})")  # fmt: skip
    for row in guard[~guard["holds"]].itertuples():
        test = "not shown to be within" if row.metric in strict else "significantly beyond"
        reasons.append(f"{row.metric} changed {row.lift:+.2%}: {test} the allowed drop of "
                       f"{row.max_drop:.1%} (p_noninferior = {row.p_noninferior:.3g})")  # fmt: skip
    return {"ship": not reasons, "revenue": welch, "guardrails": guard, "reasons": reasons}


def simulate_peeking(
    n_experiments: int = 2000,
    n_per_arm: int = 10_000,
    n_looks: int = 20,
    p: float = 0.05,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """A/A simulation of the peeking problem.

    Both arms convert with probability ``p``; the analyst runs the pooled z-test after each of
    ``n_looks`` equally spaced looks and stops at the first p < alpha. Returns the false
    positive rate of the fixed-horizon test (only the last look) and of the peeking analyst.
    """
    _check_alpha_power(alpha)
    check_params("simulate_peeking", {"n_experiments": (POSITIVE_INT, n_experiments),
                 "n_per_arm": (POSITIVE_INT, n_per_arm), "n_looks": (POSITIVE_INT, n_looks),
                 "p": (Interval(float, 0, 1), p), "seed": (SEED, seed)})  # fmt: skip
    if n_looks < 1 or n_per_arm < n_looks:
        raise ValueError(f"need 1 <= n_looks <= n_per_arm, got {n_looks}, {n_per_arm}")
    rng = np.random.default_rng(seed)
    looks = np.linspace(n_per_arm / n_looks, n_per_arm, n_looks).astype(int)
    inc = np.diff(np.concatenate([[0], looks]))
    # conversions per look-interval are binomial; cumulative sums give counts at each look
    xa = rng.binomial(inc, p, size=(n_experiments, n_looks)).cumsum(1)
    xb = rng.binomial(inc, p, size=(n_experiments, n_looks)).cumsum(1)
    pool = (xa + xb) / (2 * looks)
    se = np.sqrt(pool * (1 - pool) * 2 / looks)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (xb - xa) / looks / se, 0.0)
    reject = 2 * stats.norm.sf(np.abs(z)) < alpha
    return {
        "fpr_fixed_horizon": float(reject[:, -1].mean()),
        "fpr_peeking": float(reject.any(1).mean()),
        "n_looks": n_looks,
        "alpha": alpha,
    }
