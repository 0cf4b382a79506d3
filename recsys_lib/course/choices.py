"""Validated choices, written by the chapter that makes them and read by the chapters after it.

A hyper-parameter "chosen on validation in chapter 3" must be the value chapter 3 chose, not a
copy typed into a later notebook. Chapter 3 searches on (fit, valid), both carved from train,
and calls :func:`choose`, which writes the winner with its evidence (validation metric, grid)
to ``build/choices.json``::

    {"full/seed42": {"als": {"value": {...}, "chapter": "03_matrix_factorization",
                             "metric": "ndcg@10", "validation": 0.43, "grid": {...}}}}

Later chapters call :func:`validated`, which reads that entry, or, when the file or the entry
is absent (a chapter run on its own), runs the same search with chapter 3's grid
(:data:`GRIDS`) and writes it, so every chapter still runs alone. Smoke and full runs, and
different split seeds, keep separate entries, and so does each dataset: MovieLens under
"full/seed42", a team's own data under "full/seed42/own-<fingerprint of its ratings>" (see
:func:`recsys_lib.data.owndata.dataset_key`), so chapter 3 run on your data never overwrites
MovieLens's choices. ``RECSYS_CHOICES`` overrides the file's path;
otherwise it lives under ``$RECSYS_HOME/build`` when that is set (see :func:`choices_path`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_lib.data.owndata import MOVIELENS
from recsys_lib.data.splits import BenchmarkData
from recsys_lib.evaluation.tuning import best_params, check_interior, grid_search
from recsys_lib.models.base import Model
from recsys_lib.models.mf import ALS, BPR, EASE, PureSVD
from recsys_lib.runtime import atomic_write_text, project_home, setting_path

logger = logging.getLogger(__name__)

CHOICES_ENV = "RECSYS_CHOICES"

# Chapter 3's validation grids (its parameters cell holds the same lists; a test checks it).
GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    "full": {
        "als": {
            "factors": [16, 32, 64],
            "regularization": [1.0, 10.0, 20.0, 30.0, 50.0, 100.0],
            "alpha": [0.5, 1.0, 2.0],
        },
        "ease": {"regularization": [100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0]},
    },
    "smoke": {
        "als": {"factors": [32], "regularization": [3.0, 30.0], "alpha": [2.0]},
        "ease": {"regularization": [100.0, 400.0]},
    },
}

# The hybrid's text weight w in (1 - w) z(ALS) + w z(text), text = the content profile: chosen on
# validation by chapter 4 (its BLEND_WEIGHTS parameter holds the same list; a test checks it)
# and read by the quick start and the explorer (recsys_lib.course.pipeline.validated_text_weight).
HYBRID_CHOICE = "hybrid_weight"
HYBRID_WEIGHTS: dict[str, list[float]] = {
    "full": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0],
    "smoke": [0.0, 0.1, 1.0],
}

# Why a full grid stops where it does, for each value chosen on its edge (name -> parameter ->
# reason; see :func:`recsys_lib.evaluation.tuning.check_interior`). Empty: every full-run
# optimum of chapter 3's grids is interior. Smoke grids are too small to bracket anything, so a
# smoke run records :data:`SMOKE_EDGE_REASON` for its edges instead.
EDGE_REASONS: dict[str, dict[str, str]] = {
    HYBRID_CHOICE: {"weight": "0 and 1 are the bounds of a blend weight: ALS alone, text alone"},
}
SMOKE_EDGE_REASON = "smoke run: a grid of one or two values exercises the code, it brackets nothing"

MODELS: dict[str, Callable[..., Model]] = {
    "als": ALS,
    "ease": EASE,
    "puresvd": PureSVD,
    "bpr": BPR,
}


def choices_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``$RECSYS_CHOICES``, else ``$RECSYS_HOME/build/choices.json``
    (the project home the notebook runner gives its kernels), else ``build/choices.json`` in
    the checkout found from the working directory (:func:`recsys_lib.runtime.project_home`)."""
    if path:
        return Path(path)
    return setting_path(CHOICES_ENV) or project_home() / "build" / "choices.json"


def _key(smoke: bool, seed: int, dataset: str = MOVIELENS) -> str:
    base = f"{'smoke' if smoke else 'full'}/seed{int(seed)}"
    return base if dataset == MOVIELENS else f"{base}/{dataset}"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); delete it and re-run chapter 3 to rebuild it."
        ) from error
    if not isinstance(content, dict):
        raise ValueError(f"{path} should hold a JSON object; delete it and re-run chapter 3.")
    return content


def read_choice(
    name: str,
    *,
    smoke: bool,
    seed: int,
    path: str | os.PathLike[str] | None = None,
    dataset: str = MOVIELENS,
) -> dict[str, Any] | None:
    """The stored record of choice ``name`` ({"value", "chapter", ...}), or None if absent.

    ``dataset``: "movielens-100k" or an own dataset's :func:`~recsys_lib.data.owndata.dataset_key`.
    """
    record: dict[str, Any] | None = (
        _load(choices_path(path)).get(_key(smoke, seed, dataset), {}).get(name)
    )
    return record


