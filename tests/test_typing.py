"""Type hints are checked (mypy): the library under `mypy --strict` (configured in
pyproject.toml), the notebooks' code cells under mypy's defaults against the library's hints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import tool_or_skip

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PACKAGE = "course_notebooks"  # the package the notebooks' code is written into for the check

# Notebook code is exploratory: names are built up over cells (``jobs = {}`` filled later) and
# reused, fitted attributes that are None until ``fit`` are read after it, keyword dictionaries
# and grids mix value types (``dict(epochs=3, lr=1e-4)`` is a dict[str, object] to mypy, which
# it cannot match to typed parameters: arg-type is off), and helper functions carry no
# annotations (their bodies are not checked). What the check holds the notebooks to: names and
# attributes that exist (a function moved or renamed in the library), the keywords and the
# number of arguments a library function takes. The library itself is checked strictly by the
# first test, so its modules are followed silently here; pyspark's own hints are incomplete.
NOTEBOOK_MYPY_CONFIG = """\
[mypy]
python_version = 3.11
follow_imports = silent
ignore_missing_imports = True
allow_untyped_globals = True
allow_redefinition = True
strict_optional = False
disable_error_code = arg-type

[mypy-pyspark.*]
follow_imports = skip
"""
# what a notebook has that a module has not
HEADER = "from IPython.display import display  # a notebook built-in\n"
MAGIC = re.compile(r"(?m)^(\s*)([%!].*)$")  # %matplotlib inline, !pip ...


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    # this interpreter's packages (numpy, torch, transformers) supply the third-party types
    command = tool_or_skip("mypy") + ["--python-executable", sys.executable, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)


def notebook_as_module(notebook: dict) -> str:
    """The code cells of a notebook (nbformat 4 JSON) as one Python module, in order; IPython
    magics become ``pass`` with the magic kept as a comment (line numbers stay)."""
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    return HEADER + "\n\n".join(MAGIC.sub(r"\1pass  # \2", source) for source in cells) + "\n"


def _check_notebooks(paths: list[Path], folder: Path) -> subprocess.CompletedProcess[str]:
    package = folder / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    for path in paths:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        (package / f"nb_{path.stem}.py").write_text(notebook_as_module(notebook), "utf-8")
    config = folder / "mypy.ini"
    config.write_text(NOTEBOOK_MYPY_CONFIG, encoding="utf-8")
    return _mypy("--config-file", str(config), str(package))


def test_mypy_strict_passes_on_the_library():
    done = _mypy("recsys_lib")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_passes_on_the_notebooks(tmp_path):
    assert len(NOTEBOOKS) >= 12
    done = _check_notebooks(NOTEBOOKS, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_notebook_check_finds_a_wrong_library_call(tmp_path):
    # a notebook importing a function from where it no longer lives, passing a keyword the
    # library does not take and reading an attribute a model does not have
    source = ["%matplotlib inline\n", "from recsys_lib.models.base import evaluate\n",
              "from recsys_lib.models.mf import ALS\n", "model = ALS(factor=32)\n",
              "model.recommend([0], k=10, exclude=True).n_factors\n"]  # fmt: skip
    cell = {"cell_type": "code", "source": source}
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"cells": [cell], "nbformat": 4}), encoding="utf-8")
    done = _check_notebooks([bad], tmp_path / "check")
    assert done.returncode == 1
    assert 'Module "recsys_lib.models.base" has no attribute "evaluate"' in done.stdout
    assert 'Unexpected keyword argument "factor" for "ALS"' in done.stdout
    assert 'Unexpected keyword argument "exclude" for "recommend"' in done.stdout
    assert '"ndarray[tuple[Any, ...], dtype[Any]]" has no attribute "n_factors"' in done.stdout


def test_notebook_magics_become_comments():
    cell = {"cell_type": "code", "source": ["%matplotlib inline\n", "x = 1\n", "  !ls"]}
    module = notebook_as_module({"cells": [cell, {"cell_type": "markdown", "source": ["# x"]}]})
    assert module == HEADER + "pass  # %matplotlib inline\nx = 1\n  pass  # !ls\n"


def test_the_library_ships_its_type_hints():
    assert (ROOT / "recsys_lib" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["recsys_lib"]


def test_strict_covers_the_whole_library():
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["strict"] is True and mypy["packages"] == ["recsys_lib"]
    for override in mypy.get("overrides", []):
        modules = override["module"]
        modules = [modules] if isinstance(modules, str) else modules
        # overrides only describe third-party packages; none relaxes a module of the library
        assert not any(m.startswith("recsys_lib") for m in modules), override
