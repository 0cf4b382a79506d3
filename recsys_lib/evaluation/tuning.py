"""Choosing hyper-parameters on validation data carved from train, and storing the search.

    table = grid_search(lambda **p: ALS(**p), {"factors": [32, 64]}, fit, valid)
    model = ALS(**best_params(table, grid)).fit(fit)

A long search (BPR's, Spark's) can be stored with :func:`write_search` under a
:func:`search_key` of the splits it ran on, and read back only on the same splits and settings
(:func:`read_search`), so a chapter reuses a benchmark's search without trusting stale results.
"""

from __future__ import annotations

import itertools
import json
import logging
import numbers
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.data.interactions import Interactions
from recsys_lib.evaluation.protocol import evaluate
from recsys_lib.models.base import Model
from recsys_lib.runtime import atomic_write_text

logger = logging.getLogger(__name__)


def grid_search(
    make_model: Callable[..., Model],
    grid: dict[str, list[Any]],
    fit: Interactions,
    valid: Interactions,
    *,
    k: int = 10,
    metric: str | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Fit ``make_model(**params)`` on ``fit`` for each grid point and score it on ``valid``.

    ``fit``/``valid`` must be carved from TRAIN (never test). ``n_samples`` draws that many
    points at random instead of the full grid. Returns one row per point: the parameters,
    every ranking metric, fit seconds; sorted by ``metric`` (default ndcg@k), best first.
    """
    from tqdm.auto import tqdm

    metric = metric or f"ndcg@{k}"
    names = list(grid)
    points = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    if n_samples is not None and n_samples < len(points):
        chosen = np.random.default_rng(seed).choice(len(points), n_samples, replace=False)
        points = [points[i] for i in sorted(chosen)]
    rows = []
    for params in tqdm(points, desc="grid search", disable=not progress):
        start = time.perf_counter()
        model = make_model(**params).fit(fit)
        seconds = time.perf_counter() - start
        rows.append({**params, **evaluate(model, valid, k), "fit_s": seconds})
    table = pd.DataFrame(rows)
    if metric not in table:
        raise KeyError(f"metric {metric!r} not among {list(table.columns)}.")
    return table.sort_values(metric, ascending=False, kind="stable").reset_index(drop=True)


def best_params(table: pd.DataFrame, grid: dict[str, list[Any]]) -> dict[str, Any]:
    """The parameters of the first (best) row of a :func:`grid_search` table, as Python types."""
    row = table.iloc[0]
    return {name: type(grid[name][0])(row[name]) for name in grid}


def search_key(fit: Interactions, valid: Interactions, **about: Any) -> dict[str, Any]:
    """What a stored search was run on: both splits' shapes, sizes and a CRC32 of their
    entries, plus ``about`` (e.g. dataset, seed, grid). Two runs on the same splits and
    settings give equal keys; any other data gives another key."""

    def crc(part: Interactions) -> int:
        m = part.matrix.tocsr()
        value = zlib.crc32(np.ascontiguousarray(m.indptr, dtype=np.int64).tobytes())
        return zlib.crc32(np.ascontiguousarray(m.indices, dtype=np.int64).tobytes(), value)

    key = {name: {"shape": list(part.shape), "nnz": int(part.nnz), "crc32": crc(part)}
           for name, part in (("fit", fit), ("valid", valid))}  # fmt: skip
    plain: dict[str, Any] = json.loads(json.dumps({**key, **about}))  # comparable on reload
    return plain


def write_search(
    path: str | os.PathLike[str], table: pd.DataFrame, key: dict[str, Any], **about: Any
) -> Path:
    """Store a :func:`grid_search` table with its :func:`search_key` (and ``about``: script,
    date, machine) as JSON; the file is replaced atomically."""
    content = {"key": key, **about, "table": table.to_dict("records")}
    return atomic_write_text(path, json.dumps(content, indent=1) + "\n")


def read_search(path: str | os.PathLike[str], key: dict[str, Any]) -> pd.DataFrame | None:
    """The table stored by :func:`write_search` if the file exists and its key equals ``key``
    (same splits and settings), else None, logging why."""
    target = Path(path)
    if not target.exists():
        logger.info("no stored search at %s", target)
        return None
    content = json.loads(target.read_text())
    if content.get("key") != key:
        logger.warning("%s was run on other data or settings; not used", target)
        return None
    return pd.DataFrame(content["table"])


def grid_edges(best: dict[str, Any], grid: dict[str, list[Any]]) -> dict[str, str]:
    """The parameters whose chosen value lies on an edge of their grid: name -> "lowest" or
    "highest". Only numeric parameters searched over two or more values count (a single value
    is fixed, not chosen; strings have no order). An optimum on an edge is not bracketed: the
    next value beyond it might be better still."""
    if not isinstance(best, dict):
        raise TypeError(f"best must be a dict of parameter -> chosen value, got {best!r}.")
    edges = {}
    for name, values in grid.items():
        numeric = [v for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)]
        if len(set(numeric)) < 2 or len(numeric) != len(values) or name not in best:
            continue
        if best[name] == min(numeric):
            edges[name] = "lowest"
        elif best[name] == max(numeric):
            edges[name] = "highest"
    return edges


def check_interior(
    best: dict[str, Any], grid: dict[str, list[Any]], reasons: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Every chosen value on a grid edge (:func:`grid_edges`) must come with a recorded reason
    (why the grid stops there: a cost, a bound of the parameter, a measured plateau).

    Returns ``{name: {"side": ..., "reason": ...}}`` for the edges, to store with the choice;
    raises ValueError naming each edge without a reason in ``reasons`` (name -> reason).
    """
    reasons = reasons or {}
    unknown = set(reasons) - set(grid)
    if unknown:
        raise ValueError(f"reasons name parameters not in the grid: {sorted(unknown)}; "
                         f"the grid has {sorted(grid)}.")  # fmt: skip
    edges = grid_edges(best, grid)
    missing = {name: side for name, side in edges.items() if not str(reasons.get(name, "")).strip()}
    if missing:
        described = ", ".join(
            f"{name}={best[name]!r} is the {side} of {sorted(grid[name])}"
            for name, side in missing.items()
        )
        raise ValueError(
            f"chosen values on the edge of their grid: {described}. Extend the grid beyond "
            "that value until the optimum is interior, or pass reasons={name: why the grid "
            "stops there}."
        )
    return {name: {"side": side, "reason": reasons[name]} for name, side in edges.items()}
