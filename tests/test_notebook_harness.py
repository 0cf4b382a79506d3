import json
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from recsys_lib import notebooks as nbh


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


def test_check_metrics_verdicts():
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
    assert updated == {"nb": {"a": {"value": 2.0, "rtol": 0.1}, "b": {"value": 3.0, "rtol": 0.05}}}
    assert nbh.is_timing_metric("als_fit_s") and not nbh.is_timing_metric("ndcg@10")


def test_check_cli_exit_codes(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"nb": {"a": 1.0}}))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"nb": {"a": {"value": 1.0, "rtol": 0.01}}}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nb": {"a": {"value": 2.0, "rtol": 0.01}}}))
    run = [sys.executable, "-m", "recsys_lib.notebooks", "check", "--metrics", str(metrics)]
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
