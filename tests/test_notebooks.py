"""Every course notebook runs in smoke mode and its recorded metrics stay inside their bands.

A notebook is covered by adding ``tests/expected/<notebook stem>.json`` (measure it with
``python -m recsys_lib.course.notebooks bands <stem> --seeds 20``): the same mechanism teams use on
full runs. Every band states its kind and where its tolerance came from (recsys_lib.course.bands).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from recsys_lib.course.bands import (
    check_metrics,
    format_check,
    kernel_pressure,
    read_expected,
    validate_expected,
)
from recsys_lib.course.kernels import CONFIGS, MOST_DIFFERENT, NATIVE
from recsys_lib.course.notebooks import execute_notebook, list_notebooks

EXPECTED_DIR = Path(__file__).parent / "expected"
NOTEBOOKS = list_notebooks()
#: The kernel configuration this test run itself is under (``make test KERNELS=...``).
CURRENT_KERNELS = os.environ.get("RECSYS_KERNELS", NATIVE)


#: A notebook whose kernel configurations used less than this share of every band's room is
#: not run a second time (its metrics are rank-level and did not move, or moved by 1e-15).
KERNEL_PRESSURE_FOR_SECOND_RUN = 0.05


def notebook_pressure(stem: str, expected_dir: Path = EXPECTED_DIR) -> float:
    """The largest share of a band's room of ``stem`` that the kernel configurations used
    (:func:`recsys_lib.course.bands.kernel_pressure`, from its expected file's ``kernels``
    records); 0 without an expected file."""
    path = expected_dir / f"{stem}.json"
    if not path.exists():
        return 0.0
    specs = read_expected(path)[stem].values()
    return max(map(kernel_pressure, specs), default=0.0)


def kernel_sensitive(stem: str, expected_dir: Path = EXPECTED_DIR) -> bool:
    """True when the kernel configurations used a visible share of some band of ``stem``:
    only those notebooks gain from a second run under other kernels."""
    return notebook_pressure(stem, expected_dir) >= KERNEL_PRESSURE_FOR_SECOND_RUN


def second_configurations(
    notebooks: list[Path], current: str = CURRENT_KERNELS, expected_dir: Path = EXPECTED_DIR
) -> list[tuple]:
    """``(notebook, configuration)`` pairs for the second smoke run of each kernel-sensitive
    notebook: the configurations other than ``current`` in turn, the most different first, so
    one test run exercises every configuration and each notebook always gets the same one. The
    notebook whose bands the kernels push hardest goes first, so it meets the most different
    configuration (``make test-kernels`` runs every notebook under every configuration)."""
    pool = [MOST_DIFFERENT, *(n for n in CONFIGS if n != MOST_DIFFERENT)]
    pool = [n for n in pool if n != current]
    sensitive = [p for p in notebooks if kernel_sensitive(p.stem, expected_dir)]
    sensitive.sort(key=lambda p: -notebook_pressure(p.stem, expected_dir))  # stable for ties
    return [(p, pool[i % len(pool)]) for i, p in enumerate(sensitive)]


SMOKE_RUNS = [(p, None) for p in NOTEBOOKS] + second_configurations(NOTEBOOKS)
#: The one fast notebook run twice to measure determinism (no torch training, no Spark).
DETERMINISM_NOTEBOOK = "00_data_and_evaluation"


def needs_spark(notebook: Path) -> bool:
    """True for notebooks that start a Spark session (they need Java 17)."""
    return "recsys_lib.spark" in notebook.read_text(encoding="utf-8")


def spark_skip_reason(notebook: Path) -> str | None:
    """Why ``notebook`` cannot run here (no Java 17 or pyspark), or None."""
    if not needs_spark(notebook):
        return None
    from recsys_lib.spark import spark_unavailable_reason

    reason = spark_unavailable_reason()
    if reason and os.environ.get("RECSYS_REQUIRE_SPARK") == "1":
        pytest.fail(f"RECSYS_REQUIRE_SPARK=1 but {notebook.stem} cannot run: {reason}")
    return reason and f"{notebook.stem} needs Spark: {reason}"


def test_every_notebook_has_expected_metrics():
    missing = [p.stem for p in NOTEBOOKS if not (EXPECTED_DIR / f"{p.stem}.json").exists()]
    assert not missing, f"add tests/expected/<stem>.json for {missing}"


@pytest.mark.parametrize("path", sorted(EXPECTED_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_band_has_a_kind_a_check_and_a_reason(path):
    expected = read_expected(path)
    assert list(expected) == [path.stem], f"{path.name} must hold the bands of {path.stem} only"
    problems = validate_expected(expected)
    assert not problems, "\n".join(problems)


FULL_DIR = EXPECTED_DIR / "full"


@pytest.mark.parametrize("path", sorted(FULL_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_full_run_band_is_sound(path):
    """The full-run tier (make check-full) follows the same rules as the smoke bands."""
    expected = read_expected(path)
    assert list(expected) == [path.stem], f"{path.name} must hold the bands of {path.stem} only"
    assert path.stem in {p.stem for p in NOTEBOOKS}, f"{path.name} names no notebook"
    problems = validate_expected(expected)
    assert not problems, "\n".join(problems)


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("notebook", "kernels"),
    SMOKE_RUNS,
    ids=[p.stem if k is None else f"{p.stem}-{k}" for p, k in SMOKE_RUNS],
)
def test_notebook_smoke_run(notebook, kernels, tmp_path):
    """Each notebook under this run's kernels; the kernel-sensitive ones again under another
    configuration: the bands must hold on processors other than the one they were made on."""
    reason = spark_skip_reason(notebook)
    if reason:
        pytest.skip(reason)
    expected_file = EXPECTED_DIR / f"{notebook.stem}.json"
    if not expected_file.exists():
        pytest.fail(f"no {expected_file.name}: add expected smoke metrics for {notebook.stem}")
    result = execute_notebook(notebook, tmp_path / notebook.name, smoke=True, kernels=kernels)
    where = f"{notebook.stem} (kernels: {kernels or CURRENT_KERNELS})"
    assert result.error is None, f"{where} failed in {result.error}"
    rows = check_metrics(read_expected(expected_file), {notebook.stem: result.metrics})
    assert rows, f"{expected_file.name} lists no metrics"
    bad = [r for r in rows if r.verdict != "ok"]
    assert not bad, f"{where}\n" + format_check(rows)


@pytest.mark.notebook
def test_same_seed_gives_the_same_metrics_twice(tmp_path):
    """Two runs of one notebook on this machine agree to 4 decimals (timings excluded)."""
    from recsys_lib.course.bands import is_timing_metric

    [notebook] = list_notebooks(only=DETERMINISM_NOTEBOOK)
    runs = []
    for attempt in (1, 2):
        result = execute_notebook(notebook, tmp_path / f"run{attempt}.ipynb", smoke=True)
        assert result.error is None, result.error
        runs.append({k: v for k, v in result.metrics.items() if not is_timing_metric(k)})
    first, second = runs
    assert first.keys() == second.keys() and first
    differ = {
        k: (first[k], second[k])
        for k in first
        if (
            round(first[k], 4) != round(second[k], 4)
            if isinstance(first[k], float)
            else first[k] != second[k]
        )
    }
    assert not differ, f"metrics changed between two identical runs: {differ}"


def test_second_runs_rotate_over_the_other_configurations(tmp_path):
    stems = ["a", "b", "c", "d"]
    for stem, moved in zip(stems, (True, False, True, True), strict=True):
        configs = {"native": 0.1, "generic": 0.2 if moved else 0.1 + 1e-15}
        spec = {"kind": "hardware", "value": 0.1, "atol": 1, "reason": "x",
                "kernels": {"configs": configs}}  # fmt: skip
        (tmp_path / f"{stem}.json").write_text(json.dumps({stem: {"m": spec}}))
    notebooks = [Path(f"{s}.ipynb") for s in stems]
    runs = second_configurations(notebooks, current="native", expected_dir=tmp_path)
    assert [(p.stem, k) for p, k in runs] == [("a", MOST_DIFFERENT), ("c", "avx2"),
                                              ("d", MOST_DIFFERENT)]  # fmt: skip
    assert all(k != "native" for _, k in runs)
    under_generic = second_configurations(notebooks, current="generic", expected_dir=tmp_path)
    assert [k for _, k in under_generic] == ["native", "avx2", "native"]


def test_the_notebook_the_kernels_push_hardest_meets_the_most_different_configuration(tmp_path):
    for stem, used in (("a", 0.1), ("b", 0.6), ("c", 0.3)):
        spec = {"kind": "hardware", "value": 0.0, "atol": 1, "reason": "x",
                "kernels": {"configs": {"native": 0.0, "generic": used}}}  # fmt: skip
        (tmp_path / f"{stem}.json").write_text(json.dumps({stem: {"m": spec}}))
    notebooks = [Path(f"{s}.ipynb") for s in "abc"]
    runs = second_configurations(notebooks, current="native", expected_dir=tmp_path)
    assert [(p.stem, k) for p, k in runs] == [("b", MOST_DIFFERENT), ("c", "avx2"),
                                              ("a", MOST_DIFFERENT)]  # fmt: skip


def test_spark_notebooks_skip_with_install_advice_without_java(monkeypatch):
    from recsys_lib import spark

    monkeypatch.delenv("RECSYS_REQUIRE_SPARK", raising=False)
    monkeypatch.setattr(spark.session, "java_version", lambda: None)
    spark_notebooks = [p for p in NOTEBOOKS if needs_spark(p)]
    assert spark_notebooks, "the Spark chapter should be detected"
    reason = spark_skip_reason(spark_notebooks[0])
    assert reason and "openjdk-17-jre-headless" in reason and "java -version" in reason
    assert all(spark_skip_reason(p) is None for p in NOTEBOOKS if not needs_spark(p))


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
        assert not dirty, f"{path.name} has outputs in cells {dirty}; clear them before committing"


def test_every_notebook_has_a_parameters_cell_first_among_code_cells():
    for path in NOTEBOOKS:
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert code and "parameters" in code[0].get("metadata", {}).get("tags", []), path.name
        source = "".join(code[0]["source"])
        for name in ("SMOKE", "SEED", "TOP_K", "DEVICE"):
            assert f"{name} =" in source, f"{path.name}: parameters cell lacks {name}"
