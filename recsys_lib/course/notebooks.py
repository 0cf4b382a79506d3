"""Notebook harness: record metrics, read them back, run the course, check for regressions.

* :func:`record` shows a value in a notebook and embeds it in the executed notebook under a
  custom MIME type, so tests and the run summary read it back (no scrapbook needed).
* :func:`read_records` reads those values from an executed ``.ipynb``.
* ``python -m recsys_lib.course.notebooks run [--smoke] [--only PATTERN] [--cell-timeout S]`` executes
  every notebook in order with papermill, writes ``build/notebooks/*.ipynb`` (atomically),
  ``build/metrics.json`` and ``build/summary.md``, and exits non-zero naming the failing
  notebook and cell, also after a cell timeout, a dead kernel or Ctrl-C.
* ``python -m recsys_lib.course.notebooks check EXPECTED.json [...]`` compares ``build/metrics.json``
  with the bands of :mod:`recsys_lib.course.bands`; ``validate`` checks that every band has a reason.
* ``python -m recsys_lib.course.notebooks bands NOTEBOOK --seeds 20`` runs a notebook's smoke
  configuration over seeds and writes the measured spread into its expected file.

Paths come from the project home (``$RECSYS_HOME`` or the checkout found from the working
directory, :func:`recsys_lib.runtime.project_home`), never from the installed package.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys_lib.course.bands import (  # noqa: F401  (re-exported: the harness's public names)
    CheckRow,
    check_metrics,
    format_check,
    is_timing_metric,
    measure_bands,
    merge_measured,
    read_expected,
    update_expected,
    validate_expected,
)
from recsys_lib.course.kernels import NATIVE, config_names, kernel_switches
from recsys_lib.runtime import atomic_write_text, project_home, setting, temporary_environ

RECORD_MIME = "application/vnd.recsys-record+json"
FULL_CELL_TIMEOUT = 1800  # seconds one cell may run in a full run before it is stopped
SMOKE_CELL_TIMEOUT = 600  # the same in smoke mode: catches a hang, leaves room for a loaded machine
FIRST_NOTEBOOK = "00_quickstart"  # day-one engineers read it first, so it runs first
SKIPPED_NOTEBOOKS = {"TEMPLATE"}


def _to_json(value: object) -> Any:
    """Numpy scalars/arrays and tuples to plain JSON types; NaN stays a float."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"record() takes numbers, strings, bools, lists and dicts; got {type(value).__name__}. "
        "Convert it first (e.g. float(x) or df.to_dict())."
    )


def record(name: str, value: object) -> None:
    """Show ``name = value`` and store it in the notebook's outputs for tests and summaries."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"record() needs a non-empty metric name, got {name!r}.")
    payload = {"name": name, "value": _to_json(value)}
    text = f"{name} = {value:.4f}" if isinstance(value, float) else f"{name} = {value!r}"
    try:
        from IPython.display import display

        display({RECORD_MIME: payload, "text/plain": text}, raw=True)
    except ImportError:  # plain Python: still tell the reader
        print(text)


def read_records(notebook_path: str | Path) -> dict[str, Any]:
    """All values recorded in an executed notebook, by name (a later record wins)."""
    with open(notebook_path, encoding="utf-8") as handle:
        notebook = json.load(handle)
    values = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(RECORD_MIME)
            if payload is not None:
                if isinstance(payload, str):
                    payload = json.loads(payload)
                values[payload["name"]] = payload["value"]
    return values


def notebook_dir() -> Path:
    """``notebooks/`` in the project home."""
    return project_home() / "notebooks"


def default_build_dir() -> Path:
    """``build/`` in the project home: executed notebooks, metrics, summaries."""
    return project_home() / "build"


def list_notebooks(directory: Path | None = None, only: str | None = None) -> list[Path]:
    """Course notebooks in run order: the quick start first, then by file name."""
    directory = notebook_dir() if directory is None else Path(directory)
    found = [p for p in sorted(directory.glob("*.ipynb")) if p.stem not in SKIPPED_NOTEBOOKS]
    found.sort(key=lambda p: (p.stem != FIRST_NOTEBOOK, p.name))
    if only:
        found = [p for p in found if fnmatch.fnmatch(p.stem, f"*{only}*")]
    return found


@dataclass
class RunResult:
    """One notebook's run: wall time, recorded metrics, and where it failed if it did."""

    notebook: str
    seconds: float
    metrics: dict[str, Any]
    error: str | None = None
    cell: str | None = None  # "cell 7 (In [5])" of the failing cell
    interrupted: bool = False


