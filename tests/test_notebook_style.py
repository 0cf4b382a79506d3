"""Notebooks follow the same rules as the library's code.

No code cell longer than :data:`MAX_CELL_LINES` lines (logic that needs more belongs in
``recsys_lib``); the parameters cell, one knob per line for papermill, may hold up to
:data:`MAX_PARAMETER_LINES`. Notebooks are committed without outputs, and ruff's lint and
format checks pass on them as on the library.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import tool_or_skip

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_CELL_LINES = 25
MAX_PARAMETER_LINES = 30


def code_cells(path: Path) -> list[tuple[int, dict]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]


def too_long(path: Path) -> list[str]:
    """'<notebook> cell <i>: <n> lines' for every code cell over its limit."""
    found = []
    for index, cell in code_cells(path):
        limit = (
            MAX_PARAMETER_LINES
            if "parameters" in cell.get("metadata", {}).get("tags", [])
            else MAX_CELL_LINES
        )
        lines = len("".join(cell["source"]).rstrip("\n").splitlines())
        if lines > limit:
            found.append(f"{path.name} cell {index}: {lines} lines (limit {limit})")
    return found


def test_every_notebook_is_checked():
    assert len(NOTEBOOKS) >= 12 and all(code_cells(p) for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_cell_is_too_long(path):
    assert not too_long(path), "move logic into recsys_lib or split the cell:\n" + "\n".join(
        too_long(path)
    )


def test_the_length_check_can_fail(tmp_path):
    long_cell = {"cell_type": "code", "metadata": {}, "source": ["x = 1\n"] * 26}
    params = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["a = 1\n"] * 26}
    path = tmp_path / "long.ipynb"
    path.write_text(json.dumps({"cells": [params, long_cell]}))
    assert too_long(path) == ["long.ipynb cell 1: 26 lines (limit 25)"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path):
    for index, cell in code_cells(path):
        assert not cell.get("outputs") and cell.get("execution_count") is None, (
            f"{path.name} cell {index} holds outputs; clear them before committing"
        )


def test_ruff_lints_and_formats_the_notebooks():
    for args in (["check", "notebooks"], ["format", "--check", "notebooks"]):
        done = subprocess.run(tool_or_skip("ruff") + args, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"ruff {' '.join(args)}:\n{done.stdout}{done.stderr}"
