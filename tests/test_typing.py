"""The library's type hints are checked (mypy, configured in pyproject.toml) and shipped."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import tool_or_skip

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes_on_the_library():
    # this interpreter's packages (numpy, torch, transformers) supply the third-party types
    command = tool_or_skip("mypy") + ["--python-executable", sys.executable, "recsys_lib"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_library_ships_its_type_hints():
    assert (ROOT / "recsys_lib" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["recsys_lib"]
    strict = [o for o in config["tool"]["mypy"]["overrides"] if o.get("disallow_untyped_defs")]
    assert strict and "recsys_lib.data.*" in strict[0]["module"]
