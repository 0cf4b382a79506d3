"""Notebook harness: record metrics, read them back, run the course, check for regressions.

* :func:`record` shows a value in a notebook and embeds it in the executed notebook under a
  custom MIME type, so tests and the run summary read it back (no scrapbook needed).
* :func:`read_records` reads those values from an executed ``.ipynb``.
* ``python -m recsys_lib.notebooks run [--smoke] [--only PATTERN]`` executes every notebook
  in order with papermill, writes ``build/notebooks/*.ipynb``, ``build/metrics.json`` and
  ``build/summary.md``, and exits non-zero naming the failing notebook and cell.
* ``python -m recsys_lib.notebooks check EXPECTED.json [...] [--update]`` compares
  ``build/metrics.json`` with expected values and relative tolerances.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECORD_MIME = "application/vnd.recsys-record+json"
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
BUILD_DIR = ROOT / "build"
FIRST_NOTEBOOK = "00_quickstart"  # day-one engineers read it first, so it runs first
SKIPPED_NOTEBOOKS = {"TEMPLATE"}


def _to_json(value):
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


def record(name: str, value) -> None:
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


def read_records(notebook_path: str | Path) -> dict:
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


def list_notebooks(directory: Path = NOTEBOOK_DIR, only: str | None = None) -> list[Path]:
    """Course notebooks in run order: the quick start first, then by file name."""
    found = [p for p in sorted(directory.glob("*.ipynb")) if p.stem not in SKIPPED_NOTEBOOKS]
    found.sort(key=lambda p: (p.stem != FIRST_NOTEBOOK, p.name))
    if only:
        found = [p for p in found if fnmatch.fnmatch(p.stem, f"*{only}*")]
    return found


@dataclass
class RunResult:
    notebook: str
    seconds: float
    metrics: dict
    error: str | None = None


def execute_notebook(
    notebook: Path, output: Path, *, smoke: bool, parameters: dict | None = None
) -> RunResult:
    """Run one notebook with papermill; return its metrics or the failing cell's error."""
    import papermill as pm

    params = {"SMOKE": smoke, **(parameters or {})}
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    # The kernel inherits our environment; a headless MPLBACKEND such as Agg (set for tests)
    # would keep every figure out of the executed notebook, so use the inline backend there.
    saved_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters=params,
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=False,
        )
    except pm.PapermillExecutionError as err:
        error = f"cell {err.exec_count}: {err.ename}: {err.evalue}"
    finally:
        if saved_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = saved_backend
    seconds = time.perf_counter() - start
    metrics = read_records(output) if output.exists() else {}
    return RunResult(notebook.stem, seconds, metrics, error)


def run_all(
    *,
    smoke: bool = False,
    only: str | None = None,
    build_dir: Path = BUILD_DIR,
    parameters: dict | None = None,
) -> list[RunResult]:
    """Execute the course; write executed notebooks, metrics.json and summary.md."""
    from tqdm.auto import tqdm

    notebooks = list_notebooks(only=only)
    if not notebooks:
        raise SystemExit(f"No notebook matches {only!r} in {NOTEBOOK_DIR}.")
    results = []
    progress = tqdm(notebooks, desc="notebooks", unit="nb")
    for path in progress:
        progress.set_postfix_str(path.stem)
        results.append(
            execute_notebook(
                path, build_dir / "notebooks" / path.name, smoke=smoke, parameters=parameters
            )
        )
    write_summary(results, build_dir, smoke=smoke)
    return results


