"""The course site: offline maths (MathML), no CDN scripts, navigation, index summaries; and the
same site opened in headless Chromium (skipped cleanly where no Chromium or playwright)."""

from __future__ import annotations

import base64
import io

import nbformat
import pytest

from recsys_lib.course import site
from recsys_lib.course.notebooks import RECORD_MIME
from recsys_lib.course.sitecheck import check_site, find_chromium

WIDGET = "application/vnd.jupyter.widget-view+json"


def png_bytes() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [1, 0, 2])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def executed_notebook(path, title: str, summary: str, metric: tuple[str, float]):
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"# {title}\n\n{summary} A second sentence.\n\n"
        "$$\\cos(u, v) = \\frac{u \\cdot v}{\\lVert u \\rVert \\, \\lVert v \\rVert}$$\n\n"
        "with inline $x_i \\in \\mathbb{R}^d$ and $h^* = \\arg\\max_h s_h$; see [the index](index.html)."
    ))  # fmt: skip
    code = nbformat.v4.new_code_cell("plot()")
    code.outputs = [
        nbformat.v4.new_output("display_data", data={WIDGET: {"model_id": "x"}, "text/plain": "0%"}),
        nbformat.v4.new_output("stream", name="stdout", text="done\n"),
        nbformat.v4.new_output("display_data", data={
            "image/png": base64.b64encode(png_bytes()).decode(), "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={
            RECORD_MIME: {"name": metric[0], "value": metric[1]}, "text/plain": "m"}),
    ]  # fmt: skip
    nb.cells.append(code)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    src = root / "notebooks"
    src.mkdir()
    executed_notebook(src / "00_quickstart.ipynb", "Quick start", "Day one in twelve cells.",
                      ("hybrid_ndcg@10", 0.3125))  # fmt: skip
    executed_notebook(src / "01_text_descriptions.ipynb", "Chapter 1 — Text",
                      "Films become sentences.", ("n_items", 3))  # fmt: skip
    executed_notebook(src / "03_matrix_factorization.ipynb", "Chapter 3 — Factors",
                      "Ratings alone.", ("als_ndcg@10", 0.41))  # fmt: skip
    out = root / "site"
    site.build_site(src, out)
    return out


def test_tex_to_mathml():
    inline = site.tex_to_mathml(r"x_i")
    assert inline.startswith("<math") and 'display="inline"' in inline and "<msub>" in inline
    assert 'display="block"' in site.tex_to_mathml(r"\frac{a}{b}", display=True)
    assert '<mi mathvariant="normal">arg</mi>' in site.tex_to_mathml(r"\arg\max_h s")
    assert "\\arg" not in site.tex_to_mathml(r"\arg\max_h s")


def test_chapter_summary_and_publishable():
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "# T\n\nNew *films* have no `ratings`. So. Text!"}
        ]
    }
    assert site.chapter_summary(nb) == "New films have no ratings. So. Text!"
    assert site.chapter_summary(nb, min_chars=10) == "New films have no ratings."
    assert site.chapter_summary({"cells": []}) == ""
    raw = {"metadata": {"widgets": {}}, "cells": [{"cell_type": "code", "outputs": [
        {"data": {WIDGET: {}}}, {"data": {"text/plain": "1"}}]}]}  # fmt: skip
    clean = site.publishable(raw)
    assert "widgets" not in clean["metadata"] and clean["cells"][0]["outputs"] == [
        {"data": {"text/plain": "1"}}
    ]
    assert "widgets" in raw["metadata"]  # the input is not modified


def test_page_chrome_links_neighbours():
    chapters = [("a.html", "A"), ("b.html", "B"), ("c.html", "C")]
    top, bottom = site.page_chrome(chapters, 1, {"m_ndcg@10": 0.5})
    assert 'href="b.html" class="current"' in top and 'href="index.html"' in top
    assert 'rel="prev" href="a.html"' in bottom and 'rel="next" href="c.html"' in bottom
    assert "m_ndcg@10" in bottom and "0.5" in bottom
    first, last = site.page_chrome(chapters, 0, {})[1], site.page_chrome(chapters, 2, {})[1]
    assert 'rel="prev"' not in first and 'rel="next"' not in last


def test_built_pages_are_offline_and_navigable(built):
    index = (built / "index.html").read_text()
    assert "Day one in twelve cells." in index and "Films become sentences." in index
    assert "hybrid_ndcg@10 = 0.3125" in index and "als_ndcg@10 = 0.41" in index
    for page in ("00_quickstart", "01_text_descriptions", "03_matrix_factorization"):
        text = (built / f"{page}.html").read_text()
        assert "<math" in text and "$$" not in text
        for banned in ("require.js", "require.min.js", "mathjax", "MathJax", "cdn.", "unpkg"):
            assert banned not in text, f"{page}: {banned}"
        assert 'class="course-nav"' in text and 'class="jupyter-widgets' not in text
        assert "<pre>0%" not in text and "<pre>done" in text
    middle = (built / "01_text_descriptions.html").read_text()
    assert 'rel="prev" href="00_quickstart.html"' in middle
    assert 'rel="next" href="03_matrix_factorization.html"' in middle


def _browser_ready() -> None:
    pytest.importorskip("playwright.sync_api")
    if find_chromium() is None:
        pytest.skip("no Chromium binary (install Debian's chromium package to run this check)")


def test_every_page_passes_in_headless_chromium(built, tmp_path):
    _browser_ready()
    reports = check_site(built, tmp_path / "shots")
    assert [r.page for r in reports] == [
        "index.html", "00_quickstart.html", "01_text_descriptions.html",
        "03_matrix_factorization.html",
    ]  # fmt: skip
    for r in reports:
        assert r.ok, (r.page, r.problems)
        assert (tmp_path / "shots" / f"{r.page[:-5]}.png").read_bytes()[:4] == b"\x89PNG"
    chapters = [r for r in reports if r.page != "index.html"]
    assert all(r.images == 1 and r.math >= 3 for r in chapters)


def test_the_browser_check_catches_broken_pages(tmp_path):
    _browser_ready()
    (tmp_path / "index.html").write_text(
        "<html><body><p>$$x^2$$</p><div class='jp-RenderedMarkdown'>$$\\frac{a}{b}$$</div>"
        "<img src='missing.png'><a href='nowhere.html'>x</a><a href='#nope'>y</a>"
        "<script src='https://example.com/x.js'></script>"
        "<div data-mime-type='application/vnd.jupyter.stderr'>TqdmWarning: IProgress not found</div>"
        "<script>console.error('boom')</script></body></html>"
    )
    (report,) = check_site(tmp_path)
    text = " | ".join(report.problems)
    for words in (
        "image not loaded",
        "untypeset TeX",
        "missing file",
        "anchor #nope",
        "external request blocked: https://example.com/x.js",
        "console error: boom",
    ):
        assert words in text, words  # fmt: skip
