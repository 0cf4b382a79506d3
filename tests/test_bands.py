"""Regression bands: kinds, checks, reasons, and bands measured over seeds."""

from __future__ import annotations

import json

import pytest

from recsys_lib.course import bands


def test_value_band_uses_the_larger_of_rtol_and_atol():
    spec = {"kind": "deterministic", "value": 2.0, "rtol": 0.1, "atol": 0.05}
    assert bands.check_one("m", spec, 2.19, {}).verdict == "ok"  # |0.19| <= 0.2
    assert bands.check_one("m", spec, 2.21, {}).verdict == "REGRESSION"
    assert bands.check_one("m", {**spec, "value": 0.0}, 0.04, {}).verdict == "ok"
    assert bands.check_one("m", {**spec, "value": 0.0}, 0.06, {}).verdict == "REGRESSION"


def test_property_bounds_and_missing_values():
    spec = {"kind": "property", "max": 0.05, "min": 0.0}
    assert bands.check_one("p", spec, 0.01, {}).verdict == "ok"
    row = bands.check_one("p", spec, 0.2, {})
    assert row.verdict == "REGRESSION" and "above max 0.05" in row.detail
    assert bands.check_one("p", spec, -0.1, {}).verdict == "REGRESSION"
    assert bands.check_one("p", spec, None, {}).verdict == "MISSING"
    assert bands.check_one("p", spec, float("nan"), {}).verdict == "REGRESSION"
    covers = {"kind": "property", "min": 1, "max": 1}  # a recorded bool must be True
    assert bands.check_one("c", covers, True, {}).verdict == "ok"
    assert bands.check_one("c", covers, False, {}).verdict == "REGRESSION"


def test_relative_band_compares_within_the_same_run():
    spec = {"kind": "hardware", "relative_to": "ndcg_fp32", "atol": 0.02}
    assert bands.check_one("q", spec, 0.138, {"ndcg_fp32": 0.130}).verdict == "ok"
    row = bands.check_one("q", spec, 0.16, {"ndcg_fp32": 0.130})
    assert row.verdict == "REGRESSION" and row.change == pytest.approx(0.03)
    assert bands.check_one("q", spec, 0.13, {}).verdict == "REGRESSION"  # reference missing


def test_strings_and_bools_must_match():
    assert bands.check_one("s", {"value": "ship"}, "ship", {}).verdict == "ok"
    assert bands.check_one("s", {"value": "ship"}, "hold", {}).verdict == "CHANGED"
    assert bands.check_one("b", {"value": True}, False, {}).verdict == "CHANGED"


def test_check_metrics_and_format_name_every_metric():
    expected = {"nb": {"a": {"value": 1.0, "rtol": 0.1}, "b": {"max": 1.0, "kind": "property"}}}
    rows = bands.check_metrics(expected, {"nb": {"a": 1.5, "b": 0.5}})
    assert [(r.metric, r.verdict) for r in rows] == [("nb/a", "REGRESSION"), ("nb/b", "ok")]
    table = bands.format_check(rows)
    assert "nb/a" in table and "+50.0%" in table and "property" in table


def test_spec_from_seeds_classifies_what_moves():
    count = bands.spec_from_seeds([943, 943, 943], 943, 3)
    assert count["kind"] == "deterministic" and count["rtol"] == 0.0
    fixed_float = bands.spec_from_seeds([0.7, 0.7], 0.7, 2)
    assert fixed_float["kind"] == "deterministic" and fixed_float["rtol"] == 0.01
    moving = bands.spec_from_seeds([0.30, 0.40, 0.46], 0.40, 3)
    assert moving["kind"] == "stochastic"
    # widest distance from the reference (0.10 down to 0.30) times the margin
    assert moving["atol"] == pytest.approx(0.10 * bands.SPREAD_MARGIN, rel=1e-3)
    assert moving["spread"]["seeds"] == 3 and moving["spread"]["min"] == 0.30
    assert bands.band_covers_spread(moving)


def test_band_tighter_than_its_spread_is_refused():
    spec = {
        "kind": "stochastic", "value": 0.4, "atol": 0.05, "reason": "hand-set",
        "spread": {"seeds": 20, "min": 0.3, "max": 0.45, "std": 0.03, "median": 0.4},
    }  # fmt: skip
    assert not bands.band_covers_spread(spec)
    problems = bands.validate_expected({"nb": {"ab_lift": spec}}, require_kernels=False)
    assert problems == ["nb/ab_lift: band is tighter than the measured seed spread"]
    wide = {"nb": {"ab_lift": {**spec, "atol": 0.1}}}
    assert bands.validate_expected(wide, require_kernels=False) == []


