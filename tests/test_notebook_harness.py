import json
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from recsys_lib.course import notebooks as nbh


def executed_notebook(tmp_path, values: dict):
    """A fake executed notebook whose outputs hold record() payloads."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("record(...)")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={nbh.RECORD_MIME: {"name": k, "value": v}, "text/plain": "x"}
        )
        for k, v in values.items()
    ]
    nb.cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_record_payload_round_trips_through_a_notebook(tmp_path):
    path = executed_notebook(tmp_path, {"ndcg@10": 0.25, "name": "als", "curve": [1, 2]})
    assert nbh.read_records(path) == {"ndcg@10": 0.25, "name": "als", "curve": [1, 2]}


def test_record_converts_numpy_and_rejects_objects(capsys):
    assert nbh._to_json({"a": np.float32(0.5), "b": np.arange(2)}) == {"a": 0.5, "b": [0, 1]}
    with pytest.raises(TypeError, match="Convert it first"):
        nbh._to_json(object())
    with pytest.raises(ValueError, match="non-empty"):
        nbh.record("", 1)
    nbh.record("x", 1.5)  # outside a kernel it still shows the value
    assert "x = 1.5" in capsys.readouterr().out


def test_check_metrics_verdicts():  # value bands, the oldest kind of spec
    expected = {
        "nb": {
            "a": {"value": 1.0, "rtol": 0.1},
            "b": {"value": 0.0, "atol": 0.01},
            "c": {"value": 2.0, "rtol": 0.01},
            "d": {"value": 1.0, "rtol": 0.5},
        }
    }
    rows = nbh.check_metrics(expected, {"nb": {"a": 1.05, "b": 0.005, "c": 2.5}})
    verdicts = {r.metric: r.verdict for r in rows}
    assert verdicts == {"nb/a": "ok", "nb/b": "ok", "nb/c": "REGRESSION", "nb/d": "MISSING"}
    table = nbh.format_check(rows)
    assert "REGRESSION" in table and "+25.0%" in table


def test_update_expected_keeps_tolerances_and_adds_new_metrics():
    expected = {"nb": {"a": {"value": 1.0, "rtol": 0.1}}}
    current = {"a": 2.0, "b": 3.0, "s": "text", "fit_s": 1.5, "pairs_per_second": 80.0,
               "train_seconds": 9.0, "latency_ms": 0.3}  # fmt: skip
    updated = nbh.update_expected(expected, {"nb": current})
    # timings never become bands: they depend on the machine
    assert updated["nb"]["a"] == {"value": 2.0, "rtol": 0.1}
    assert set(updated["nb"]) == {"a", "b"}
    new = updated["nb"]["b"]  # a new metric is marked as an unmeasured placeholder
    assert new["value"] == 3.0 and new["rtol"] == 0.05 and "not yet measured" in new["reason"]
    assert nbh.is_timing_metric("als_fit_s") and not nbh.is_timing_metric("ndcg@10")


def test_check_cli_exit_codes(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"nb": {"a": 1.0}}))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"nb": {"a": {"value": 1.0, "rtol": 0.01}}}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nb": {"a": {"value": 2.0, "rtol": 0.01}}}))
    run = [sys.executable, "-m", "recsys_lib.course.notebooks", "check", "--metrics", str(metrics)]
    assert subprocess.run([*run, str(good)], capture_output=True).returncode == 0
    failed = subprocess.run([*run, str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and "REGRESSION" in failed.stdout
    assert subprocess.run([*run, str(bad), "--update"], capture_output=True).returncode == 0
    assert json.loads(bad.read_text())["nb"]["a"]["value"] == 1.0


def test_list_notebooks_runs_quickstart_first(tmp_path):
    for name in ("02_b", "00_quickstart", "00_data", "TEMPLATE", "01_a"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    names = [p.stem for p in nbh.list_notebooks(tmp_path)]
    assert names == ["00_quickstart", "00_data", "01_a", "02_b"]
    assert [p.stem for p in nbh.list_notebooks(tmp_path, only="01")] == ["01_a"]


def test_write_summary_merges_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"old": {"x": 1}}))
    results = [nbh.RunResult("nb", 1.23, {"a": 1.0}), nbh.RunResult("bad", 0.5, {}, "cell 3: E")]
    nbh.write_summary(results, tmp_path, smoke=True)
    merged = json.loads((tmp_path / "metrics.json").read_text())
    assert merged == {"old": {"x": 1}, "nb": {"a": 1.0}, "bad": {}}
    summary = (tmp_path / "summary.md").read_text()
    assert "FAILED (cell 3: E)" in summary and "| nb | ok | 1.2 | 1 |" in summary


# --- the runner survives what real runs meet -------------------------------------------------


def tiny_notebook(path, *bodies):
    """A notebook: a tagged parameters cell, a record cell, then one code cell per body."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SMOKE = False\nSEED = 42")
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "from recsys_lib.course.notebooks import record\nrecord('seed_seen', SEED)"
        )
    )
    nb.cells.extend(nbformat.v4.new_code_cell(body) for body in bodies)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize(
    "body, expected_error",
    [
        ("raise ValueError('broken on purpose')", "ValueError: broken on purpose"),
        ("import os\nos._exit(3)", "DeadKernelError"),
        ("import time\ntime.sleep(60)", "Timeout"),
    ],
    ids=["raising-cell", "dead-kernel", "cell-timeout"],
)
def test_runner_names_notebook_and_cell_when_a_cell_fails(tmp_path, body, expected_error):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    tiny_notebook(nb_dir / "01_broken.ipynb", "x = 1", body, "record('after', 1)")
    build = tmp_path / "build"
    result = nbh.execute_notebook(
        nb_dir / "01_broken.ipynb", build / "notebooks" / "01_broken.ipynb",
        smoke=True, cell_timeout=5,
    )  # fmt: skip
    assert result.error is not None and expected_error.lower() in result.error.lower()
    assert result.cell is not None and result.cell.startswith("cell 3"), result.cell
    assert result.metrics.get("seed_seen") == 42 or expected_error == "DeadKernelError"
    assert "after" not in result.metrics
    nbh.write_summary([result], build, smoke=True)
    summary = (build / "summary.md").read_text()
    assert "01_broken" in summary and "FAILED (cell 3" in summary
    assert json.loads((build / "metrics.json").read_text())["01_broken"] == result.metrics
    # nothing half-written is left behind: only complete notebooks under their real names
    assert not [p for p in (build / "notebooks").iterdir() if p.name.startswith(".")]


