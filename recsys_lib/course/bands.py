"""Regression bands with a reason: what each recorded metric is, and how it is checked.

An expected file maps notebook -> metric -> *spec*. Every spec says what kind of number it
guards and where its tolerance came from::

    {"kind": "deterministic", "value": 943, "rtol": 0, "reason": "a count"}
    {"kind": "stochastic", "value": 0.41, "atol": 0.12, "reason": "...",
     "spread": {"seeds": 20, "min": 0.31, "max": 0.50, "std": 0.05, "median": 0.40}}
    {"kind": "hardware", "relative_to": "text_ndcg@10_fp32", "atol": 0.02, "reason": "..."}
    {"kind": "property", "max": 0.05, "reason": "the A/B test must detect the lift"}

The checks a spec can carry (all of those present must hold):

* ``value`` with ``rtol``/``atol``: ``|got - value| <= max(rtol * |value|, atol)``; a string or
  bool value must match exactly;
* ``min`` / ``max``: bounds (a statistical property: a p-value below alpha, a lift above 0);
* ``relative_to`` with ``atol`` (and optional ``rtol``): compared with another metric of the
  same run, for numbers whose absolute value depends on the processor's float kernels.

Kinds:

* ``deterministic``: the same floats give the same value (counts, parameter choices);
* ``stochastic``: has sampling error; checked by a property, or by a band at least as wide as
  the spread measured over seeds (``spread``, written by :func:`measure_bands`);
* ``hardware``: depends on the processor (int8 kernels); compared within the run;
* ``property``: only bounds are checked.

Timings (:func:`is_timing_metric`) are recorded but never banded.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

KINDS = ("deterministic", "stochastic", "hardware", "property")

#: Metric-name endings that mark timings (and ratios of timings): recorded, never banded
#: (speed depends on the machine and its load; speed targets live in benchmarks/).
TIMING_SUFFIXES = ("_s", "_seconds", "_per_second", "_ms", "_speedup")

#: Head-room added to a measured seed spread: a finite sample of seeds rarely shows the extremes.
SPREAD_MARGIN = 1.25


_TIMING_WORD = re.compile(r"(^|_)(s|ms|seconds)(_|$)|per_second|speedup")


def is_timing_metric(name: str) -> bool:
    """True for names that record a duration, a rate or a speed-up (never banded).

    Ends with one of :data:`TIMING_SUFFIXES`, or holds ``_s_``, ``_ms_``, ``_seconds_``,
    ``per_second`` or ``speedup`` anywhere (``total_s_10000``, ``sweep_total_s_p4``).
    """
    return name.endswith(TIMING_SUFFIXES) or _TIMING_WORD.search(name) is not None


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass
class CheckRow:
    """One metric's verdict: ``ok``, ``REGRESSION``, ``MISSING`` or ``CHANGED``."""

    metric: str
    expected: object
    got: object
    change: float | None
    verdict: str
    kind: str = "deterministic"
    detail: str = ""


def _tolerance(spec: dict, centre: float) -> float:
    return max(float(spec.get("rtol", 0.0)) * abs(centre), float(spec.get("atol", 0.0)))


def check_one(name: str, spec: dict, got: object, run: dict) -> CheckRow:
    """Check one recorded value ``got`` against ``spec``; ``run`` holds the same run's metrics."""
    kind = spec.get("kind", "deterministic")
    want = spec.get("value")
    if got is None:
        return CheckRow(name, want, None, None, "MISSING", kind, "not recorded by this run")
    if want is not None and not (_is_number(want) and _is_number(got)):
        verdict = "ok" if want == got else "CHANGED"
        return CheckRow(name, want, got, None, verdict, kind)
    if isinstance(got, bool) and want is None:
        got = int(got)  # a recorded yes/no checked by bounds (e.g. "the interval covers the truth")
    if not _is_number(got) or not math.isfinite(got):
        return CheckRow(name, want, got, None, "REGRESSION", kind, "not a finite number")
    failures = []
    change = None
    if want is not None and "relative_to" not in spec:
        change = (got - want) / abs(want) if want else got - want
        tolerance = _tolerance(spec, want)
        if abs(got - want) > tolerance:
            failures.append(f"|got - {want:.4g}| > {tolerance:.3g}")
    if "min" in spec and got < spec["min"]:
        failures.append(f"below min {spec['min']}")
    if "max" in spec and got > spec["max"]:
        failures.append(f"above max {spec['max']}")
    reference_name = spec.get("relative_to")
    if reference_name is not None:
        reference = run.get(reference_name)
        if not _is_number(reference):
            failures.append(f"reference {reference_name} not recorded")
        else:
            want = reference
            change = got - reference
            tolerance = _tolerance(spec, reference)
            if abs(got - reference) > tolerance:
                failures.append(f"|got - {reference_name}| > {tolerance:.3g}")
    verdict = "REGRESSION" if failures else "ok"
    return CheckRow(name, want, got, change, verdict, kind, "; ".join(failures))


