"""Kernel-variation configurations: another processor's float behaviour, measured on this one.

A regression band measured on one machine only knows that machine's numeric kernels. A newer
processor runs other SIMD code paths (AVX-512 VNNI int8, another BLAS micro-kernel, another
thread count) that add the same floats in another order, and a trained model or an int8 encoder
magnifies the last-digit differences. The switches below make those code paths selectable on any
x86 machine, so a band can be measured against them before another machine meets them.

What each switch changes on this project's stack (``benchmarks/kernel_probe.py`` hashes the
outputs of a dozen primitives under each switch; CONTRIBUTING records the findings):

=========================== ==============================================================
``ATEN_CPU_CAPABILITY``     torch's own vectorised kernels (softmax, layer norm, GELU,
                            reductions; ``default`` also moves matmul and int8 linear)
``OPENBLAS_CORETYPE``       numpy's and scipy's BLAS/LAPACK micro-kernels (dot, solve, SVD)
                            and so implicit's ALS
``MKL_CBWR``                MKL's conditional reproducibility mode: torch's fp32 matmul and
                            training steps
``ONEDNN_MAX_CPU_ISA``      oneDNN's instruction set (GELU, the onednn int8 engine)
``RECSYS_QUANTIZED_ENGINE`` torch's int8 engine (``x86``/``fbgemm``, ``qnnpack``,
                            ``onednn``)
``RECSYS_TORCH_THREADS``    torch's thread count (reductions and training steps)
=========================== ==============================================================

``MKL_ENABLE_INSTRUCTIONS`` changes nothing here, and ``fbgemm`` gives the same int8 results
as ``x86``: neither is used.

Usage::

    python -m recsys_lib.course.kernels list
    python -m recsys_lib.course.kernels exec generic -- pytest -q tests/test_quantize.py
    python -m recsys_lib.course.notebooks run --smoke --kernels avx2 --only 09_
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from recsys_lib.runtime import QUANTIZED_ENGINE_ENV, TORCH_THREADS_ENV, temporary_environ

#: The configuration that changes nothing: the machine's own kernels.
NATIVE = "native"


@dataclass(frozen=True)
class KernelConfig:
    """A named set of environment switches that selects other numeric kernels."""

    name: str
    description: str
    env: Mapping[str, str] = field(default_factory=dict)


CONFIGS: dict[str, KernelConfig] = {
    NATIVE: KernelConfig(NATIVE, "this machine's own kernels, thread counts as each chapter sets"),
    "avx2": KernelConfig(
        "avx2",
        "an AVX2 processor without AVX-512 (Haswell to Zen 2): AVX2 torch kernels, Haswell "
        "BLAS, MKL's AVX2 reproducible path, the oneDNN int8 engine limited to AVX2, 1 thread",
        {
            "ATEN_CPU_CAPABILITY": "avx2",
            "OPENBLAS_CORETYPE": "Haswell",
            "MKL_CBWR": "AVX2",
            "ONEDNN_MAX_CPU_ISA": "AVX2",
            QUANTIZED_ENGINE_ENV: "onednn",
            TORCH_THREADS_ENV: "1",
        },
    ),
    "generic": KernelConfig(
        "generic",
        "the most portable kernels (what an old x86 or an ARM server runs): scalar torch "
        "kernels, Sandybridge BLAS, MKL's compatible path, SSE4.1 oneDNN, the qnnpack int8 "
        "engine, 2 threads",
        {
            "ATEN_CPU_CAPABILITY": "default",
            "OPENBLAS_CORETYPE": "Sandybridge",
            "MKL_CBWR": "COMPATIBLE",
            "ONEDNN_MAX_CPU_ISA": "SSE41",
            QUANTIZED_ENGINE_ENV: "qnnpack",
            TORCH_THREADS_ENV: "2",
        },
    ),
}

#: The configuration that differs most from the native one (every switch moved): the one the
#: test suite runs the notebooks under besides the native kernels.
MOST_DIFFERENT = "generic"


def get_config(name: str) -> KernelConfig:
    """The configuration called ``name``, or a ``ValueError`` listing the known names."""
    if name not in CONFIGS:
        raise ValueError(
            f"unknown kernel configuration {name!r}; choose one of {sorted(CONFIGS)} "
            "(python -m recsys_lib.course.kernels list describes them)."
        )
    return CONFIGS[name]


def config_names(spec: str) -> list[str]:
    """Names from a comma-separated ``spec``; ``all`` means every configuration, native first."""
    if spec.strip() == "all":
        return list(CONFIGS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no kernel configuration named in {spec!r}; try 'all' or 'native,avx2'.")
    for name in names:
        get_config(name)
    return names


@contextlib.contextmanager
def kernel_environ(name: str) -> Iterator[KernelConfig]:
    """Set configuration ``name``'s switches in ``os.environ`` (for child processes), then restore.

    The switches act when a process starts (torch and BLAS read them at load), so they reach
    notebook kernels and commands started inside the block, not this process.
    """
    config = get_config(name)
    with temporary_environ(dict(config.env)):
        yield config


#: Caches that hold numbers computed by some processor's kernels (text vectors, int8 variants'
#: vectors, chapter 3's validated choices). A configuration other than the native one gets its
#: own, as another machine would start with its own.
KERNEL_CACHES = ("RECSYS_EMBEDDING_CACHE", "RECSYS_CHOICES")


def config_caches(name: str) -> dict[str, str]:
    """Cache locations for configuration ``name``: ``build/kernels-NAME/`` in the project home.

    Empty for the native configuration (the usual caches). The dequantised LLM
    (``RECSYS_LLM_CACHE``) stays shared: it is element-wise arithmetic on the GGUF file, the
    same on every processor, and costs minutes to rebuild.
    """
    if get_config(name).name == NATIVE:
        return {}
    from recsys_lib.llm.loading import LLM_CACHE_ENV, default_llm_cache_dir
    from recsys_lib.runtime import project_home

    folder = project_home() / "build" / f"kernels-{name}"
    return {
        "RECSYS_EMBEDDING_CACHE": str(folder / "embeddings"),
        "RECSYS_CHOICES": str(folder / "choices.json"),
        LLM_CACHE_ENV: str(default_llm_cache_dir()),
    }


def kernel_switches(name: str) -> dict[str, str | None]:
    """Environment changes that put a fresh process under configuration ``name``.

    Every switch any configuration uses is removed (``None``) unless ``name`` sets it, so a
    ``native`` run started from a process that itself runs under another configuration is
    native (and, then, back on the usual caches); a non-native configuration gets its own
    caches (:func:`config_caches`) so that no number its kernels should compute is read from
    what other kernels stored. ``RECSYS_KERNELS`` names the configuration for the record.
    """
    config = get_config(name)
    switches: dict[str, str | None] = {k: None for c in CONFIGS.values() for k in c.env}
    if os.environ.get("RECSYS_KERNELS", NATIVE) != NATIVE:  # caches set by a kernel exec
        switches.update({k: None for k in (*KERNEL_CACHES, "RECSYS_LLM_CACHE")})
    switches.update(config.env)
    switches.update(config_caches(name))
    switches["RECSYS_KERNELS"] = name
    return switches


def describe() -> str:
    """A table of the configurations and their switches."""
    lines = []
    for config in CONFIGS.values():
        switches = " ".join(f"{k}={v}" for k, v in config.env.items()) or "(none)"
        lines.append(f"{config.name:<8} {config.description}\n         {switches}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_lib.course.kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the configurations and their switches")
    sub.add_parser("names", help="the configuration names, one per line")
    run = sub.add_parser("exec", help="run a command under a configuration")
    run.add_argument("name", help=f"one of {sorted(CONFIGS)}")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(describe())
        return 0
    if args.command == "names":
        print("\n".join(CONFIGS))
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("exec needs a command after --")
    env = dict(os.environ)
    for key, value in kernel_switches(args.name).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env)  # replaces this process: the command's exit code is ours


if __name__ == "__main__":
    raise SystemExit(main())
