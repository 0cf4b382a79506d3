"""The course as a static site, and the headline results table of the README.

    python -m recsys_lib.course.site build/notebooks build/site        # make docs
    python -m recsys_lib.course.site readme build/metrics.json README.md   # make results

``build`` renders every executed notebook in the source folder (the course's run order, the
quick start first, the template skipped) to ``<stem>.html`` with nbconvert's
``HTMLExporter`` (plots are embedded, so the folder is self-contained) and writes an
``index.html`` that lists each chapter under its title (the notebook's first heading) with its
one-line summary and headline figures. Every page gets a left navigation, previous/next links
and a table of the metrics it recorded. The site works offline and needs no script: formulas
are converted to MathML at build time (latex2mathml; browsers draw MathML natively, so no
MathJax, no CDN, no require.js), and progress-bar widgets are dropped from the outputs (a
static page has no widget state to show). We keep this small builder rather than Jupyter Book or
mkdocs-jupyter: it renders the executed notebooks as they are, adds only what readers need to
move through the course, and needs no extra toolchain. ``python -m recsys_lib.course.sitecheck``
opens the result in headless Chromium.

``readme`` rewrites only the block between ``<!-- results:start -->`` and
``<!-- results:end -->`` in README.md with a table of headline metrics from
``build/metrics.json``: for each notebook, the metrics :data:`HEADLINE` names for it. The rest
of the README is left byte for byte.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_lib.course.notebooks import list_notebooks, read_records
from recsys_lib.runtime import atomic_write_text

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"

# The README's headline table: per notebook, the few metrics a reader should see first. Each
# has a full-run band in tests/expected/full/ (a test checks it); timings are never headlines
# here (they are recorded in build/summary.md and the README's timing table).
HEADLINE: dict[str, tuple[str, ...]] = {
    "00_data_and_evaluation": ("popularity_ndcg@10", "random_ndcg@10"),
    "00_quickstart": ("hybrid_ndcg@10",),
    "02_bert_embeddings": ("text (description cosine)_ndcg@10", "genre_purity_mean_pooling"),
    "03_matrix_factorization": ("als_ndcg@10", "ease_ndcg@10", "puresvd_ndcg@10", "bpr_ndcg@10"),
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
        "int8_mean_cosine", "unique_share_all_fields", "dp_ndcg@10_eps1",
    ),
    "10_scaling_out_with_spark": ("implicit_ndcg@10", "spark_ndcg@10", "distributed_metric_max_abs_diff"),
}  # fmt: skip

log = logging.getLogger(__name__)

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def notebook_title(
    notebook: dict[str, Any] | str | os.PathLike[str], fallback: str | None = None
) -> str:
    """The text of the first Markdown heading of a notebook (a path or its JSON as a dict).

    Falls back to ``fallback`` (default: the file stem) when no heading exists.
    """
    content = notebook
    if not isinstance(content, dict):
        path = Path(content)
        fallback = fallback if fallback is not None else path.stem
        content = json.loads(path.read_text(encoding="utf-8"))
    for cell in content.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for line in source.splitlines():
            match = _HEADING.match(line)
            if match:  # "# # Title" (a doubled marker) still gives "Title"
                return match.group(1).lstrip("#").strip() or match.group(1)
    return fallback if fallback is not None else "Untitled"


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_VERBATIM_OPERATOR = re.compile(r"<mi>\\(arg|deg|det|dim|gcd|hom|ker|sgn|Pr)</mi>")
_MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """A TeX formula as MathML (latex2mathml), which browsers render natively: no script.

    An unconvertible formula stays visible as TeX in a ``<code class="tex">`` and is logged.
    """
    from latex2mathml.converter import convert

    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
        # operator names latex2mathml passes through verbatim ("<mi>\\arg</mi>"): set upright
        return _VERBATIM_OPERATOR.sub(r'<mi mathvariant="normal">\1</mi>', mathml)
    except Exception as err:  # latex2mathml raises many kinds; keep the page, say which
        log.warning("formula not converted (%s): %s", err, tex[:80])
        return f'<code class="tex">{html.escape(tex)}</code>'


def _exporter() -> HTMLExporter:
    """nbconvert's lab HTML exporter with Markdown maths pre-rendered to MathML."""
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        def block_math(self, body: str) -> str:
            return tex_to_mathml(body, display=True)

        def inline_math(self, body: str) -> str:
            return tex_to_mathml(body)

        def latex_environment(self, name: str, body: str) -> str:
            return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    class MathMLExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context: Any, source: str) -> str:
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False,
                attachments=cell.get("attachments", {}),
                embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text,
                exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options,
            )
            return MarkdownWithMath(renderer=renderer).render(source)

    build: Callable[..., HTMLExporter] = MathMLExporter  # nbconvert's __init__ is unannotated
    return build(template_name="lab")