def test_validate_expected_requires_kind_reason_check_and_no_timings():
    problems = bands.validate_expected(
        {
            "nb": {
                "a": {"value": 1.0, "rtol": 0.1},
                "b": {"kind": "stochastic", "value": 1.0, "rtol": 0.1, "reason": "guess"},
                "fit_s": {"kind": "deterministic", "value": 1.0, "reason": "x"},
                "c": {"kind": "hardware", "relative_to": "a", "reason": "x"},
                "d": {"kind": "property", "reason": "x"},
            }
        }
    )
    text = "\n".join(problems)
    assert "nb/a: kind None" in text and "nb/a: no reason" in text
    assert "nb/b: a stochastic value band needs a measured spread" in text
    assert "nb/fit_s: timings are recorded, never banded" in text
    assert "nb/c: relative_to needs an atol or rtol" in text
    assert "nb/d: no check" in text


def test_merge_measured_keeps_properties_and_wider_hand_bands():
    specs = {
        "p_value": {"kind": "property", "max": 0.05, "reason": "must detect"},
        "lift": {"kind": "stochastic", "value": 0.2, "atol": 0.5, "reason": "hand"},
    }
    runs = [{"p_value": 0.01, "lift": 0.2, "n": 5, "fit_s": 1.0},
            {"p_value": 0.02, "lift": 0.25, "n": 5, "fit_s": 2.0}]  # fmt: skip
    merged = bands.merge_measured(specs, runs, runs[0], seeds=2)
    assert merged["p_value"]["max"] == 0.05 and merged["p_value"]["spread"]["max"] == 0.02
    assert (
        merged["lift"]["atol"] == 0.5 and "wider stored band was kept" in merged["lift"]["reason"]
    )
    assert merged["n"]["kind"] == "deterministic"
    assert "fit_s" not in merged  # timings never become bands


def test_measure_bands_runs_every_seed_and_needs_the_reference():
    seen = []

    def run_seed(seed):
        seen.append(seed)
        return {"metric": seed / 100, "count": 7}

    out = bands.measure_bands(run_seed, {}, [42, 43, 44], reference_seed=42)
    assert seen == [42, 43, 44]
    assert out["metric"]["value"] == 0.42 and out["metric"]["spread"]["max"] == 0.44
    assert out["count"] == {"kind": "deterministic", "value": 7, "rtol": 0.0,
                            "reason": "identical integer over 3 seeds"}  # fmt: skip
    with pytest.raises(ValueError, match="reference seed 1"):
        bands.measure_bands(run_seed, {}, [42], reference_seed=1)


def test_read_expected_explains_bad_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        bands.read_expected(bad)
    bad.write_text(json.dumps({"nb": 3}))
    with pytest.raises(ValueError, match="notebook -> metric -> spec"):
        bands.read_expected(bad)


def test_is_timing_metric():
    assert bands.is_timing_metric("als_fit_s") and bands.is_timing_metric("latency_ms")
    assert bands.is_timing_metric("int8_speedup")  # a ratio of two timings is a timing too
    assert bands.is_timing_metric("total_s_10000") and bands.is_timing_metric("sweep_total_s_p4")
    assert not bands.is_timing_metric("ndcg@10") and not bands.is_timing_metric("n_users")
    assert not bands.is_timing_metric("ndcg_gap_implicit_minus_spark")
    assert not bands.is_timing_metric("unique_share_all_fields")


def test_update_recentres_and_never_narrows_below_the_spread():
    spread = {"seeds": 5, "min": 0.30, "max": 0.40, "std": 0.03, "median": 0.35}
    expected = {"nb": {"lift": {"kind": "stochastic", "value": 0.35, "atol": 0.0625,
                                "reason": "measured", "spread": spread}}}  # fmt: skip
    moved = bands.update_expected(expected, {"nb": {"lift": 0.41}})["nb"]["lift"]
    assert moved["value"] == 0.41 and bands.band_covers_spread(moved)
    assert moved["atol"] == pytest.approx(0.11 * bands.SPREAD_MARGIN, rel=1e-3)
    assert "widened" in moved["reason"]
    kept = bands.update_expected(expected, {"nb": {"lift": 0.36}})["nb"]["lift"]
    assert kept["atol"] == 0.0625 and kept["reason"] == "measured"


