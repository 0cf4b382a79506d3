"""Every course notebook runs in smoke mode and its recorded metrics stay inside their bands.

A notebook is covered by adding ``tests/expected/<notebook stem>.json`` (create it with
``python -m recsys_lib.notebooks check tests/expected/<stem>.json --update`` after a smoke
run): the same mechanism teams use on full runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_lib.notebooks import (
    check_metrics,
    execute_notebook,
    format_check,
    list_notebooks,
)

EXPECTED_DIR = Path(__file__).parent / "expected"
NOTEBOOKS = list_notebooks()


def test_every_notebook_has_expected_metrics():
    missing = [p.stem for p in NOTEBOOKS if not (EXPECTED_DIR / f"{p.stem}.json").exists()]
    assert not missing, f"add tests/expected/<stem>.json for {missing}"


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_smoke_run(notebook, tmp_path):
    expected_file = EXPECTED_DIR / f"{notebook.stem}.json"
    if not expected_file.exists():
        pytest.fail(f"no {expected_file.name}: add expected smoke metrics for {notebook.stem}")
    result = execute_notebook(notebook, tmp_path / notebook.name, smoke=True)
    assert result.error is None, f"{notebook.stem} failed in {result.error}"
    rows = check_metrics(json.loads(expected_file.read_text()), {notebook.stem: result.metrics})
    assert rows, f"{expected_file.name} lists no metrics"
    bad = [r for r in rows if r.verdict != "ok"]
    assert not bad, "\n" + format_check(rows)


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