def publishable(notebook: dict[str, Any]) -> dict[str, Any]:
    """The notebook without widget state and widget outputs (progress bars), for a static page.

    A widget output's text fallback is its first frame ("0%"), and rendering it would pull the
    widget manager from a CDN; the page shows nothing in its place instead.
    """
    notebook = json.loads(json.dumps(notebook))
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if WIDGET_VIEW not in o.get("data", {})]
    return notebook


def render_notebook(
    path: Path,
    out_dir: Path,
    exporter: HTMLExporter | None = None,
    chrome: tuple[str, str] = ("", ""),
) -> Path:
    """One notebook to ``out_dir/<stem>.html`` (nbconvert's lab template, maths as MathML).

    ``chrome``: HTML put right after ``<body>`` and right before ``</body>`` (navigation).
    """
    import nbformat

    exporter = exporter or _exporter()
    cleaned = publishable(json.loads(path.read_text(encoding="utf-8")))
    notebook = nbformat.reads(json.dumps(cleaned), as_version=4)
    body, _ = exporter.from_notebook_node(notebook)
    # maths is MathML already and widgets are gone: drop the CDN scripts
    body = body.replace(f'<script src="{exporter.require_js_url}"></script>', "")
    body = _MATHJAX_BLOCK.sub("", body)
    head, sep, rest = body.partition("<body")
    if sep:
        tag_end = rest.index(">") + 1
        rest = rest[:tag_end] + chrome[0] + rest[tag_end:]
        before, sep2, after = rest.rpartition("</body>")
        rest = before + chrome[1] + sep2 + after if sep2 else rest
        body = head + sep + rest
    out = out_dir / f"{path.stem}.html"
    out.write_text(body, encoding="utf-8")
    return out


def chapter_summary(notebook: dict[str, Any] | str | os.PathLike[str], min_chars: int = 80) -> str:
    """The opening sentences (at least ``min_chars``) of the first paragraph after the title.

    Markdown emphasis and code marks are dropped, so the index shows plain text.
    """
    content = notebook
    if not isinstance(content, dict):
        content = json.loads(Path(content).read_text(encoding="utf-8"))
    for cell in content.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for para in (p.strip() for p in re.split(r"\n\s*\n", source)):
            if not para or para.startswith("#"):
                continue
            text = re.sub(r"[*`]", "", " ".join(para.split()))
            summary = ""
            for sentence in re.findall(r".+?[.!?](?=\s|$)|.+$", text):
                summary = f"{summary} {sentence.strip()}".strip()
                if len(summary) >= min_chars:
                    break
            return summary
    return ""


def _metric_rows(values: dict[str, Any]) -> str:
    cells = []
    for name, value in values.items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        shown = _fmt(float(value)) if numeric else html.escape(str(value))
        cells.append(f"<tr><td>{html.escape(name)}</td><td>{shown}</td></tr>")
    return "\n".join(cells)


SITE_CSS = """
body { margin-left: 17rem !important; }
nav.course-nav { position: fixed; top: 0; left: 0; bottom: 0; width: 15.5rem; overflow-y: auto;
  padding: 1rem; background: #f6f6f4; border-right: 1px solid #ddd; font: 14px system-ui, sans-serif; }
nav.course-nav ol { padding-left: 1.2rem; } nav.course-nav li { margin: 0.35rem 0; }
nav.course-nav a.current { font-weight: 700; }
.course-pager { display: flex; justify-content: space-between; margin: 2rem 1rem;
  font: 15px system-ui, sans-serif; }
.course-metrics { margin: 1rem; font: 14px system-ui, sans-serif; }
.course-metrics td { padding: 0.1rem 0.8rem; border-bottom: 1px solid #eee; }
math { font-size: 1.15em; }
"""


def page_chrome(
    chapters: list[tuple[str, str]], current: int, metrics: dict[str, Any]
) -> tuple[str, str]:
    """(top, bottom) HTML of a chapter page: left navigation; pager and recorded metrics."""
    current_attr = ' class="current" aria-current="page"'
    links = "\n".join(
        f'<li><a href="{html.escape(href, quote=True)}"{current_attr if i == current else ""}>'
        f"{html.escape(name)}</a></li>"
        for i, (href, name) in enumerate(chapters)
    )
    top = (f"<style>{SITE_CSS}</style>\n<nav class=\"course-nav\"><a href=\"index.html\">Course "
           f"index</a>\n<ol>\n{links}\n</ol></nav>\n")  # fmt: skip
    prev = (f'<a rel="prev" href="{html.escape(chapters[current - 1][0], quote=True)}">&larr; '
            f"{html.escape(chapters[current - 1][1])}</a>" if current > 0 else "<span></span>")  # fmt: skip
    nxt = (f'<a rel="next" href="{html.escape(chapters[current + 1][0], quote=True)}">'
           f"{html.escape(chapters[current + 1][1])} &rarr;</a>"
           if current + 1 < len(chapters) else "<span></span>")  # fmt: skip
    table = ""
    if metrics:
        table = (f'<details open class="course-metrics"><summary>Recorded metrics ({len(metrics)})'
                 f"</summary><table>{_metric_rows(metrics)}</table></details>")  # fmt: skip
    bottom = f'{table}\n<nav class="course-pager">{prev}{nxt}</nav>\n'
    return top, bottom