def check_metrics(expected: dict, metrics: dict) -> list[CheckRow]:
    """Compare recorded metrics (notebook -> name -> value) with expected specs, one row each."""
    rows = []
    for notebook, specs in expected.items():
        run = metrics.get(notebook, {})
        for name, spec in specs.items():
            row = check_one(name, spec, run.get(name), run)
            row.metric = f"{notebook}/{name}"
            rows.append(row)
    return rows


def format_check(rows: list[CheckRow]) -> str:
    """The comparison as a fixed-width table."""

    def fmt(x: object) -> str:
        return "-" if x is None else (f"{x:.4g}" if _is_number(x) else str(x))

    header = f"{'metric':<58} {'kind':<13} {'expected':>10} {'got':>10} {'change':>8}  verdict"
    body = []
    for r in rows:
        change = "-" if r.change is None else f"{r.change:+.1%}"
        line = (
            f"{r.metric:<58} {r.kind:<13} {fmt(r.expected):>10} {fmt(r.got):>10} "
            f"{change:>8}  {r.verdict}"
        )
        body.append(line + (f" ({r.detail})" if r.detail and r.verdict != "ok" else ""))
    return "\n".join([header, *body])


def validate_expected(expected: dict) -> list[str]:
    """Problems with an expected file's specs (empty when every band has a reason).

    Each spec needs a known ``kind``, a ``reason`` and at least one check; timings may not be
    banded; a ``stochastic`` band needs a check of a property (``min``/``max``) or a measured
    ``spread`` that its tolerance covers (:func:`band_covers_spread`).
    """
    problems = []
    for notebook, specs in expected.items():
        for name, spec in specs.items():
            where = f"{notebook}/{name}"
            kind = spec.get("kind")
            if kind not in KINDS:
                problems.append(f"{where}: kind {kind!r} is not one of {KINDS}")
            if not str(spec.get("reason", "")).strip():
                problems.append(f"{where}: no reason says where the tolerance came from")
            if not any(k in spec for k in ("value", "min", "max", "relative_to")):
                problems.append(f"{where}: no check (value, min, max or relative_to)")
            if is_timing_metric(name):
                problems.append(f"{where}: timings are recorded, never banded")
            if "relative_to" in spec and "atol" not in spec and "rtol" not in spec:
                problems.append(f"{where}: relative_to needs an atol or rtol")
            if kind == "stochastic" and "value" in spec and "relative_to" not in spec:
                if "spread" not in spec:
                    problems.append(f"{where}: a stochastic value band needs a measured spread")
                elif not band_covers_spread(spec):
                    problems.append(f"{where}: band is tighter than the measured seed spread")
    return problems


def band_covers_spread(spec: dict) -> bool:
    """True when the band around ``value`` contains every seed's value in ``spread``."""
    spread, value = spec["spread"], spec["value"]
    tolerance = _tolerance(spec, value)
    needed = max(abs(spread["max"] - value), abs(value - spread["min"]))
    return tolerance >= needed * (1 - 1e-9)


def spec_from_seeds(values: list[float], reference: float, seeds: int) -> dict:
    """A spec for one metric measured over ``seeds`` runs; ``reference`` is the default seed's.

    Integers that never move are ``deterministic`` and exact; floats that never move are
    ``deterministic`` with 1% slack for other processors' last digits; anything that moves is
    ``stochastic`` with a band of :data:`SPREAD_MARGIN` x the widest distance from the reference
    to a seed's value.
    """
    low, high = min(values), max(values)
    if high - low <= 1e-12 * max(1.0, abs(high)):
        if all(float(v).is_integer() for v in values):
            return {
                "kind": "deterministic",
                "value": reference,
                "rtol": 0.0,
                "reason": f"identical integer over {seeds} seeds",
            }
        return {
            "kind": "deterministic",
            "value": reference,
            "rtol": 0.01,
            "atol": 1e-6,
            "reason": f"identical over {seeds} seeds; 1% allows other processors' float kernels",
        }
    width = max(abs(high - reference), abs(reference - low)) * SPREAD_MARGIN
    return {
        "kind": "stochastic",
        "value": reference,
        "rtol": 0.0,
        "atol": float(f"{width:.4g}") * 1.0001,
        "reason": (
            f"measured over {seeds} seeds: the band covers every seed's value "
            f"x{SPREAD_MARGIN} ({seeds}-seed spread, not a guess)"
        ),
        "spread": {
            "seeds": seeds,
            "min": low,
            "max": high,
            "std": statistics.pstdev(values),
            "median": statistics.median(values),
        },
    }