def write_summary(results: list[RunResult], build_dir: Path, *, smoke: bool) -> None:
    """Merge this run's metrics into build/metrics.json and write build/summary.md."""
    build_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = build_dir / "metrics.json"
    merged = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    for result in results:
        merged[result.notebook] = result.metrics
    metrics_path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# Run summary ({'smoke' if smoke else 'full'} mode)",
        "",
        "| notebook | status | wall time (s) | metrics recorded |",
        "|---|---|---:|---:|",
    ]
    for r in results:
        status = "ok" if r.error is None else f"FAILED ({r.error.splitlines()[0][:120]})"
        lines.append(f"| {r.notebook} | {status} | {r.seconds:.1f} | {len(r.metrics)} |")
    (build_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


@dataclass
class CheckRow:
    metric: str
    expected: float | None
    got: float | None
    change: float | None
    verdict: str


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_metrics(expected: dict, metrics: dict) -> list[CheckRow]:
    """Compare recorded metrics with expected bands.

    ``expected`` maps notebook -> metric -> {"value": v, "rtol": r, "atol": a (optional)}.
    A metric passes when |got - value| <= max(rtol * |value|, atol). Missing or non-numeric
    values fail; a string/bool expected value must match exactly.
    """
    rows = []
    for notebook, bands in expected.items():
        got_nb = metrics.get(notebook, {})
        for name, band in bands.items():
            key = f"{notebook}/{name}"
            want = band["value"]
            got = got_nb.get(name)
            if got is None:
                rows.append(CheckRow(key, want, None, None, "MISSING"))
                continue
            if not (_is_number(want) and _is_number(got)):
                rows.append(CheckRow(key, want, got, None, "ok" if want == got else "CHANGED"))
                continue
            tolerance = max(band.get("rtol", 0.0) * abs(want), band.get("atol", 0.0))
            change = (got - want) / abs(want) if want else got - want
            ok = math.isfinite(got) and abs(got - want) <= tolerance
            rows.append(CheckRow(key, want, got, change, "ok" if ok else "REGRESSION"))
    return rows


def format_check(rows: list[CheckRow]) -> str:
    """The comparison as a fixed-width table."""

    def fmt(x):
        return "-" if x is None else (f"{x:.4g}" if _is_number(x) else str(x))

    header = f"{'metric':<60} {'expected':>10} {'got':>10} {'change':>8}  verdict"
    body = [
        f"{r.metric:<60} {fmt(r.expected):>10} {fmt(r.got):>10} "
        f"{('-' if r.change is None else f'{r.change:+.1%}'):>8}  {r.verdict}"
        for r in rows
    ]
    return "\n".join([header, *body])


#: Metric-name endings that mark timings: recorded in notebooks, never turned into bands
#: (speed depends on the machine and its load; speed targets live in benchmarks/).
TIMING_SUFFIXES = ("_s", "_seconds", "_per_second", "_ms")


def is_timing_metric(name: str) -> bool:
    """True for metric names that record a duration or a rate (see :data:`TIMING_SUFFIXES`)."""
    return name.endswith(TIMING_SUFFIXES)


def update_expected(expected: dict, metrics: dict, default_rtol: float = 0.05) -> dict:
    """Rewrite the expected values from the current metrics, keeping each tolerance.

    New numeric metrics get a band of ``default_rtol``, except timings (:func:`is_timing_metric`).
    """
    updated = {}
    for notebook, bands in expected.items():
        current = metrics.get(notebook, {})
        updated[notebook] = {}
        for name, band in bands.items():
            if name in current:
                updated[notebook][name] = {**band, "value": current[name]}
            else:
                updated[notebook][name] = band
        for name, value in current.items():
            if name not in updated[notebook] and _is_number(value) and not is_timing_metric(name):
                updated[notebook][name] = {"value": value, "rtol": default_rtol}
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_lib.notebooks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks in order")
    run.add_argument("--smoke", action="store_true", help="small, fast configuration")
    run.add_argument("--only", help="run notebooks whose name contains this pattern")
    run.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    run.add_argument("--dataset", help="DATASET parameter: movielens-100k or your data's path")
    check = sub.add_parser("check", help="compare build/metrics.json with expected values")
    check.add_argument("expected", nargs="+", type=Path)
    check.add_argument("--metrics", type=Path, default=BUILD_DIR / "metrics.json")
    check.add_argument("--update", action="store_true", help="rewrite expected from metrics")
    args = parser.parse_args(argv)

    if args.command == "run":
        params = None
        if args.dataset:  # a path is made absolute: the kernels do not run in this folder
            own = args.dataset != "movielens-100k"
            params = {"DATASET": str(Path(args.dataset).resolve()) if own else args.dataset}
        results = run_all(
            smoke=args.smoke, only=args.only, build_dir=args.build_dir, parameters=params
        )
        failed = [r for r in results if r.error]
        for r in failed:
            print(f"FAILED: {r.notebook} ({r.error})", file=sys.stderr)
        return 1 if failed else 0

    if not args.metrics.exists():
        print(
            f"{args.metrics} not found: run `make run` (or the run command) first.", file=sys.stderr
        )
        return 2
    metrics = json.loads(args.metrics.read_text())
    worst = 0
    for path in args.expected:
        expected = json.loads(path.read_text())
        if args.update:
            path.write_text(json.dumps(update_expected(expected, metrics), indent=2) + "\n")
            print(f"updated {path}")
            continue
        rows = check_metrics(expected, metrics)
        print(format_check(rows))
        if any(r.verdict != "ok" for r in rows):
            worst = 1
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
