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
from typing import Any, TypeGuard

KINDS = ("deterministic", "stochastic", "hardware", "property")

#: Metric-name endings that mark timings (and ratios of timings): recorded, never banded
#: (speed depends on the machine and its load; speed targets live in benchmarks/).
TIMING_SUFFIXES = ("_s", "_seconds", "_per_second", "_ms", "_speedup")

#: Head-room added to a measured seed spread: a finite sample of seeds rarely shows the extremes.
SPREAD_MARGIN = 1.25
#: Head-room added to the distance the kernel-variation configurations moved a value
#: (recsys_lib.course.kernels): the matrix samples a few of the code paths other processors run,
#: not all of them, and a processor may combine several of those differences at once.
KERNEL_MARGIN = 2.0
#: The narrowest relative band of a value that only the kernels move: a movement of 1e-9
#: across the configurations says the value is stable, not that its band may be 2e-9 wide.
HARDWARE_FLOOR = 0.01
#: Relative difference below which two measured values count as the same float.
_SAME = 1e-12
#: Name of the configuration that changes nothing (kept here to spare an import).
NATIVE_KERNELS = "native"


_TIMING_WORD = re.compile(r"(^|_)(s|ms|seconds)(_|$)|per_second|speedup")


def is_timing_metric(name: str) -> bool:
    """True for names that record a duration, a rate or a speed-up (never banded).

    Ends with one of :data:`TIMING_SUFFIXES`, or holds ``_s_``, ``_ms_``, ``_seconds_``,
    ``per_second`` or ``speedup`` anywhere (``total_s_10000``, ``sweep_total_s_p4``).
    """
    return name.endswith(TIMING_SUFFIXES) or _TIMING_WORD.search(name) is not None


def _is_number(x: object) -> TypeGuard[float]:
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


def _tolerance(spec: dict[str, Any], centre: float) -> float:
    return max(float(spec.get("rtol", 0.0)) * abs(centre), float(spec.get("atol", 0.0)))


def check_one(name: str, spec: dict[str, Any], got: object, run: dict[str, Any]) -> CheckRow:
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


def check_metrics(expected: dict[str, Any], metrics: dict[str, Any]) -> list[CheckRow]:
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


def _kernel_deviation(spec: dict[str, Any]) -> float | None:
    """How far the kernel-variation runs moved the banded quantity, or None if not measured.

    For a ``value`` band: the widest distance of any configuration's value from the native
    one. For a ``relative_to`` band the banded quantity is the difference from the reference
    metric, so it is the largest such difference under any configuration (native included).
    """
    measured = spec.get("kernels")
    if not measured or not measured.get("configs"):
        return None
    values = [v for v in measured["configs"].values() if _is_number(v)]
    if not values:
        return None
    if "relative_to" in spec:
        return float(max(abs(v) for v in values))
    centre = measured["configs"].get(NATIVE_KERNELS, spec.get("value"))
    if not _is_number(centre):
        return None
    return float(max(abs(v - centre) for v in values))


def kernel_pressure(spec: dict[str, Any]) -> float:
    """The share of a band's room that the kernel configurations used (0 when unmeasured).

    For a value or ``relative_to`` band: the widest kernel distance over the tolerance. For
    ``min``/``max`` bounds: the widest kernel distance over the native value's distance to the
    nearest bound. 1 means a configuration reached the edge; a notebook whose every metric
    stays near 0 gains nothing from a second run under other kernels.
    """
    deviation = _kernel_deviation(spec)
    if deviation is None or deviation == 0:
        return 0.0
    if "relative_to" in spec:
        room = _relative_tol(spec)
    elif _is_number(spec.get("value")):
        room = _tolerance(spec, float(spec["value"]))
    else:
        centre = (spec.get("kernels") or {}).get("configs", {}).get(NATIVE_KERNELS)
        if not _is_number(centre):
            return 0.0
        room = min(
            [abs(centre - spec[b]) for b in ("min", "max") if _is_number(spec.get(b))],
            default=math.inf,
        )
    return math.inf if room == 0 else deviation / room


def measured_values(spec: dict[str, Any]) -> list[float]:
    """Every value a measurement saw: the seeds' extremes and each kernel configuration's."""
    values = []
    spread = spec.get("spread") or {}
    values += [spread[k] for k in ("min", "max") if _is_number(spread.get(k))]
    if "relative_to" not in spec:
        configs = (spec.get("kernels") or {}).get("configs", {})
        values += [v for v in configs.values() if _is_number(v)]
    return values