def index_html(
    chapters: list[tuple[str, str]],
    title: str = "Recommender systems with LLMs",
    summaries: list[str] | None = None,
    headlines: list[dict[str, Any]] | None = None,
) -> str:
    """The index page: each (link target, chapter title) with its summary and headline figures."""
    summaries = summaries or [""] * len(chapters)
    headlines = headlines or [{}] * len(chapters)
    items = []
    for (href, name), summary, figures in zip(chapters, summaries, headlines, strict=True):
        shown = ", ".join(f"{html.escape(k)} = {_fmt(float(v))}" for k, v in figures.items())
        items.append(
            f'    <li><a href="{html.escape(href, quote=True)}">{html.escape(name)}</a>'
            + (f'<p class="summary">{html.escape(summary)}</p>' if summary else "")
            + (f'<p class="figures">{shown}</p>' if shown else "")
            + "</li>"
        )
    listing = "\n".join(items)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)}</title>
  <style>
    body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto;
           line-height: 1.5; padding: 0 1rem; }}
    li {{ margin: 0.9rem 0; }}
    p.summary {{ margin: 0.2rem 0; }}
    p.figures {{ margin: 0.2rem 0; color: #555; font-size: 0.9em; }}
  </style>
</head>
<body>
  <h1>{html.escape(title)}</h1>
  <p>The executed chapters of the course, in reading order, each with its headline results.</p>
  <ol>
{listing}
  </ol>
</body>
</html>
"""


def build_site(notebook_dir: str | os.PathLike[str], site_dir: str | os.PathLike[str]) -> Path:
    """Render every notebook of ``notebook_dir`` and write ``site_dir/index.html``; returns it."""
    notebook_dir, site_dir = Path(notebook_dir), Path(site_dir)
    notebooks = list_notebooks(notebook_dir)
    if not notebooks:
        raise FileNotFoundError(
            f"no notebooks in {notebook_dir}; execute the course first (`make run`, which "
            "writes build/notebooks/)."
        )
    site_dir.mkdir(parents=True, exist_ok=True)
    chapters = [(f"{p.stem}.html", notebook_title(p)) for p in notebooks]
    records = [read_records(p) for p in notebooks]
    exporter = _exporter()
    for i, path in enumerate(notebooks):
        log.info("rendering %s", path.name)
        render_notebook(path, site_dir, exporter, page_chrome(chapters, i, records[i]))
    headlines = [
        {name: value for _, name, value in headline_metrics({p.stem: r})}
        for p, r in zip(notebooks, records, strict=True)
    ]
    index = site_dir / "index.html"
    summaries = [chapter_summary(p) for p in notebooks]
    index.write_text(
        index_html(chapters, summaries=summaries, headlines=headlines), encoding="utf-8"
    )
    return index


def headline_metrics(
    metrics: dict[str, Any], headline: dict[str, tuple[str, ...]] | None = None
) -> list[tuple[str, str, float]]:
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


def results_table(
    metrics: dict[str, Any],
    headline: dict[str, tuple[str, ...]] | None = None,
    full_bands: dict[str, Any] | None = None,
) -> str:
    """The headline metrics as a Markdown table (chapter | metric | value | full-run band).

    ``full_bands`` maps notebook -> metric -> spec (tests/expected/full/); a metric without a
    band shows "none".
    """
    from recsys_lib.course.bands import describe_band

    rows = headline_metrics(metrics, headline)
    full_bands = full_bands or {}
    lines = ["| chapter | metric | value | full-run band |", "|---|---|---:|---|"]
    for nb, name, value in rows:
        spec = full_bands.get(nb, {}).get(name)
        band = describe_band(spec) if spec else "none"
        lines.append(f"| {nb} | {name} | {_fmt(value)} | {band} |")
    if not rows:
        lines.append("| (no headline metrics recorded yet) | | | |")
    return "\n".join(lines)


def read_full_bands(folder: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Every full-run band in ``folder`` (default: tests/expected/full/ in the project home)."""
    from recsys_lib.course.bands import read_expected
    from recsys_lib.runtime import project_home

    folder = Path(folder) if folder else project_home() / "tests" / "expected" / "full"
    merged: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        merged.update(read_expected(path))
    return merged


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


def update_readme(
    metrics_path: str | os.PathLike[str], readme_path: str | os.PathLike[str]
) -> Path:
    """Rewrite the results block of the README from ``metrics_path``; returns the README path."""
    metrics_path, readme_path = Path(metrics_path), Path(readme_path)
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: run `make run` first.")
    if not readme_path.is_file():
        raise FileNotFoundError(f"{readme_path} not found.")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    text = readme_path.read_text(encoding="utf-8")
    new = replace_block(text, results_table(metrics, full_bands=read_full_bands()))
    return atomic_write_text(readme_path, new)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "readme":
        parser = argparse.ArgumentParser(prog="python -m recsys_lib.course.site readme")
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
        prog="python -m recsys_lib.course.site",
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
