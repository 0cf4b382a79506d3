"""The course as a static site, and the headline results table of the README.

    python -m recsys_lib.site build/notebooks build/site        # make docs
    python -m recsys_lib.site readme build/metrics.json README.md   # make results

``build`` renders every executed notebook in the source folder (the course's run order, the
quick start first, the template skipped) to ``<stem>.html`` with nbconvert's
``HTMLExporter`` (plots are embedded, so the folder is self-contained) and writes an
``index.html`` that links each chapter under its title, the first heading of the notebook.

``readme`` rewrites only the block between ``<!-- results:start -->`` and
``<!-- results:end -->`` in README.md with a table of headline metrics from
``build/metrics.json``: for each notebook, the metrics :data:`HEADLINE` names for it. The rest
of the README is left byte for byte.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import sys
from pathlib import Path

from recsys_lib.notebooks import list_notebooks

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"

#: Metric names shown in the README besides every "*ndcg@10*" metric (any notebook).
# The README's headline table: per notebook, the few metrics a reader should see first.
HEADLINE: dict[str, tuple[str, ...]] = {
    "00_data_and_evaluation": ("popularity_ndcg@10", "random_ndcg@10"),
    "00_quickstart": ("hybrid_ndcg@10",),
    "02_bert_embeddings": ("text (description cosine)_ndcg@10", "genre_purity_mean_pooling"),
    "03_matrix_factorization": (
        "als_ndcg@10", "ease_ndcg@10", "puresvd_ndcg@10", "bpr_ndcg@10", "als_fit_s",
    ),
    "04_similarity_and_hybrid": (
        "hybrid_ndcg@10", "hybrid_lift", "grid_blend_ndcg@10", "cold_recall_vs_random",
    ),
    "05_fine_tuning": (
        "frozen_MiniLM_ndcg@10", "fine_tuned_two_tower_ndcg@10", "two_tower_ndcg_lift",
        "cross_encoder_auc", "logistic_auc",
    ),
    "08_business_objectives": (
        "ab_truth_revenue_lift", "ab_truth_ctr_change", "ab_revenue_p_value",
    ),
    "09_production_and_responsibility": (
        "int8_speedup", "int8_mean_cosine", "serving_p99_ms", "unique_share_all_fields",
        "dp_ndcg@10_eps1",
    ),
    "10_scaling_out_with_spark": ("implicit_ndcg@10", "spark_ndcg@10", "distributed_metric_max_abs_diff"),
}  # fmt: skip

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def notebook_title(notebook: dict | str | os.PathLike, fallback: str | None = None) -> str:
    """The text of the first Markdown heading of a notebook (a path or its JSON as a dict).

    Falls back to ``fallback`` (default: the file stem) when no heading exists.
    """
    if not isinstance(notebook, dict):
        path = Path(notebook)
        fallback = fallback if fallback is not None else path.stem
        notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for line in source.splitlines():
            match = _HEADING.match(line)
            if match:  # "# # Title" (a doubled marker) still gives "Title"
                return match.group(1).lstrip("#").strip() or match.group(1)
    return fallback if fallback is not None else "Untitled"


def render_notebook(path: Path, out_dir: Path, exporter=None) -> Path:
    """One notebook to ``out_dir/<stem>.html`` with nbconvert's HTMLExporter (lab template)."""
    if exporter is None:
        from nbconvert import HTMLExporter

        exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_filename(str(path))
    out = out_dir / f"{path.stem}.html"
    out.write_text(body, encoding="utf-8")
    return out


def index_html(
    chapters: list[tuple[str, str]], title: str = "Recommender systems with LLMs"
) -> str:
    """The index page: (link target, chapter title) pairs as an ordered list."""
    items = "\n".join(
        f'    <li><a href="{html.escape(href, quote=True)}">{html.escape(name)}</a></li>'
        for href, name in chapters
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)}</title>
  <style>
    body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto;
           line-height: 1.5; padding: 0 1rem; }}
    li {{ margin: 0.4rem 0; }}
  </style>
</head>
<body>
  <h1>{html.escape(title)}</h1>
  <p>The executed chapters of the course, in reading order.</p>
  <ol>
{items}
  </ol>