def validate_expected(expected: dict[str, Any], *, require_kernels: bool = True) -> list[str]:
    """Problems with an expected file's specs (empty when every band is sound).

    Each spec needs a known ``kind``, a ``reason`` and at least one check; timings may not be
    banded. Then, for every kind, the band must survive what was measured:

    * a numeric ``value`` or ``relative_to`` band needs a kernel-variation measurement
      (``kernels``, written by the bands tool; skipped with ``require_kernels=False``) and a
      tolerance of at least :data:`KERNEL_MARGIN` x the distance the configurations moved it;
      a value that moved is not ``deterministic``;
    * a ``stochastic`` value band needs a measured seed ``spread`` that its tolerance covers
      (:func:`band_covers_spread`);
    * ``min``/``max`` bounds must contain every measured value (seeds and kernels).
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
            problems += [f"{where}: {p}" for p in _band_problems(spec, require_kernels)]
    return problems


def _band_problems(spec: dict[str, Any], require_kernels: bool) -> list[str]:
    """What a spec's band fails to survive among its own measurements."""
    problems = []
    kind = spec.get("kind")
    value_band = "relative_to" in spec or _is_number(spec.get("value"))
    if kind == "stochastic" and "value" in spec and "relative_to" not in spec:
        if "spread" not in spec:
            problems.append("a stochastic value band needs a measured spread")
        elif not band_covers_spread(spec):
            problems.append("band is tighter than the measured seed spread")
    deviation = _kernel_deviation(spec)
    if value_band and deviation is None and require_kernels:
        problems.append(
            "not measured across kernel configurations (run the bands tool with --kernels all)"
        )
    if value_band and deviation is not None:
        centre = 0.0 if "relative_to" in spec else float(spec["value"])
        tolerance = _tolerance(spec, centre) if "relative_to" not in spec else _relative_tol(spec)
        if kind == "deterministic" and deviation > _SAME * max(1.0, abs(centre)):
            problems.append(
                f"moved by {deviation:.3g} across kernel configurations: not deterministic"
            )
        if tolerance < KERNEL_MARGIN * deviation * (1 - 1e-9):
            problems.append(
                f"band {tolerance:.3g} is narrower than {KERNEL_MARGIN} x the cross-kernel "
                f"spread {deviation:.3g}"
            )
    for bound in ("min", "max"):
        if bound in spec:
            outside = [
                v
                for v in measured_values(spec)
                if (v < spec[bound] if bound == "min" else v > spec[bound])
            ]
            if outside:
                problems.append(f"measured values {outside} lie outside {bound} {spec[bound]}")
    return problems


def _relative_tol(spec: dict[str, Any]) -> float:
    """A ``relative_to`` band's tolerance, with an ``rtol`` read against the measured reference."""
    reference = (spec.get("kernels") or {}).get("reference", 0.0)
    return _tolerance(spec, float(reference) if _is_number(reference) else 0.0)


def band_covers_spread(spec: dict[str, Any]) -> bool:
    """True when the band around ``value`` contains every seed's value in ``spread``."""
    spread, value = spec["spread"], spec["value"]
    tolerance = _tolerance(spec, value)
    needed = max(abs(spread["max"] - value), abs(value - spread["min"]))
    return bool(tolerance >= needed * (1 - 1e-9))