# ------------------------------------------------------------------ kernel-variation spreads
def _measured(value, configs, **band):
    return {"kind": "hardware", "value": value, "reason": "measured", **band,
            "kernels": {"configs": {"native": value, **configs}}}  # fmt: skip


def test_band_narrower_than_its_cross_kernel_spread_is_refused():
    # the generic kernels moved the value by 0.014: the band must be at least 2 x that wide
    narrow = _measured(0.005, {"avx2": 0.007, "generic": 0.019}, atol=0.02)
    problems = bands.validate_expected({"nb": {"int8_change": narrow}})
    assert problems == [
        "nb/int8_change: band 0.02 is narrower than 2.0 x the cross-kernel spread 0.014"
    ]
    wide = {**narrow, "atol": 0.028}
    assert bands.validate_expected({"nb": {"int8_change": wide}}) == []


def test_every_kind_must_survive_the_kernels():
    moved = _measured(0.5, {"generic": 0.5001}, rtol=0.01)
    problems = bands.validate_expected({"nb": {"x": {**moved, "kind": "deterministic"}}})
    assert problems == ["nb/x: moved by 0.0001 across kernel configurations: not deterministic"]
    stochastic = {**_measured(0.5, {"generic": 0.56}, atol=0.1), "kind": "stochastic",
                  "spread": {"seeds": 4, "min": 0.45, "max": 0.55, "std": 0.03, "median": 0.5}}  # fmt: skip
    assert bands.validate_expected({"nb": {"lift": stochastic}}) == [
        "nb/lift: band 0.1 is narrower than 2.0 x the cross-kernel spread 0.06"
    ]
    # a property's bounds must hold every measured value, seeds' and kernels'
    prop = {"kind": "property", "max": 0.05, "reason": "must detect",
            "kernels": {"configs": {"native": 0.01, "generic": 0.07}}}  # fmt: skip
    assert bands.validate_expected({"nb": {"p": prop}}) == [
        "nb/p: measured values [0.07] lie outside max 0.05"
    ]
    with_seeds = {"kind": "property", "min": 0.0, "reason": "a lift",
                  "spread": {"seeds": 3, "min": -0.01, "max": 0.2}}  # fmt: skip
    assert "lie outside min 0.0" in bands.validate_expected({"nb": {"l": with_seeds}})[0]


def test_relative_band_is_judged_on_the_differences_the_kernels_gave():
    spec = {"kind": "hardware", "relative_to": "ndcg_fp32", "atol": 0.02, "reason": "int8",
            "kernels": {"configs": {"native": 0.005, "avx2": -0.004, "generic": 0.013},
                        "reference": 0.12}}  # fmt: skip
    assert bands.validate_expected({"nb": {"ndcg_int8": spec}}) == [
        "nb/ndcg_int8: band 0.02 is narrower than 2.0 x the cross-kernel spread 0.013"
    ]
    assert bands.validate_expected({"nb": {"ndcg_int8": {**spec, "atol": 0.03}}}) == []


def test_value_bands_need_a_kernel_measurement_unless_told_otherwise():
    spec = {"kind": "deterministic", "value": 943, "rtol": 0, "reason": "a count"}
    problems = bands.validate_expected({"nb": {"n": spec}})
    assert problems == [
        "nb/n: not measured across kernel configurations (run the bands tool with --kernels all)"
    ]
    assert bands.validate_expected({"nb": {"n": spec}}, require_kernels=False) == []
    prop = {"kind": "property", "max": 0.05, "reason": "p below alpha"}
    assert bands.validate_expected({"nb": {"p": prop}}) == []  # a bound, not a stored number


def test_spec_from_seeds_with_kernels_classifies_and_widens():
    only_kernels = bands.spec_from_seeds([0.3, 0.3], 0.3, 2, {"avx2": 0.31, "generic": 0.28})
    assert only_kernels["kind"] == "hardware" and "spread" not in only_kernels
    assert only_kernels["atol"] == pytest.approx(0.02 * bands.KERNEL_MARGIN, rel=1e-3)
    assert only_kernels["kernels"]["configs"] == {"native": 0.3, "avx2": 0.31, "generic": 0.28}
    both = bands.spec_from_seeds([0.30, 0.32], 0.30, 2, {"generic": 0.35})
    assert both["kind"] == "stochastic"
    assert both["atol"] == pytest.approx(max(0.02 * 1.25, 0.05 * 2.0), rel=1e-3)
    still = bands.spec_from_seeds([7, 7], 7, 2, {"generic": 7})
    assert still["kind"] == "deterministic" and still["rtol"] == 0.0
    for spec in (only_kernels, both, still):
        assert bands.validate_expected({"nb": {"m": spec}}) == []