def test_run_command_exits_non_zero_and_writes_the_summary(tmp_path, monkeypatch):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    tiny_notebook(nb_dir / "01_ok.ipynb")
    tiny_notebook(nb_dir / "02_bad.ipynb", "1 / 0")
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    assert nbh.main(["run", "--smoke"]) == 1
    summary = (tmp_path / "build" / "summary.md").read_text()
    assert "| 01_ok | ok |" in summary
    assert "02_bad | FAILED (cell 2 (In [4]): ZeroDivisionError" in summary
    assert json.loads((tmp_path / "build" / "metrics.json").read_text())["01_ok"] == {
        "seed_seen": 42
    }


def test_keyboard_interrupt_still_writes_the_summary(tmp_path, monkeypatch):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    for name in ("01_a", "02_b", "03_c"):
        tiny_notebook(nb_dir / f"{name}.ipynb")
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    calls = []

    def fake_execute(notebook, output, **kwargs):
        calls.append(notebook.stem)
        if notebook.stem == "02_b":
            raise KeyboardInterrupt
        return nbh.RunResult(notebook.stem, 0.1, {"m": 1.0})

    monkeypatch.setattr(nbh, "execute_notebook", fake_execute)
    assert nbh.main(["run"]) == 130
    assert calls == ["01_a", "02_b"]  # the run stops; 03_c never starts
    summary = (tmp_path / "build" / "summary.md").read_text()
    assert "| 01_a | ok |" in summary and "interrupted" in summary


def test_interrupt_inside_papermill_is_reported(tmp_path, monkeypatch):
    import papermill as pm

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pm, "execute_notebook", interrupted)
    path = tiny_notebook(tmp_path / "01_a.ipynb")
    result = nbh.execute_notebook(path, tmp_path / "out" / "01_a.ipynb", smoke=True)
    assert result.interrupted and "KeyboardInterrupt" in result.error
    assert not (tmp_path / "out" / "01_a.ipynb").exists()


def test_atomic_write_text_replaces_whole_files_only(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    nbh.atomic_write_text(target, "first")
    assert target.read_text() == "first"

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(nbh.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        nbh.atomic_write_text(target, "second")
    assert target.read_text() == "first" and list(tmp_path.iterdir()) == [target]


def test_paths_come_from_the_project_home_not_the_package(tmp_path, monkeypatch):
    from recsys_lib import runtime
    from recsys_lib.data import movielens as data
    from recsys_lib.text import embeddings

    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.delenv("RECSYS_CACHE_DIR", raising=False)
    monkeypatch.delenv("RECSYS_EMBEDDING_CACHE", raising=False)
    assert runtime.project_home() == tmp_path.resolve()
    assert nbh.default_build_dir() == tmp_path.resolve() / "build"
    assert nbh.notebook_dir() == tmp_path.resolve() / "notebooks"
    assert data.default_cache_dir() == tmp_path.resolve() / "data"
    assert embeddings.default_embedding_cache_dir() == tmp_path.resolve() / "data" / "embeddings"
    # without RECSYS_HOME: the checkout above the working directory, then the directory itself
    monkeypatch.delenv("RECSYS_HOME")
    checkout = tmp_path / "checkout"
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.chdir(checkout / "notebooks")
    assert runtime.project_home() == checkout.resolve()
    elsewhere = tmp_path / "team"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert runtime.project_home() == elsewhere.resolve()