@contextlib.contextmanager
def kernel_environment(home: Path | None = None) -> Iterator[None]:
    """Environment the kernels inherit: inline figures and the project home, restored after.

    A headless ``MPLBACKEND`` such as Agg (set for tests) would keep every figure out of the
    executed notebook; ``RECSYS_HOME`` makes kernels (whose working directory is
    ``notebooks/``) find ``data/`` and ``build/`` in the same place as this process.
    """
    wanted = {
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "RECSYS_HOME": str(home or project_home()),
    }
    with temporary_environ(wanted):
        yield


PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


def failing_cell(notebook_path: Path) -> str | None:
    """Where a partly executed notebook stopped: ``"cell 7 (In [5])"``, or None.

    The cell papermill marked failed, else the last cell that started (a timeout or a dead
    kernel leaves no failure mark). The index counts the *source* notebook's cells from 0,
    leaving out the cells papermill inserts, so it matches the file a reader opens.
    """
    try:
        cells = json.loads(Path(notebook_path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None
    source_cells = [
        c for c in cells if not PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags", []))
    ]
    found = None
    for index, cell in enumerate(source_cells):
        state = cell.get("metadata", {}).get("papermill", {})
        if state.get("status") == "failed":
            found = (index, cell)
            break
        if state.get("start_time"):
            found = (index, cell)
    if found is None:
        return None
    index, cell = found
    count = cell.get("execution_count")
    return f"cell {index}" + (f" (In [{count}])" if count else "")


def _kernel_manager_with_env(extra: dict[str, str | None]) -> type:
    """A jupyter kernel manager whose kernels start with ``extra`` applied to their environment
    (a ``None`` value removes the variable).

    Passing the switches to the kernel process itself (not through ``os.environ``) lets runs
    under different kernel configurations share one process and its threads.
    """
    from jupyter_client.manager import AsyncKernelManager

    class _EnvKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw):  # type: ignore[no-untyped-def]
            env = {**os.environ, **kw.get("env", {})}
            for key, value in extra.items():
                if value is None:
                    env.pop(key, None)
                else:
                    env[key] = value
            kw["env"] = env
            return await super()._async_pre_start_kernel(**kw)

    return _EnvKernelManager


def _execute(
    notebook: Path,
    output: Path,
    params: dict[str, Any],
    cell_timeout: float | None,
    kernel_env: dict[str, str | None] | None = None,
) -> tuple[str | None, bool]:
    """papermill into ``output``; returns (error text or None, interrupted)."""
    import papermill as pm

    extra = {"kernel_manager_class": _kernel_manager_with_env(kernel_env)} if kernel_env else {}
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters=params,
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=False,
            execution_timeout=cell_timeout,
            **extra,
        )
    except pm.PapermillExecutionError as err:
        return f"{err.ename}: {err.evalue}".strip(), False
    except KeyboardInterrupt:
        return "interrupted (KeyboardInterrupt)", True
    except Exception as err:  # a cell timeout, a dead kernel, a kernel that never started
        message = str(err).strip().splitlines()
        return f"{type(err).__name__}: {message[0] if message else ''}".strip(), False
    return None, False