</body>
</html>
"""


def build_site(notebook_dir: str | os.PathLike, site_dir: str | os.PathLike) -> Path:
    """Render every notebook of ``notebook_dir`` and write ``site_dir/index.html``; returns it."""
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    notebook_dir, site_dir = Path(notebook_dir), Path(site_dir)
    notebooks = list_notebooks(notebook_dir)
    if not notebooks:
        raise FileNotFoundError(
            f"no notebooks in {notebook_dir}; execute the course first (`make run`, which "
            "writes build/notebooks/)."
        )
    site_dir.mkdir(parents=True, exist_ok=True)
    chapters = []
    exporter = HTMLExporter(template_name="lab")
    for path in tqdm(notebooks, desc="rendering", unit="nb"):
        page = render_notebook(path, site_dir, exporter)
        chapters.append((page.name, notebook_title(path)))
    index = site_dir / "index.html"
    index.write_text(index_html(chapters), encoding="utf-8")
    return index


def headline_metrics(metrics: dict, headline=None) -> list[tuple[str, str, float]]:
    """(notebook, metric, value) for the README: the metrics ``headline`` names per notebook.

    ``metrics`` is build/metrics.json: notebook -> metric name -> value; ``headline`` maps a
    notebook to metric names (default :data:`HEADLINE`). Missing or non-numeric values are
    skipped; rows follow the notebook order, then the listed metric order.
    """
    headline = HEADLINE if headline is None else headline
    rows = []
    for notebook in sorted(metrics):
        for name in headline.get(notebook, ()):
            value = metrics[notebook].get(name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric:
                rows.append((notebook, name, float(value)))
    return rows


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def results_table(metrics: dict, headline=None) -> str:
    """The headline metrics as a Markdown table (chapter | metric | value)."""
    rows = headline_metrics(metrics, headline)
    lines = ["| chapter | metric | value |", "|---|---|---:|"]
    lines += [f"| {nb} | {name} | {_fmt(value)} |" for nb, name, value in rows]
    if not rows:
        lines.append("| (no headline metrics recorded yet) | | |")
    return "\n".join(lines)


def replace_block(text: str, block: str, start: str = START_MARKER, end: str = END_MARKER) -> str:
    """``text`` with everything between the two markers replaced by ``block`` (markers kept)."""
    counts = {marker: text.count(marker) for marker in (start, end)}
    if counts[start] != 1 or counts[end] != 1:
        raise ValueError(
            f"README must contain each marker exactly once, found {start} x{counts[start]} and "
            f"{end} x{counts[end]}. Put the two lines where the results table should go."
        )
    head, rest = text.split(start)
    if end not in rest:
        raise ValueError(f"{end} comes before {start}; swap them.")
    _, tail = rest.split(end)
    return f"{head}{start}\n{block}\n{end}{tail}"


def update_readme(metrics_path: str | os.PathLike, readme_path: str | os.PathLike) -> Path:
    """Rewrite the results block of the README from ``metrics_path``; returns the README path."""
    metrics_path, readme_path = Path(metrics_path), Path(readme_path)
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: run `make run` first.")
    if not readme_path.is_file():
        raise FileNotFoundError(f"{readme_path} not found.")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    text = readme_path.read_text(encoding="utf-8")
    new = replace_block(text, results_table(metrics))
    tmp = readme_path.with_name(f".{readme_path.name}.tmp{os.getpid()}")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, readme_path)
    return readme_path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "readme":
        parser = argparse.ArgumentParser(prog="python -m recsys_lib.site readme")
        parser.add_argument("metrics", type=Path, help="build/metrics.json")
        parser.add_argument("readme", type=Path, help="README.md with the results markers")
        args = parser.parse_args(argv[1:])
        try:
            path = update_readme(args.metrics, args.readme)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"updated the results table in {path}")
        return 0
    if argv and argv[0] == "build":
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.site",
        description="Render executed notebooks to a static site (or: readme METRICS README).",
    )
    parser.add_argument("notebooks", type=Path, help="folder of executed notebooks")
    parser.add_argument("site", type=Path, help="output folder for the HTML pages")
    args = parser.parse_args(argv)
    try:
        index = build_site(args.notebooks, args.site)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
