"""Chapter 8's bands are not tighter than reality: they still hold when the trained model's
weights are perturbed slightly, as another CPU's float kernels (or thread count) would do."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_lib.course.bands import check_metrics, format_check, read_expected
from recsys_lib.course.notebooks import execute_notebook, list_notebooks

STEM = "08_business_objectives"
EXPECTED_DIR = Path(__file__).parent / "expected"


@pytest.mark.notebook
def test_chapter8_smoke_bands_hold_with_perturbed_weights(tmp_path):
    (notebook,) = list_notebooks(only=STEM)
    result = execute_notebook(notebook, tmp_path / notebook.name, smoke=True,
                              parameters={"PERTURB_WEIGHTS": 1e-6})  # fmt: skip
    assert result.error is None, result.error
    rows = check_metrics(read_expected(EXPECTED_DIR / f"{STEM}.json"), {STEM: result.metrics})
    assert rows and all(r.verdict == "ok" for r in rows), "\n" + format_check(rows)