def execute_notebook(
    notebook: Path,
    output: Path,
    *,
    smoke: bool,
    parameters: dict[str, Any] | None = None,
    cell_timeout: float | None = None,
    kernels: str | None = None,
) -> RunResult:
    """Run one notebook with papermill; return its metrics or the failing cell and error.

    The executed notebook is written to a hidden temporary file and renamed onto ``output``
    only once complete (a killed run never leaves a half-written ``output``); a notebook that
    failed is kept too, so its traceback can be read. ``cell_timeout`` (seconds per cell)
    defaults to :data:`SMOKE_CELL_TIMEOUT` or :data:`FULL_CELL_TIMEOUT`. ``kernels`` names a
    kernel-variation configuration (:mod:`recsys_lib.course.kernels`) the kernel starts under
    (``None``: whatever this process's environment says).
    """
    kernel_env = None if kernels is None else kernel_switches(kernels)
    notebook, output = Path(notebook), Path(output)
    if cell_timeout is None:
        cell_timeout = SMOKE_CELL_TIMEOUT if smoke else FULL_CELL_TIMEOUT
    params = {"SMOKE": smoke, **(parameters or {})}
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial-{os.getpid()}-{time.time_ns()}.ipynb")
    start = time.perf_counter()
    with kernel_environment():
        error, interrupted = _execute(notebook, partial, params, cell_timeout, kernel_env)
    seconds = time.perf_counter() - start
    cell = failing_cell(partial) if error else None
    metrics: dict[str, Any] = {}
    if partial.exists():
        try:
            metrics = read_records(partial)
            os.replace(partial, output)
        except (OSError, ValueError):  # cut off mid-write: keep no half-written notebook
            partial.unlink(missing_ok=True)
    if error and cell:
        error = f"{cell}: {error}"
    return RunResult(notebook.stem, seconds, metrics, error, cell, interrupted)


def run_all(
    *,
    smoke: bool = False,
    only: str | None = None,
    build_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    cell_timeout: float | None = None,
    kernels: str | None = None,
) -> list[RunResult]:
    """Execute the course; write executed notebooks, metrics.json and summary.md.

    The summary is written even when a notebook fails or the run is interrupted (Ctrl-C
    stops after the current notebook's failure is recorded).
    """
    from tqdm.auto import tqdm

    out_dir = default_build_dir() if build_dir is None else Path(build_dir)
    notebooks = list_notebooks(only=only)
    if not notebooks:
        raise SystemExit(f"No notebook matches {only!r} in {notebook_dir()}.")
    results: list[RunResult] = []
    progress = tqdm(notebooks, desc="notebooks", unit="nb")
    try:
        for path in progress:
            progress.set_postfix_str(path.stem)
            result = execute_notebook(
                path,
                out_dir / "notebooks" / path.name,
                smoke=smoke,
                parameters=parameters,
                cell_timeout=cell_timeout,
                kernels=kernels,
            )
            results.append(result)
            if result.interrupted:
                break
    except KeyboardInterrupt:  # between notebooks
        results.append(
            RunResult("(runner)", 0.0, {}, "interrupted (KeyboardInterrupt)", None, True)
        )
    finally:
        write_summary(results, out_dir, smoke=smoke, kernels=kernels)
    return results


