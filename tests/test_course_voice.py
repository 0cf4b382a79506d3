"""The course speaks to learners: no development bookkeeping in notebooks, README or docs.

Issue numbers, work sessions, closing notes, development rounds and "target ... not met"
verdicts belong in commit messages and ``benchmarks/`` output, not in the text a learner reads.
Every cell is checked, code included, because printed strings reach the reader too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (name, pattern): each names a kind of bookkeeping a reference text never contains.
BOOKKEEPING = [
    ("issue number", re.compile(r"\bissues?\s*#?\s*\d+", re.I)),
    ("hash issue reference", re.compile(r"(?<![\w&#/'\"])#\d+\b")),
    ("work session", re.compile(r"\bsessions?\s+\d+\b", re.I)),
    ("closing note", re.compile(r"\bclosing\s+note", re.I)),
    ("target verdict", re.compile(r"\bnot\s+met\b", re.I)),
    ("development round", re.compile(r"\b(development|work)\s+rounds?\b|\bround\s+\d+\b", re.I)),
    ("the issue behind", re.compile(r"\bthe\s+issue\s+(behind|that|of)\b", re.I)),
    ("stretch target", re.compile(r"\bstretch\s+(target|goal)\b", re.I)),
]


def bookkeeping(text: str) -> list[str]:
    """Every bookkeeping mention in ``text`` as ``"kind: 'excerpt'"`` (empty when clean)."""
    found = []
    for name, pattern in BOOKKEEPING:
        for match in pattern.finditer(text):
            excerpt = text[max(0, match.start() - 30) : match.end() + 30].replace("\n", " ")
            found.append(f"{name}: {excerpt!r}")
    return found


def reader_texts() -> list[tuple[str, str]]:
    """(where, text) for every notebook cell, README.md and each docs/*.md."""
    texts = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            texts.append((f"{path.name} cell {index}", "".join(cell["source"])))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        texts.append((path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")))
    return texts


@pytest.mark.parametrize(
    "text",
    [
        "Targets of issue 19: the whole course in 15 minutes.",
        "as decided in #19, the budget is 4 minutes",
        "from the complete run of session 5",
        "## Closing note (figures of this run)",
        'verdict = "met" if ok else "NOT met"',
        "the timing column of development round 3",
        "The issue behind this chapter set a target",
        'print(f"Stretch target (a re-ranker beats ALS): {v}")',
    ],
)
def test_each_kind_of_bookkeeping_is_caught(text):
    assert bookkeeping(text)


@pytest.mark.parametrize(
    "text",
    [
        "Each user's last item is the test target, the one before is the validation target.",
        "p99 is well under 5 ms; round the scores to 4 digits",
        "the session-based recommender reads one browsing session at a time",
        "print(f'{share:.0%} of users')  # the share of users with a rating",
        "colour = '#1f77b4'",
    ],
)
def test_course_prose_is_not_flagged(text):
    assert not bookkeeping(text)


def test_notebooks_readme_and_docs_speak_to_learners():
    texts = reader_texts()
    assert any(where.startswith("README") for where, _ in texts)
    assert sum(where.endswith("cell 0") for where, _ in texts) >= 10  # every notebook was read
    problems = [f"{where}: {hit}" for where, text in texts for hit in bookkeeping(text)]
    assert not problems, "development bookkeeping a learner would read:\n" + "\n".join(problems)