def merge_measured(specs: dict, runs: list[dict], reference: dict, seeds: int) -> dict:
    """Update one notebook's specs from runs over seeds (the band tool's core; pure).

    Specs of kind ``property`` or ``hardware``, or with ``relative_to``, are kept as they are
    (they check a property, not a stored value); the spread is attached for the record. Every
    other numeric, non-timing metric is re-derived by :func:`spec_from_seeds`; a spec with a
    hand-set tolerance wider than the measured one keeps the wider tolerance.
    """
    updated: dict = {}
    names = list(specs) + [n for n in reference if n not in specs]
    for name in names:
        values = [r[name] for r in runs if _is_number(r.get(name))]
        spec = specs.get(name)
        if is_timing_metric(name) or not _is_number(reference.get(name)) or not values:
            if spec is not None:
                updated[name] = spec
            continue
        measured = spec_from_seeds(values, reference[name], seeds)
        if spec is not None and (
            spec.get("kind") in ("property", "hardware") or "relative_to" in spec
        ):
            updated[name] = {**spec, "spread": measured.get("spread", spec.get("spread"))}
            if "spread" not in measured:
                updated[name].pop("spread", None)
            continue
        if spec is not None and "value" in spec and measured["kind"] == "stochastic":
            old = {**spec, "value": reference[name]}
            if _tolerance(old, reference[name]) > _tolerance(measured, reference[name]):
                measured["rtol"], measured["atol"] = old.get("rtol", 0.0), old.get("atol", 0.0)
                measured["reason"] += "; a wider hand-set band was kept"
        updated[name] = measured
    return updated


def measure_bands(
    run_seed: Callable[[int], dict],
    specs: dict,
    seeds: Iterable[int],
    reference_seed: int,
) -> dict:
    """Run ``run_seed(seed) -> metrics`` for every seed and return updated specs.

    ``reference_seed`` (the notebook's default) must be among ``seeds``: its values are the
    stored ``value``\\ s, and the others give the spread.
    """
    seeds = list(seeds)
    if reference_seed not in seeds:
        raise ValueError(f"reference seed {reference_seed} is not among the seeds {seeds}.")
    runs = {seed: run_seed(seed) for seed in seeds}
    return merge_measured(specs, list(runs.values()), runs[reference_seed], len(seeds))


def update_expected(expected: dict, metrics: dict, default_rtol: float = 0.05) -> dict:
    """Rewrite stored values from the current metrics, keeping each spec's tolerance and kind.

    A re-centred ``stochastic`` band is widened, if needed, to keep covering its measured
    spread (a band is never tighter than the seeds showed). New numeric metrics get a
    ``stochastic`` placeholder band of ``default_rtol`` whose reason says it is unmeasured (run
    the ``bands`` tool to measure it); timings never become bands.
    """
    updated = {}
    for notebook, specs in expected.items():
        current = metrics.get(notebook, {})
        updated[notebook] = {}
        for name, spec in specs.items():
            if name in current and "value" in spec and "relative_to" not in spec:
                spec = {**spec, "value": current[name]}
                if "spread" in spec and _is_number(spec["value"]) and not band_covers_spread(spec):
                    spread, value = spec["spread"], spec["value"]
                    needed = max(abs(spread["max"] - value), abs(value - spread["min"]))
                    spec["atol"] = float(f"{needed * SPREAD_MARGIN:.4g}") * 1.0001
                    spec["reason"] = spec.get("reason", "") + "; widened when re-centred"
                updated[notebook][name] = spec
            else:
                updated[notebook][name] = spec
        for name, value in current.items():
            if name not in updated[notebook] and _is_number(value) and not is_timing_metric(name):
                updated[notebook][name] = {
                    "kind": "stochastic",
                    "value": value,
                    "rtol": default_rtol,
                    "reason": "placeholder: not yet measured over seeds (run the bands tool)",
                }
    return updated


def read_expected(path: Path) -> dict:
    """An expected file, with a clear error when it is not valid JSON of the right shape."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or regenerate it.") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(
            f"{path} must map notebook -> metric -> spec (see recsys_lib.course.bands)."
        )
    return data