def write_summary(
    results: list[RunResult], build_dir: Path, *, smoke: bool, kernels: str | None = None
) -> None:
    """Merge this run's metrics into build/metrics.json and write build/summary.md (atomically)."""
    build_dir = Path(build_dir)
    metrics_path = build_dir / "metrics.json"
    try:
        merged = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    except ValueError:
        merged = {}  # an unreadable old file is replaced, never half-merged
    for result in results:
        if result.notebook != "(runner)":
            merged[result.notebook] = result.metrics
    atomic_write_text(metrics_path, json.dumps(merged, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# Run summary ({'smoke' if smoke else 'full'} mode, kernels: "
        f"{kernels or setting('RECSYS_KERNELS') or NATIVE})",
        "",
        "| notebook | status | wall time (s) | metrics recorded |",
        "|---|---|---:|---:|",
    ]
    for r in results:
        status = "ok" if r.error is None else f"FAILED ({r.error.splitlines()[0][:160]})"
        lines.append(f"| {r.notebook} | {status} | {r.seconds:.1f} | {len(r.metrics)} |")
    atomic_write_text(build_dir / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def notebook_seed_runner(
    notebook: Path, *, work_dir: Path, cell_timeout: float | None = None, smoke: bool = True
) -> Callable[..., dict[str, Any]]:
    """A ``(seed, kernels="native") -> metrics`` function running ``notebook`` (smoke mode
    unless ``smoke=False``)."""

    def run_seed(seed: int, kernels: str = NATIVE) -> dict[str, Any]:
        output = Path(work_dir) / f"seed{seed}-{kernels}" / notebook.name
        result = execute_notebook(
            notebook,
            output,
            smoke=smoke,
            parameters={"SEED": seed},
            cell_timeout=cell_timeout,
            kernels=kernels,
        )
        if result.error:
            raise RuntimeError(
                f"{notebook.stem} with SEED={seed} under kernels {kernels} failed in {result.error}"
            )
        return result.metrics

    return run_seed


def measure_notebook_bands(
    notebook: Path,
    expected_path: Path,
    *,
    seeds: int = 20,
    reference_seed: int = 42,
    jobs: int = 1,
    kernels: list[str] | None = None,
    smoke: bool = True,
    reference_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``notebook``'s smoke over ``seeds`` seeds (native kernels) and its reference seed
    under each of ``kernels``; rewrite its expected file's bands from what moved.

    ``seeds=1`` re-measures the kernel spread only and keeps the stored seed spreads.
    ``smoke=False`` measures full runs (the full-run tier, ``tests/expected/full/``);
    ``reference_metrics`` (e.g. from ``build/metrics.json`` of a finished ``make run``) stands
    in for the native run of the reference seed, so it is not run again.
    """
    from tqdm.auto import tqdm

    kernels = [k for k in (kernels or []) if k != NATIVE]
    if seeds < 1 or (seeds == 1 and not kernels):
        raise ValueError(
            f"--seeds must be at least 2 to measure a spread (or 1 with --kernels), got {seeds}."
        )
    expected = read_expected(expected_path) if expected_path.exists() else {notebook.stem: {}}
    jobs_list = [(seed, NATIVE) for seed in range(reference_seed, reference_seed + seeds)]
    jobs_list += [(reference_seed, name) for name in kernels]
    known = {(reference_seed, NATIVE): reference_metrics} if reference_metrics else {}
    todo = [job for job in jobs_list if job not in known]
    with tempfile.TemporaryDirectory(prefix="bands-") as work, kernel_environment():
        run_seed = notebook_seed_runner(notebook, work_dir=Path(work), smoke=smoke)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(
                tqdm(
                    pool.map(lambda job: run_seed(*job), todo),
                    total=len(todo),
                    desc=notebook.stem,
                )
            )
    runs = {**known, **dict(zip(todo, results, strict=True))}
    seed_runs = [m for (_, k), m in runs.items() if k == NATIVE]
    kernel_runs = {k: m for (_, k), m in runs.items() if k != NATIVE}
    expected[notebook.stem] = merge_measured(
        expected.get(notebook.stem, {}),
        seed_runs,
        runs[(reference_seed, NATIVE)],
        seeds,
        kernel_runs,
    )
    atomic_write_text(expected_path, json.dumps(expected, indent=2) + "\n")
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.course.notebooks", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks in order")
    run.add_argument("--smoke", action="store_true", help="small, fast configuration")
    run.add_argument("--only", help="run notebooks whose name contains this pattern")
    run.add_argument("--build-dir", type=Path, default=None, help="default: build/ in the home")
    run.add_argument("--dataset", help="DATASET parameter: movielens-100k or your data's path")
    run.add_argument("--kernels", default=None,
                     help="kernel-variation configuration the kernels start under "
                     "(python -m recsys_lib.course.kernels list); default: this environment's")  # fmt: skip
    run.add_argument("--cell-timeout", type=float, default=None,
                     help=f"seconds per cell (default {FULL_CELL_TIMEOUT} full, "
                     f"{SMOKE_CELL_TIMEOUT} smoke)")  # fmt: skip
    check = sub.add_parser("check", help="compare build/metrics.json with expected bands")
    check.add_argument("expected", nargs="+", type=Path)
    check.add_argument("--metrics", type=Path, default=None, help="default: build/metrics.json")
    check.add_argument("--update", action="store_true", help="rewrite stored values")
    validate = sub.add_parser("validate", help="check that every band has a kind and a reason")
    validate.add_argument("expected", nargs="+", type=Path)
    validate.add_argument("--no-kernels", action="store_true",
                          help="do not require a kernel-variation measurement of value bands")  # fmt: skip
    bands = sub.add_parser("bands", help="measure a notebook's smoke metrics over seeds")
    bands.add_argument("notebook", help="a notebook path or a pattern of its name")
    bands.add_argument("--seeds", type=int, default=20)
    bands.add_argument("--reference-seed", type=int, default=42)
    bands.add_argument("--jobs", type=int, default=1, help="notebooks run at once")
    bands.add_argument("--kernels", default=NATIVE,
                       help="kernel configurations to measure the reference seed under: 'all' or "
                       "names separated by commas (native alone: seeds only)")  # fmt: skip
    bands.add_argument("--expected", type=Path, default=None,
                       help="default: tests/expected/<stem>.json in the home "
                       "(tests/expected/full/<stem>.json with --full)")  # fmt: skip
    bands.add_argument(
        "--full",
        action="store_true",
        help="measure full runs (the full-run tier) instead of smoke runs",
    )
    bands.add_argument("--reference-metrics", type=Path, default=None,
                       help="a metrics.json whose values stand in for the native reference run "
                       "(e.g. build/metrics.json after make run)")  # fmt: skip
    args = parser.parse_args(argv)

    if args.command == "run":
        params = None
        if args.dataset:  # a path is made absolute: the kernels do not run in this folder
            own = args.dataset != "movielens-100k"
            params = {"DATASET": str(Path(args.dataset).resolve()) if own else args.dataset}
        if args.kernels:
            config_names(args.kernels)  # an unknown name fails before anything runs
        results = run_all(smoke=args.smoke, only=args.only, build_dir=args.build_dir,
                          parameters=params, cell_timeout=args.cell_timeout,
                          kernels=args.kernels)  # fmt: skip
        for r in results:
            if r.error:
                print(f"FAILED: {r.notebook} ({r.error})", file=sys.stderr)
        if any(r.interrupted for r in results):
            return 130
        return 1 if any(r.error for r in results) else 0

    if args.command == "bands":
        candidate = Path(args.notebook)
        matches = [candidate] if candidate.is_file() else list_notebooks(only=args.notebook)
        if len(matches) != 1:
            print(f"{args.notebook!r} matches {len(matches)} notebooks; name one.", file=sys.stderr)
            return 2
        notebook = matches[0]
        folder = project_home() / "tests" / "expected" / ("full" if args.full else "")
        path = args.expected or folder / f"{notebook.stem}.json"
        reference = None
        if args.reference_metrics:
            reference = json.loads(args.reference_metrics.read_text()).get(notebook.stem)
            if not reference:
                print(f"{args.reference_metrics} holds no metrics of {notebook.stem}.",
                      file=sys.stderr)  # fmt: skip
                return 2
        measure_notebook_bands(notebook, path, seeds=args.seeds,
                               reference_seed=args.reference_seed, jobs=args.jobs,
                               kernels=config_names(args.kernels), smoke=not args.full,
                               reference_metrics=reference)  # fmt: skip
        print(f"updated {path}")
        return 0

    if args.command == "validate":
        problems = [
            p
            for path in args.expected
            for p in validate_expected(read_expected(path), require_kernels=not args.no_kernels)
        ]
        print("\n".join(problems) if problems else "every band has a kind, a check and a reason")
        return 1 if problems else 0

    metrics_path = args.metrics or default_build_dir() / "metrics.json"
    if not metrics_path.exists():
        print(f"{metrics_path} not found: run `make run` (or the run command) first.",
              file=sys.stderr)  # fmt: skip
        return 2
    metrics = json.loads(metrics_path.read_text())
    worst = 0
    for path in args.expected:
        expected = read_expected(path)
        if args.update:
            atomic_write_text(path, json.dumps(update_expected(expected, metrics), indent=2) + "\n")
            print(f"updated {path}")
            continue
        rows = check_metrics(expected, metrics)
        print(format_check(rows))
        if any(r.verdict != "ok" for r in rows):
            worst = 1
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
