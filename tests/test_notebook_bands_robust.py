"""Chapter 6's bands are not tighter than reality: they still hold when the trained model's
weights are perturbed slightly, as another CPU's float kernels (or thread count) would do."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from recsys_lib.notebooks import execute_notebook, list_notebooks

EXPECTED = Path(__file__).parent / "expected" / "08_business_objectives.json"


def band_violation(name: str, band: dict, metrics: dict) -> str | None:
    """Why ``metrics[name]`` breaks ``band`` (the kinds of tests/expected/*.json), or None.

    deterministic / stochastic / hardware with ``value``: |got - value| <= max(rtol |value|,
    atol); hardware with ``relative_to``: |got - metrics[relative_to]| <= atol; property:
    ``min`` <= got <= ``max`` (either may be absent). Booleans count as 0/1.
    """
    got = metrics.get(name)
    if got is None:
        return f"{name}: not recorded"
    got = float(got)
    if not math.isfinite(got):
        return f"{name}: {got}"
    if band.get("kind") == "property":
        lo, hi = band.get("min", -math.inf), band.get("max", math.inf)
        return None if lo <= got <= hi else f"{name}: {got:.6g} outside [{lo}, {hi}]"
    if "relative_to" in band:
        other = float(metrics[band["relative_to"]])
        ok = abs(got - other) <= band["atol"]
        return (
            None
            if ok
            else f"{name}: |{got:.6g} - {band['relative_to']} {other:.6g}| > {band['atol']}"
        )
    want = float(band["value"])
    tol = max(band.get("rtol", 0.0) * abs(want), band.get("atol", 0.0))
    return (
        None if abs(got - want) <= tol else f"{name}: {got:.6g} vs {want:.6g} (tolerance {tol:.3g})"
    )


def test_band_violation_by_hand():
    metrics = {"a": 1.0, "b": 1.05, "p": 0.01, "flag": True}
    assert band_violation("a", {"value": 1.0, "rtol": 1e-6}, metrics) is None
    assert band_violation("b", {"value": 1.0, "rtol": 0.01}, metrics) is not None
    assert band_violation("b", {"relative_to": "a", "atol": 0.1}, metrics) is None
    assert band_violation("b", {"relative_to": "a", "atol": 0.01}, metrics) is not None
    assert band_violation("p", {"kind": "property", "max": 0.05}, metrics) is None
    assert band_violation("p", {"kind": "property", "min": 0.05}, metrics) is not None
    assert band_violation("flag", {"kind": "property", "min": 1}, metrics) is None
    assert band_violation("missing", {"value": 1.0}, metrics) == "missing: not recorded"


def test_every_chapter6_band_says_its_kind_and_reason():
    bands = json.loads(EXPECTED.read_text())["08_business_objectives"]
    for name, band in bands.items():
        assert band.get("kind") in {"deterministic", "stochastic", "hardware", "property"}, name
        assert band.get("reason"), f"{name} has no reason"
        if band["kind"] == "stochastic":
            spread = band["spread"]
            tol = max(band.get("rtol", 0.0) * abs(band["value"]), band.get("atol", 0.0))
            wide = max(spread["max"] - band["value"], band["value"] - spread["min"])
            assert tol >= wide - 1e-12, f"{name}: band narrower than its measured seed spread"


@pytest.mark.notebook
def test_chapter6_smoke_bands_hold_with_perturbed_weights(tmp_path):
    (notebook,) = list_notebooks(only="08_business_objectives")
    result = execute_notebook(notebook, tmp_path / notebook.name, smoke=True,
                              parameters={"PERTURB_WEIGHTS": 1e-6})  # fmt: skip
    assert result.error is None, result.error
    bands = json.loads(EXPECTED.read_text())["08_business_objectives"]
    bad = [v for name, band in bands.items() if (v := band_violation(name, band, result.metrics))]
    assert not bad, "\n".join(bad)
