"""Shared fixtures: MovieLens from the shared copy when present, tiny frames otherwise."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_MOVIELENS = ROOT.parent / "shared" / "data" / "movielens"

# Tests never download: use the shared copy where this checkout has one beside it.
if "RECSYS_DATA_DIR" not in os.environ and SHARED_MOVIELENS.is_dir():
    os.environ["RECSYS_DATA_DIR"] = str(SHARED_MOVIELENS)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Every test trains for real (a cached training could hide a change made by monkeypatching);
# tests/test_fit_cache.py switches the fit cache on in temporary folders.
os.environ.setdefault("RECSYS_FIT_CACHE", "off")


def pytest_configure(config):
    """Under ``make test KERNELS=...`` the in-process switches (int8 engine, torch threads)
    apply to the unit tests too, not only to the notebook kernels."""
    from recsys_lib.runtime import apply_kernel_settings

    apply_kernel_settings()


def pytest_report_header(config):
    return f"kernel configuration: {os.environ.get('RECSYS_KERNELS', 'native')}"


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is present on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def movielens():
    from recsys_lib.data.movielens import load_movielens_100k

    return load_movielens_100k(download=False)


@pytest.fixture(scope="session")
def benchmark_split(movielens):
    from recsys_lib.data.interactions import shared_interactions
    from recsys_lib.data.splits import recommenders_stratified_split

    train_df, test_df = recommenders_stratified_split(movielens.ratings)
    train, test = shared_interactions(train_df, test_df)
    return train_df, test_df, train, test


@pytest.fixture
def tiny_ratings() -> pd.DataFrame:
    """12 ratings of 4 users on 5 items, with timestamps."""
    rng = np.random.default_rng(0)
    rows = [(u, i) for u in (1, 2, 3, 4) for i in (10, 20, 30)]
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "item_id": [i if u != 4 else i + 20 for u, i in rows],
            "rating": rng.integers(1, 6, len(rows)).astype(np.float32),
            "timestamp": np.arange(len(rows))[::-1] * 10,
        }
    )


def tool_or_skip(name: str) -> list[str]:
    """The command of a developer tool (ruff, mypy): the one installed beside this interpreter,
    else the one on PATH; the test is skipped when neither exists."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return [str(beside)]
    if shutil.which(name):
        return [name]
    pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
