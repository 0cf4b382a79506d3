import json
from html.parser import HTMLParser

import nbformat
import pytest

from recsys_lib.course import site


def write_notebook(path, heading: str | None, body: str = "Some text."):
    nb = nbformat.v4.new_notebook()
    if heading is not None:
        nb.cells.append(nbformat.v4.new_markdown_cell(f"{heading}\n\n{body}"))
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, path)
    return path


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs)["href"])


def test_notebook_title_is_the_first_heading(tmp_path):
    path = write_notebook(tmp_path / "03_x.ipynb", "# Chapter 3 — Factors & <friends>")
    assert site.notebook_title(path) == "Chapter 3 — Factors & <friends>"
    nb = {"cells": [{"cell_type": "code", "source": "# not a heading"},
                    {"cell_type": "markdown", "source": ["intro\n", "## Sub heading ##\n"]}]}  # fmt: skip
    assert site.notebook_title(nb) == "Sub heading"
    doubled = {"cells": [{"cell_type": "markdown", "source": "# # Chapter 0 — Data\n\ntext"}]}
    assert site.notebook_title(doubled) == "Chapter 0 — Data"
    assert site.notebook_title(write_notebook(tmp_path / "plain.ipynb", None)) == "plain"


def test_build_site_links_every_chapter(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    write_notebook(src / "01_b.ipynb", "# Chapter 1 — B")
    write_notebook(src / "00_quickstart.ipynb", "# Quick start")
    write_notebook(src / "07_c.ipynb", "# Chapter 7 — C & D")
    write_notebook(src / "TEMPLATE.ipynb", "# Template")
    out = tmp_path / "site"
    assert site.main([str(src), str(out)]) == 0
    index = (out / "index.html").read_text()
    parser = Links()
    parser.feed(index)
    assert parser.links == ["00_quickstart.html", "01_b.html", "07_c.html"]
    for href in parser.links:
        page = (out / href).read_text()
        assert "<html" in page and "Some text." in page
    assert "Chapter 7 — C &amp; D" in index and "Template" not in index
    assert site.main(["build", str(tmp_path / "empty"), str(out)]) == 2


METRICS = {
    "03_matrix_factorization": {"als_ndcg@10": 0.41234567, "als_map": 0.1, "n_users": 943},
    "09_production_and_responsibility": {"int8_mean_cosine": 0.99, "label": "x", "p99_ms": 0.5},
}


def test_headline_metrics_pick_the_named_ones_in_order():
    rows = site.headline_metrics(METRICS)
    assert rows == [
        ("03_matrix_factorization", "als_ndcg@10", 0.41234567),
        ("09_production_and_responsibility", "int8_mean_cosine", 0.99),
    ]
    bands = {"03_matrix_factorization": {"als_ndcg@10": {"kind": "stochastic", "value": 0.41,
                                                         "atol": 0.006, "reason": "seeds"}}}  # fmt: skip
    table = site.results_table(METRICS, full_bands=bands)
    assert "| 03_matrix_factorization | als_ndcg@10 | 0.4123 | ± 0.006 (stochastic) |" in table
    assert "| int8_mean_cosine | 0.99 | none |" in table and "als_map" not in table
    custom = site.headline_metrics(METRICS, {"03_matrix_factorization": ("als_map",)})
    assert custom == [("03_matrix_factorization", "als_map", 0.1)]


def test_every_headline_has_a_full_run_band_and_none_is_a_timing():
    from recsys_lib.course.bands import is_timing_metric

    full = site.read_full_bands()
    for notebook, names in site.HEADLINE.items():
        for name in names:
            assert not is_timing_metric(name), f"{notebook}/{name}: timings are never headlines"
            assert name in full.get(notebook, {}), f"{notebook}/{name} has no full-run band"


def test_readme_rewrite_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    before = "# Project\n\nIntro stays.\n\n"
    after = "\n\n## Later\nUntouched | text\n"
    readme.write_text(f"{before}{site.START_MARKER}\nold table\n{site.END_MARKER}{after}")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    assert site.main(["readme", str(metrics), str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(before + site.START_MARKER + "\n| chapter |")
    assert text.endswith(site.END_MARKER + after)
    assert "old table" not in text and "als_ndcg@10" in text
    assert site.main(["readme", str(metrics), str(readme)]) == 0
    assert readme.read_text() == text  # idempotent


def test_readme_without_markers_is_an_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\nno markers\n")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    assert site.main(["readme", str(metrics), str(readme)]) == 2
    assert "results:start" in capsys.readouterr().err
    assert readme.read_text() == "# Project\nno markers\n"
    with pytest.raises(ValueError, match="comes before"):
        site.replace_block(f"{site.END_MARKER}\n{site.START_MARKER}", "x")
    with pytest.raises(ValueError, match="exactly once"):
        site.replace_block(f"{site.START_MARKER}{site.START_MARKER}{site.END_MARKER}", "x")