def spec_from_seeds(
    values: list[float],
    reference: float,
    seeds: int,
    kernel_values: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A spec for one metric measured over ``seeds`` runs and kernel configurations.

    ``reference`` is the default seed's native value; ``kernel_values`` maps each kernel
    configuration to the reference seed's value under it. Integers that move under nothing are
    ``deterministic`` and exact; floats that move under nothing are ``deterministic`` with 1%
    slack; a value that moves only across kernels is ``hardware``; anything that moves across
    seeds is ``stochastic``. A moving value's band is the wider of :data:`SPREAD_MARGIN` x the
    widest seed distance and :data:`KERNEL_MARGIN` x the widest kernel distance.
    """
    kernel_values = dict(kernel_values or {})
    low, high = min(values), max(values)
    seeds_move = high - low > _SAME * max(1.0, abs(high))
    kernel_dev = max((abs(v - reference) for v in kernel_values.values()), default=0.0)
    kernels_move = kernel_dev > _SAME * max(1.0, abs(reference))
    configs = f" and {len(kernel_values)} kernel configurations" if kernel_values else ""
    if not seeds_move and not kernels_move:
        if all(float(v).is_integer() for v in [*values, *kernel_values.values()]):
            spec = {"kind": "deterministic", "value": reference, "rtol": 0.0,
                    "reason": f"identical integer over {seeds} seeds{configs}"}  # fmt: skip
        else:
            spec = {"kind": "deterministic", "value": reference, "rtol": 0.01, "atol": 1e-6,
                    "reason": f"identical over {seeds} seeds{configs}; 1% allows kernels "
                    "the matrix does not cover"}  # fmt: skip
        return _with_kernels(spec, kernel_values, reference)
    seed_dev = max(abs(high - reference), abs(reference - low))
    width = max(seed_dev * SPREAD_MARGIN, kernel_dev * KERNEL_MARGIN)
    if not seeds_move:  # moved by the kernels alone: never tighter than a deterministic float
        width = max(width, HARDWARE_FLOOR * abs(reference))
    if seeds_move:
        reason = (
            f"measured over {seeds} seeds{configs}: the band covers every seed's value "
            f"x{SPREAD_MARGIN} and every configuration's x{KERNEL_MARGIN}"
        )
    else:
        reason = (
            f"identical over {seeds} seeds, moved by the kernel configurations: "
            f"{KERNEL_MARGIN} x their widest distance, at least {HARDWARE_FLOOR:.0%} of the value"
        )
    spec = {
        "kind": "stochastic" if seeds_move else "hardware",
        "value": reference,
        "rtol": 0.0,
        "atol": float(f"{width:.4g}") * 1.0001,
        "reason": reason,
    }
    if seeds_move:
        spec["spread"] = {
            "seeds": seeds,
            "min": low,
            "max": high,
            "std": statistics.pstdev(values),
            "median": statistics.median(values),
        }
    return _with_kernels(spec, kernel_values, reference)


def _with_kernels(
    spec: dict[str, Any], kernel_values: dict[str, float], reference: float
) -> dict[str, Any]:
    if kernel_values:
        configs = {NATIVE_KERNELS: reference, **kernel_values}
        spec["kernels"] = {"configs": configs}
    return spec


def merge_measured(
    specs: dict[str, Any],
    runs: list[dict[str, Any]],
    reference: dict[str, Any],
    seeds: int,
    kernel_runs: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Update one notebook's specs from runs over seeds and kernel configurations (pure).

    ``runs`` are the native runs over seeds (``reference`` among them); ``kernel_runs`` maps a
    configuration name to the reference seed's run under it. With ``seeds == 1`` only the
    kernel measurement is new: stored seed spreads are kept and bands are only widened.

    Specs of kind ``property``, and ``relative_to`` specs, keep their checks; the measurements
    are attached (for ``relative_to``, the difference from the reference metric under each
    configuration) so :func:`validate_expected` can test them. Every other numeric, non-timing
    metric is re-derived by :func:`spec_from_seeds`; a wider hand-set or stored band is kept.
    """
    kernel_runs = {k: v for k, v in (kernel_runs or {}).items() if k != NATIVE_KERNELS}
    updated: dict[str, Any] = {}
    names = list(specs) + [n for n in reference if n not in specs]
    for name in names:
        values = [r[name] for r in runs if _is_number(r.get(name))]
        spec = specs.get(name)
        if is_timing_metric(name) or not _is_number(reference.get(name)) or not values:
            if spec is not None:
                updated[name] = spec
            continue
        kernel_values = {
            cfg: run[name] for cfg, run in kernel_runs.items() if _is_number(run.get(name))
        }
        if spec is not None and "relative_to" in spec:
            updated[name] = _relative_measurement(spec, name, reference, kernel_runs)
            continue
        if seeds <= 1 and spec is not None:  # a kernel-only run: keep the seed measurement
            updated[name] = _widen_for_kernels(spec, reference[name], kernel_values)
            continue
        measured = spec_from_seeds(values, reference[name], seeds, kernel_values)
        if spec is not None and spec.get("kind") == "property":
            kept = {**spec, "spread": measured.get("spread", spec.get("spread"))}
            if "spread" not in measured and seeds > 1:
                kept.pop("spread", None)
            if "kernels" in measured:
                kept["kernels"] = measured["kernels"]
            updated[name] = kept
            continue
        if spec is not None and "value" in spec and measured["kind"] != "deterministic":
            old = {**spec, "value": reference[name]}
            if _tolerance(old, reference[name]) > _tolerance(measured, reference[name]):
                measured["rtol"], measured["atol"] = old.get("rtol", 0.0), old.get("atol", 0.0)
                measured["reason"] += "; a wider stored band was kept"
        updated[name] = measured
    return updated


def _widen_for_kernels(
    spec: dict[str, Any], reference: float, kernel_values: dict[str, float]
) -> dict[str, Any]:
    """A stored spec with a new kernel measurement attached, widened if the kernels need it.

    Its seed measurement, kind and reason stay unless the configurations moved the value: a
    ``deterministic`` value that moved becomes ``hardware``, and a value band narrower than
    :data:`KERNEL_MARGIN` x the widest kernel distance is widened to it (the reason says so).
    """
    out = _with_kernels(dict(spec), kernel_values, reference)
    if "value" not in out or not _is_number(out["value"]):
        return out
    deviation = max((abs(v - reference) for v in kernel_values.values()), default=0.0)
    if deviation <= _SAME * max(1.0, abs(reference)):
        return out
    out["value"] = reference
    if out.get("kind") == "deterministic":
        out["kind"] = "hardware"
        out["reason"] = f"{out.get('reason', '')}; moved across kernel configurations".lstrip("; ")
    needed = KERNEL_MARGIN * deviation
    if _tolerance(out, reference) < needed:
        out["rtol"], out["atol"] = 0.0, float(f"{needed:.4g}") * 1.0001
        out["reason"] += f"; widened to {KERNEL_MARGIN} x the cross-kernel distance"
    return out


def _relative_measurement(
    spec: dict[str, Any], name: str, reference: dict[str, Any], kernel_runs: dict[str, Any]
) -> dict[str, Any]:
    """A ``relative_to`` spec with the measured differences from its reference attached."""
    base = spec["relative_to"]
    runs = {NATIVE_KERNELS: reference, **kernel_runs}
    diffs = {
        cfg: run[name] - run[base]
        for cfg, run in runs.items()
        if _is_number(run.get(name)) and _is_number(run.get(base))
    }
    out = dict(spec)
    if diffs:
        out["kernels"] = {"configs": diffs, "reference": reference.get(base)}
    return out


def measure_bands(
    run_seed: Callable[[int], dict[str, Any]],
    specs: dict[str, Any],
    seeds: Iterable[int],
    reference_seed: int,
    *,
    kernels: Iterable[str] = (),
    run_kernel: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``run_seed(seed) -> metrics`` for every seed, ``run_kernel(name) -> metrics`` (the
    reference seed under a kernel configuration) for every name in ``kernels``; return updated
    specs.

    ``reference_seed`` (the notebook's default) must be among ``seeds``: its values are the
    stored ``value``\\ s, and the others give the spread.
    """
    seeds = list(seeds)
    if reference_seed not in seeds:
        raise ValueError(f"reference seed {reference_seed} is not among the seeds {seeds}.")
    kernels = [k for k in kernels if k != NATIVE_KERNELS]
    if kernels and run_kernel is None:
        raise ValueError("kernel configurations were named but no run_kernel was given.")
    runs = {seed: run_seed(seed) for seed in seeds}
    kernel_runs = {name: run_kernel(name) for name in kernels} if run_kernel else {}
    return merge_measured(specs, list(runs.values()), runs[reference_seed], len(seeds), kernel_runs)


def update_expected(
    expected: dict[str, Any], metrics: dict[str, Any], default_rtol: float = 0.05
) -> dict[str, Any]:
    """Rewrite stored values from the current metrics, keeping each spec's tolerance and kind.

    A re-centred ``stochastic`` band is widened, if needed, to keep covering its measured
    spread (a band is never tighter than the seeds showed). New numeric metrics get a
    ``stochastic`` placeholder band of ``default_rtol`` whose reason says it is unmeasured (run
    the ``bands`` tool to measure it); timings never become bands.
    """
    updated: dict[str, Any] = {}
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


def describe_band(spec: dict[str, Any]) -> str:
    """A short human reading of a spec's check: ``± 0.006 (stochastic)``, ``≤ 0.05 (property)``."""
    kind = spec.get("kind", "deterministic")
    parts = []
    if "relative_to" in spec:
        parts.append(f"within {_fmt_num(_relative_tol(spec))} of {spec['relative_to']}")
    elif _is_number(spec.get("value")):
        tolerance = _tolerance(spec, float(spec["value"]))
        parts.append("exact" if tolerance == 0 else f"± {_fmt_num(tolerance)}")
    if "min" in spec:
        parts.append(f"≥ {_fmt_num(spec['min'])}")
    if "max" in spec:
        parts.append(f"≤ {_fmt_num(spec['max'])}")
    return f"{', '.join(parts) or 'matches'} ({kind})"


def _fmt_num(x: float) -> str:
    return f"{x:.2g}" if x and abs(x) < 1e-3 else f"{x:.3g}"


def read_expected(path: Path) -> dict[str, Any]:
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
