import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_lib.course import choices
from recsys_lib.course.notebooks import list_notebooks
from recsys_lib.data.splits import benchmark_data
from recsys_lib.evaluation import tuning

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def small_data():
    """Two taste groups of 20 users x 15 items, dense enough for the benchmark split."""
    rng = np.random.default_rng(0)
    rows = [
        (u, i) for u in range(40) for i in range(30) if (u < 20) == (i < 15) and rng.random() < 0.6
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(rating=4.0, timestamp=0)
    return benchmark_data(frame, seed=1)


def test_write_then_read_keeps_modes_and_seeds_apart(tmp_path):
    path = tmp_path / "choices.json"
    assert choices.read_choice("als", smoke=False, seed=42, path=path) is None
    choices.write_choice("als", {"factors": 8}, chapter="03", smoke=False, seed=42, path=path,
                         evidence={"validation": 0.5})  # fmt: skip
    choices.write_choice("als", {"factors": 2}, chapter="03", smoke=True, seed=42, path=path)
    full = choices.read_choice("als", smoke=False, seed=42, path=path)
    assert full == {"value": {"factors": 8}, "chapter": "03", "validation": 0.5}
    assert choices.read_choice("als", smoke=True, seed=42, path=path)["value"] == {"factors": 2}
    assert choices.read_choice("als", smoke=False, seed=7, path=path) is None
    assert sorted(json.loads(path.read_text())) == ["full/seed42", "smoke/seed42"]


def test_each_dataset_keeps_its_own_choices(tmp_path):
    """Chapter 3 run on a team's data must not overwrite (or be read as) MovieLens's choice."""
    path = tmp_path / "choices.json"
    choices.write_choice("als", {"factors": 8}, chapter="03", smoke=True, seed=42, path=path)
    choices.write_choice("als", {"factors": 4}, chapter="03", smoke=True, seed=42, path=path,
                         dataset="own-0123456789ab")  # fmt: skip
    assert choices.read_choice("als", smoke=True, seed=42, path=path)["value"] == {"factors": 8}
    own = choices.read_choice("als", smoke=True, seed=42, path=path, dataset="own-0123456789ab")
    assert own["value"] == {"factors": 4}
    assert choices.read_choice("als", smoke=True, seed=42, path=path, dataset="own-other") is None
    assert sorted(json.loads(path.read_text())) == ["smoke/seed42", "smoke/seed42/own-0123456789ab"]


def test_environment_variables_move_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(choices.CHOICES_ENV, raising=False)
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    assert choices.choices_path() == tmp_path / "build" / "choices.json"
    monkeypatch.setenv(choices.CHOICES_ENV, str(tmp_path / "x.json"))
    assert choices.choices_path() == tmp_path / "x.json"
    assert choices.choices_path(tmp_path / "y.json") == tmp_path / "y.json"


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "choices.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        choices.read_choice("als", smoke=False, seed=42, path=path)


def test_choose_writes_the_validation_winner_and_validated_reads_it(small_data, tmp_path):
    path = tmp_path / "choices.json"
    grid = {"regularization": [1.0, 50.0]}
    with pytest.raises(ValueError, match="regularization=.* is the (lowest|highest) of"):
        choices.choose("ease", small_data, grid, chapter="03", smoke=False, seed=1, path=path)
    assert not path.exists()  # nothing written for an unexplained edge
    why = {"regularization": "a two-point illustration"}
    best, table = choices.choose("ease", small_data, grid, chapter="03", smoke=False, seed=1,
                                 path=path, edge_reasons=why)  # fmt: skip
    assert best == {"regularization": float(table["regularization"].iloc[0])}
    assert table["ndcg@10"].iloc[0] >= table["ndcg@10"].iloc[1]  # best first
    stored = choices.read_choice("ease", smoke=False, seed=1, path=path)
    assert stored["validation"] == pytest.approx(table["ndcg@10"].iloc[0])
    assert stored["grid"] == grid
    assert stored["edges"]["regularization"]["reason"] == why["regularization"]
    assert choices.validated("ease", small_data, smoke=False, seed=1, path=path) == best
    never = lambda: pytest.fail("the data is built only when the choice is absent")  # noqa: E731
    assert choices.validated("ease", never, smoke=False, seed=1, path=path) == best


def test_validated_runs_chapter_3_search_when_absent(small_data, tmp_path, monkeypatch):
    path = tmp_path / "choices.json"
    monkeypatch.setitem(choices.GRIDS["smoke"], "als", {"factors": [2], "regularization": [0.1]})
    got = choices.validated("als", lambda: small_data, smoke=True, seed=1, path=path)
    assert got == {"factors": 2, "regularization": 0.1}
    assert choices.read_choice("als", smoke=True, seed=1, path=path)["value"] == got
    with pytest.raises(KeyError, match="run chapter 3 first"):
        choices.validated("bpr", small_data, smoke=True, seed=1, path=path)


def test_grid_edges_and_check_interior():
    grid = {"factors": [16, 32, 64], "alpha": [0.5, 1.0, 2.0], "solver": ["cg", "cholesky"],
            "iterations": [15]}  # fmt: skip
    interior = {"factors": 32, "alpha": 1.0, "solver": "cg", "iterations": 15}
    assert tuning.grid_edges(interior, grid) == {}
    assert tuning.check_interior(interior, grid) == {}
    low_high = {**interior, "factors": 16, "alpha": 2.0}
    assert tuning.grid_edges(low_high, grid) == {"factors": "lowest", "alpha": "highest"}
    with pytest.raises(ValueError, match=r"factors=16 is the lowest of \[16, 32, 64\]") as error:
        tuning.check_interior(low_high, grid, {"alpha": "the bound of the parameter"})
    assert "alpha" not in str(error.value)  # the explained edge is not reported
    with pytest.raises(ValueError, match="alpha"):  # a blank reason is no reason
        tuning.check_interior(low_high, grid, {"factors": "cost", "alpha": " "})
    recorded = tuning.check_interior(low_high, grid, {"factors": "cost", "alpha": "bound"})
    assert recorded == {"factors": {"side": "lowest", "reason": "cost"},
                        "alpha": {"side": "highest", "reason": "bound"}}  # fmt: skip
    with pytest.raises(ValueError, match="not in the grid"):
        tuning.check_interior(interior, grid, {"rank": "typo"})
    # the order of the grid's list does not matter; an unsorted grid has the same edges
    assert tuning.grid_edges({"alpha": 0.5}, {"alpha": [1.0, 0.5, 2.0]}) == {"alpha": "lowest"}


def test_smoke_choices_record_their_edges_with_the_smoke_reason(small_data, tmp_path):
    path = tmp_path / "choices.json"
    choices.choose("ease", small_data, {"regularization": [1.0, 50.0]}, chapter="03",
                   smoke=True, seed=1, path=path)  # fmt: skip
    edges = choices.read_choice("ease", smoke=True, seed=1, path=path)["edges"]
    assert edges["regularization"]["reason"] == choices.SMOKE_EDGE_REASON


def test_chapter_3_full_grids_bracket_their_stored_choices():
    """A full run's stored choice on a grid edge must carry a reason (checked when written)."""
    content = (
        json.loads(choices.choices_path().read_text()) if choices.choices_path().exists() else {}
    )
    runs = {key: entries for key, entries in content.items() if key.startswith("full/")}
    if not runs:
        pytest.skip("no full run has written build/choices.json here")
    for key, entries in runs.items():
        for name, record in entries.items():
            if "grid" not in record or "edges" not in record:
                continue  # not a grid choice, or written before choices recorded their edges
            value = record["value"]  # a one-parameter choice (the hybrid weight) is stored bare
            value = value if isinstance(value, dict) else {next(iter(record["grid"])): value}
            edges = tuning.grid_edges(value, record["grid"])
            reasons = {p: e.get("reason", "") for p, e in record.get("edges", {}).items()}
            unexplained = {p: s for p, s in edges.items() if not reasons.get(p, "").strip()}
            assert not unexplained, f"{key} {name}: {unexplained} on the grid's edge, no reason"


def _parameters(notebook: Path) -> dict:
    cells = json.loads(notebook.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_chapter_3_grids_are_the_library_grids():
    params = _parameters(NOTEBOOKS / "03_matrix_factorization.ipynb")
    full = choices.GRIDS["full"]
    assert params["ALS_FACTORS"] == full["als"]["factors"]
    assert params["ALS_REGULARIZATION"] == full["als"]["regularization"]
    assert params["ALS_ALPHA"] == full["als"]["alpha"]
    assert params["EASE_REGULARIZATION"] == full["ease"]["regularization"]


# A literal assignment whose comment says it was chosen in (or by) another chapter.
HARD_CODED = re.compile(r"^\s*[A-Za-z_]\w*\s*=\s*[-\d\[{(\"'].*#.*chosen.*chapter", re.IGNORECASE)


def hard_coded_choices(source: str) -> list[str]:
    return [line for line in source.splitlines() if HARD_CODED.search(line)]


def test_the_hard_coded_choice_detector_catches_what_it_should():
    assert hard_coded_choices('ALS = {"factors": 32}  # chosen on validation in chapter 3')
    assert hard_coded_choices("EASE_LAMBDA = 800.0  # chosen on validation in chapter 3")
    assert not hard_coded_choices('ALS = choices.validated("als", data)  # chosen in chapter 3')
    assert not hard_coded_choices("GRID = [1, 2]  # search grid")


@pytest.mark.parametrize("notebook", list_notebooks(), ids=lambda p: p.stem)
def test_no_notebook_hard_codes_a_value_chosen_in_a_chapter(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    found = hard_coded_choices(code)
    assert not found, f"{notebook.name} types a chosen value by hand; read it with " \
        f"recsys_lib.course.choices.validated instead: {found}"  # fmt: skip


def test_the_pipeline_copy_of_the_als_choice_matches_chapter_3_when_it_has_run():
    from recsys_lib.course.pipeline import DEFAULT_ALS_PARAMS

    stored = choices.read_choice("als", smoke=False, seed=42)
    if stored is None:
        pytest.skip("no full run of chapter 3 has written build/choices.json here")
    assert stored["value"] == DEFAULT_ALS_PARAMS, "update pipeline.DEFAULT_ALS_PARAMS"


def test_grid_edges_reads_numpy_numbers():
    grid = {"factors": [np.int64(16), np.int64(32)], "alpha": [np.float32(0.5), np.float32(1.0)]}
    assert tuning.grid_edges({"factors": 16, "alpha": np.float32(1.0)}, grid) == {
        "factors": "lowest", "alpha": "highest"}  # fmt: skip


def test_grid_edges_wants_the_parameters_by_name():
    with pytest.raises(TypeError, match="dict of parameter"):
        tuning.grid_edges(0.1, {"weight": [0.0, 0.1, 0.2]})