def write_choice(
    name: str,
    value: object,
    *,
    chapter: str,
    smoke: bool,
    seed: int,
    evidence: dict[str, Any] | None = None,
    path: str | os.PathLike[str] | None = None,
    dataset: str = MOVIELENS,
) -> Path:
    """Store ``value`` (JSON-able) as choice ``name`` with where it came from; returns the file.

    Other entries are kept; the file is replaced atomically (write, then rename).
    """
    target = choices_path(path)
    content = _load(target)
    record = {"value": value, "chapter": chapter, **(evidence or {})}
    content.setdefault(_key(smoke, seed, dataset), {})[name] = json.loads(json.dumps(record))
    return atomic_write_text(target, json.dumps(content, indent=2, sort_keys=True) + "\n")


def search(
    name: str,
    data: BenchmarkData,
    grid: dict[str, list[Any]],
    *,
    seed: int,
    k: int = 10,
    **fixed: Any,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Grid-search model ``name`` (a key of :data:`MODELS`) on (data.fit, data.valid).

    ``fixed`` keyword arguments go to every model (e.g. ``iterations``). Returns the best
    parameters (by validation nDCG@k) and the whole table, best first.
    """
    if name not in MODELS:
        raise KeyError(f"no model called {name!r}; choose one of {sorted(MODELS)}.")
    make = MODELS[name]
    extra = {"seed": seed} if name != "ease" else {}
    table = grid_search(
        lambda **p: make(**extra, **fixed, **p), grid, data.fit, data.valid, k=k, progress=False
    )
    return best_params(table, grid), table


def choose(
    name: str,
    data: BenchmarkData,
    grid: dict[str, list[Any]],
    *,
    chapter: str,
    smoke: bool,
    seed: int,
    k: int = 10,
    path: str | os.PathLike[str] | None = None,
    dataset: str = MOVIELENS,
    edge_reasons: dict[str, str] | None = None,
    **fixed: Any,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """:func:`search`, then :func:`write_choice` of the winner with its validation figure.

    A winner on the edge of its grid needs a reason in ``edge_reasons`` (parameter -> why the
    grid stops there), else ValueError (:func:`~recsys_lib.evaluation.tuning.check_interior`);
    the edges and their reasons are stored with the choice. A smoke run's edges get
    :data:`SMOKE_EDGE_REASON` unless ``edge_reasons`` says otherwise.
    """
    best, table = search(name, data, grid, seed=seed, k=k, **fixed)
    if smoke:
        edge_reasons = {p: SMOKE_EDGE_REASON for p in grid} | (edge_reasons or {})
    edges = check_interior(best, grid, edge_reasons)
    evidence = {
        "metric": f"ndcg@{k}",
        "validation": float(table[f"ndcg@{k}"].iloc[0]),
        "grid": grid,
        "fixed": fixed,
        "edges": edges,
        "protocol": "grid search on (fit, valid) carved from train; benchmark split seed",
    }
    write_choice(name, best, chapter=chapter, smoke=smoke, seed=seed, evidence=evidence, path=path,
                 dataset=dataset)  # fmt: skip
    return best, table


def validated(
    name: str,
    data: BenchmarkData | Callable[[], BenchmarkData],
    *,
    smoke: bool,
    seed: int,
    k: int = 10,
    path: str | os.PathLike[str] | None = None,
    dataset: str = MOVIELENS,
) -> dict[str, Any]:
    """Chapter 3's validated parameters for model ``name`` ("als" or "ease").

    Read from the choices file; when absent, chapter 3's search (grid from :data:`GRIDS`) is
    run on ``data`` and written, so the caller gets the same value chapter 3 would have.
    ``data`` may be a function returning the :class:`BenchmarkData`, called only then.
    ``dataset``: "movielens-100k" or an own dataset's :func:`~recsys_lib.data.owndata.dataset_key`
    (each dataset keeps its own choices).
    """
    stored = read_choice(name, smoke=smoke, seed=seed, path=path, dataset=dataset)
    if stored is not None:
        return dict(stored["value"])
    grids = GRIDS["smoke" if smoke else "full"]
    if name not in grids:
        raise KeyError(
            f"no stored choice {name!r} for {_key(smoke, seed, dataset)} in {choices_path(path)} and no "
            f"default grid to re-run; run chapter 3 first (grids exist for {sorted(grids)})."
        )
    logger.info("choice %r absent from %s: running chapter 3's search", name, choices_path(path))
    best, _ = choose(
        name,
        data() if callable(data) else data,
        grids[name],
        chapter="03_matrix_factorization",
        smoke=smoke,
        seed=seed,
        k=k,
        path=path,
        dataset=dataset,
        edge_reasons=EDGE_REASONS.get(name),
    )
    return best