def test_kernel_only_measurement_keeps_seed_spreads_and_hand_reasons():
    specs = {
        "count": {"kind": "deterministic", "value": 943, "rtol": 0, "reason": "users in ML-100K"},
        "ndcg": {"kind": "deterministic", "value": 0.2, "rtol": 1e-6, "reason": "no training"},
        "lift": {"kind": "stochastic", "value": 0.2, "atol": 0.1, "reason": "seeds",
                 "spread": {"seeds": 10, "min": 0.15, "max": 0.25, "std": 0.02, "median": 0.2}},
        "p": {"kind": "property", "max": 0.05, "reason": "detects"},
    }  # fmt: skip
    reference = {"count": 943, "ndcg": 0.2, "lift": 0.2, "p": 0.01}
    kernel_runs = {"avx2": {"count": 943, "ndcg": 0.21, "lift": 0.29, "p": 0.02},
                   "generic": {"count": 943, "ndcg": 0.2, "lift": 0.2, "p": 0.03}}  # fmt: skip
    merged = bands.merge_measured(specs, [reference], reference, 1, kernel_runs)
    assert merged["count"]["reason"] == "users in ML-100K" and merged["count"]["rtol"] == 0
    assert (
        merged["ndcg"]["kind"] == "hardware" and "moved across kernel" in merged["ndcg"]["reason"]
    )
    assert merged["ndcg"]["atol"] == pytest.approx(0.02, rel=1e-3)
    assert merged["lift"]["spread"]["seeds"] == 10 and merged["lift"]["kind"] == "stochastic"
    assert (
        merged["lift"]["atol"] == pytest.approx(0.18, rel=1e-3)
        and "widened" in merged["lift"]["reason"]
    )
    assert merged["p"]["max"] == 0.05 and merged["p"]["kernels"]["configs"]["generic"] == 0.03
    assert bands.validate_expected({"nb": merged}) == []


def test_measure_bands_runs_the_reference_seed_under_each_configuration():
    def run_seed(seed):
        return {"m": 0.5}

    def run_kernel(name):
        return {"m": {"avx2": 0.5, "generic": 0.52}[name]}

    out = bands.measure_bands(run_seed, {}, [42, 43], 42, kernels=["native", "avx2", "generic"],
                              run_kernel=run_kernel)  # fmt: skip
    assert out["m"]["kind"] == "hardware"
    assert out["m"]["kernels"]["configs"] == {"native": 0.5, "avx2": 0.5, "generic": 0.52}
    with pytest.raises(ValueError, match="no run_kernel"):
        bands.measure_bands(run_seed, {}, [42], 42, kernels=["generic"])


def test_kernel_pressure_is_the_share_of_the_band_the_kernels_used():
    value = _measured(0.5, {"generic": 0.51}, atol=0.04)
    assert bands.kernel_pressure(value) == pytest.approx(0.25)
    bound = {"kind": "property", "min": 0.4, "reason": "x",
             "kernels": {"configs": {"native": 0.5, "avx2": 0.45}}}  # fmt: skip
    assert bands.kernel_pressure(bound) == pytest.approx(0.5)
    relative = {"kind": "hardware", "relative_to": "b", "atol": 0.02, "reason": "x",
                "kernels": {"configs": {"native": 0.001, "generic": -0.01}}}  # fmt: skip
    assert bands.kernel_pressure(relative) == pytest.approx(0.5)
    assert bands.kernel_pressure({"kind": "property", "max": 1, "reason": "x"}) == 0.0
    assert bands.kernel_pressure(_measured(0.5, {"generic": 0.5}, atol=0.01)) == 0.0


def test_a_value_only_the_kernels_move_gets_at_least_a_one_percent_band():
    tiny = bands.spec_from_seeds([0.27, 0.27], 0.27, 2, {"avx2": 0.27 + 1e-9})
    assert tiny["kind"] == "hardware"
    assert tiny["atol"] == pytest.approx(0.01 * 0.27, rel=1e-3)
    assert bands.validate_expected({"nb": {"estimate": tiny}}) == []
