"""Kernel-variation configurations: named, applied to child processes and kernels, restored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from recsys_lib import runtime
from recsys_lib.course import kernels


def test_configurations_are_named_and_unknown_names_are_refused():
    assert kernels.config_names("all")[0] == kernels.NATIVE
    assert kernels.config_names("native, generic") == ["native", "generic"]
    assert kernels.MOST_DIFFERENT in kernels.CONFIGS
    with pytest.raises(ValueError, match="unknown kernel configuration 'avx9'"):
        kernels.config_names("native,avx9")
    with pytest.raises(ValueError, match="no kernel configuration named"):
        kernels.config_names(" , ")


def test_the_alternative_configurations_move_every_switch_the_native_one_leaves():
    switches = {k for c in kernels.CONFIGS.values() for k in c.env}
    assert kernels.CONFIGS[kernels.NATIVE].env == {}
    assert set(kernels.CONFIGS[kernels.MOST_DIFFERENT].env) == switches
    for name in kernels.CONFIGS:
        if name != kernels.NATIVE:  # no two configurations select the same kernels
            others = [c.env for n, c in kernels.CONFIGS.items() if n not in (name, kernels.NATIVE)]
            assert all(kernels.CONFIGS[name].env != env for env in others)


def test_switches_for_a_native_run_remove_every_other_configuration_s_variables():
    native = kernels.kernel_switches("native")
    assert native["RECSYS_KERNELS"] == "native"
    assert native["ATEN_CPU_CAPABILITY"] is None and native["OPENBLAS_CORETYPE"] is None
    generic = kernels.kernel_switches("generic")
    assert generic["ATEN_CPU_CAPABILITY"] == "default"
    assert generic[runtime.QUANTIZED_ENGINE_ENV] == "qnnpack"


def test_each_other_configuration_computes_into_caches_of_its_own(monkeypatch):
    from recsys_lib.runtime import project_home

    monkeypatch.delenv("RECSYS_KERNELS", raising=False)
    generic = kernels.kernel_switches("generic")
    folder = project_home() / "build" / "kernels-generic"
    assert generic["RECSYS_EMBEDDING_CACHE"] == str(folder / "embeddings")
    assert generic["RECSYS_CHOICES"] == str(folder / "choices.json")
    assert generic["RECSYS_LLM_CACHE"]  # the dequantised LLM stays shared
    assert "RECSYS_EMBEDDING_CACHE" not in kernels.kernel_switches("native")
    monkeypatch.setenv("RECSYS_KERNELS", "generic")  # native, started from a generic process
    assert kernels.kernel_switches("native")["RECSYS_EMBEDDING_CACHE"] is None


def test_kernel_environ_sets_and_restores(monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    with kernels.kernel_environ("avx2") as config:
        assert config.name == "avx2" and os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert "ATEN_CPU_CAPABILITY" not in os.environ


def test_exec_runs_a_command_under_the_configuration():
    probe = (
        "import json, os, torch\n"
        "from recsys_lib.runtime import apply_kernel_settings\n"
        "print(json.dumps({'applied': apply_kernel_settings(),"
        " 'capability': torch.backends.cpu.get_cpu_capability(),"
        " 'engine': torch.backends.quantized.engine, 'threads': torch.get_num_threads(),"
        " 'name': os.environ.get('RECSYS_KERNELS')}))"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}  # a leftover the native run must drop
    out = {}
    for name in ("generic", "native"):
        done = subprocess.run(
            [sys.executable, "-m", "recsys_lib.course.kernels", "exec", name, "--",
             sys.executable, "-c", probe],
            capture_output=True, text=True, env=env, check=True, timeout=120,
        )  # fmt: skip
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["generic"]["capability"] == "DEFAULT" and out["generic"]["engine"] == "qnnpack"
    assert out["generic"]["threads"] == 2 and out["generic"]["name"] == "generic"
    assert out["native"]["capability"] != "DEFAULT" or os.cpu_count() == 1
    assert out["native"]["applied"] == {} and out["native"]["name"] == "native"


def test_exec_needs_a_command():
    done = subprocess.run([sys.executable, "-m", "recsys_lib.course.kernels", "exec", "native"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "needs a command" in done.stderr


def test_torch_threads_override_and_its_errors(monkeypatch):
    monkeypatch.delenv(runtime.TORCH_THREADS_ENV, raising=False)
    assert runtime.torch_threads(2) == 2 and runtime.torch_threads(None) is None
    monkeypatch.setenv(runtime.TORCH_THREADS_ENV, "1")
    assert runtime.torch_threads(2) == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(runtime.TORCH_THREADS_ENV, bad)
        with pytest.raises(ValueError, match=f"RECSYS_TORCH_THREADS={bad!r}"):
            runtime.torch_threads(2)


def test_apply_kernel_settings_sets_the_int8_engine_and_refuses_unknown_ones(monkeypatch):
    import torch

    before, threads = torch.backends.quantized.engine, torch.get_num_threads()
    monkeypatch.delenv(runtime.TORCH_THREADS_ENV, raising=False)
    monkeypatch.delenv(runtime.QUANTIZED_ENGINE_ENV, raising=False)
    assert runtime.apply_kernel_settings() == {}
    try:
        monkeypatch.setenv(runtime.QUANTIZED_ENGINE_ENV, "qnnpack")
        monkeypatch.setenv(runtime.TORCH_THREADS_ENV, "1")
        assert runtime.apply_kernel_settings() == {
            "quantized_engine": "qnnpack",
            "torch_threads": 1,
        }
        assert torch.backends.quantized.engine == "qnnpack" and torch.get_num_threads() == 1
        monkeypatch.setenv(runtime.QUANTIZED_ENGINE_ENV, "tpu8")
        with pytest.raises(ValueError, match="RECSYS_QUANTIZED_ENGINE='tpu8' is not supported"):
            runtime.apply_kernel_settings()
    finally:
        torch.backends.quantized.engine = before
        torch.set_num_threads(threads)


@pytest.mark.notebook
def test_a_notebook_kernel_starts_under_the_named_configuration(tmp_path):
    import nbformat

    from recsys_lib.course.notebooks import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, torch\n"
            "from recsys_lib.course.notebooks import record\n"
            "from recsys_lib.runtime import seed_everything\n"
            "seed_everything(0)\n"
            "record('capability', torch.backends.cpu.get_cpu_capability())\n"
            "record('engine', torch.backends.quantized.engine)\n"
            "record('coretype', os.environ.get('OPENBLAS_CORETYPE', ''))\n"
            "record('kernels', os.environ.get('RECSYS_KERNELS', ''))"
        ),
    ]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    got = {}
    for name in ("avx2", "native"):
        result = execute_notebook(path, tmp_path / f"out-{name}.ipynb", smoke=True, kernels=name)
        assert result.error is None, result.error
        got[name] = result.metrics
    assert got["avx2"] == {"capability": "AVX2", "engine": "onednn", "coretype": "Haswell",
                           "kernels": "avx2"}  # fmt: skip
    assert got["native"]["kernels"] == "native" and got["native"]["coretype"] == ""
