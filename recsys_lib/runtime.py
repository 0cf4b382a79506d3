"""Seeding, device selection, the project folder, the library's environment variables and
atomic file writes: the only process-wide state the library reads, and the one way it replaces
a file.

Every ``RECSYS_*`` environment variable the library reads is listed in :data:`SETTINGS` and read
through :func:`setting` / :func:`setting_path`; a file is replaced through
:func:`atomic_write_bytes` / :func:`atomic_write_text`, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import os
import random
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy (legacy global generator too) and torch; return a numpy Generator.

    Also asks torch for deterministic algorithms where it can without raising, so CPU runs
    repeat exactly under the same seed.
    """
    random.seed(seed)
    np.random.seed(seed)
    # PYTHONHASHSEED only acts at interpreter start-up; the Makefile sets it for every run.
    try:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    except ImportError:
        pass
    apply_kernel_settings()
    return np.random.default_rng(seed)


def resolve_device(device: str | None = "auto") -> str:
    """'auto' (or None) picks 'cuda' when a CUDA device is present, else 'cpu'.

    An explicit 'cuda' on a machine without one is an error rather than a silent fallback.
    """
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but torch sees no CUDA device "
            f"(torch {torch.__version__}). Use device='auto' or 'cpu'."
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:n]', got {device!r}.")
    return device


_Module = TypeVar("_Module")


def to_device(module: _Module, device: str) -> _Module:
    """``module.to(device)`` for a torch module (moved in place, returned), typed as ``module``.

    Hugging Face models wrap ``to`` with ``functools.wraps``, which type checkers read as a
    function taking the model twice; going through here keeps the model's own type.
    """
    moved: _Module = cast(Any, module).to(device)
    return moved


#: Every environment variable the library reads, with what it sets.
SETTINGS: dict[str, str] = {
    "RECSYS_HOME": "the project home holding data/ and build/ (default: the checkout found "
    "from the working directory)",
    "RECSYS_DATA_DIR": "a local ml-100k folder (default: the download cache)",
    "RECSYS_CACHE_DIR": "the download cache (default: data/ in the project home)",
    "RECSYS_EMBEDDING_CACHE": "the text-vector cache (default: data/embeddings in the project home)",
    "RECSYS_CHOICES": "the file of hyper-parameters chosen by one chapter and read by later ones "
    "(default: build/choices.json in the project home)",
    "RECSYS_LLM_CACHE": "the dequantised-LLM cache (default: data/llm beside the embedding cache)",
    "RECSYS_KERNELS": "the kernel-variation configuration this process runs under (set by "
    "python -m recsys_lib.course.kernels exec; default native)",
    "RECSYS_TORCH_THREADS": "torch's thread count, overriding each chapter's (kernel variation)",
    "RECSYS_QUANTIZED_ENGINE": "torch's int8 engine: x86, fbgemm, qnnpack or onednn (kernel "
    "variation)",
    "RECSYS_FIT_CACHE": "the folder of finished trainings read back instead of training again "
    "(default: fits/ in the embedding cache; off disables it)",
    "RECSYS_ARTEFACT_KEY": "the secret that signs saved serving artefacts and verifies them on "
    "load (HMAC-SHA256; unset: artefacts are unsigned)",
}


def setting(name: str) -> str | None:
    """The value of the library's environment variable ``name`` (a key of :data:`SETTINGS`),
    surrounding blanks removed; None when it is unset or empty."""
    if name not in SETTINGS:
        raise KeyError(
            f"{name!r} is not one of the library's environment variables ({', '.join(SETTINGS)}); "
            "add it to recsys_lib.runtime.SETTINGS with what it sets."
        )
    value = os.environ.get(name, "").strip()
    return value or None


def setting_path(name: str) -> Path | None:
    """:func:`setting` as a path (``~`` expanded), or None when the variable is unset or empty."""
    value = setting(name)
    return Path(value).expanduser() if value is not None else None


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    Readers see the old file or the new one, never a partial write; the parent folder is
    created when missing, an existing file keeps its permissions (a new one gets rw-r--r--),
    and the temporary file is removed if the write fails. Returns the path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded with ``encoding``; returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def project_home() -> Path:
    """The folder that holds ``data/``, ``build/`` and ``notebooks/`` for this run.

    ``$RECSYS_HOME`` when set; otherwise the nearest folder, from the working directory up,
    that holds both ``notebooks/`` and ``pyproject.toml`` (a checkout, also when a kernel runs
    inside ``notebooks/``); otherwise the working directory itself (an installed wheel used
    from a team's own folder). Never the installed package's location.
    """
    home = setting_path("RECSYS_HOME")
    if home is not None:
        return home.resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return cwd


@contextlib.contextmanager
def temporary_environ(values: Mapping[str, str], *, keep_existing: bool = False) -> Iterator[None]:
    """Set environment variables for the duration of a ``with`` block, then restore them.

    ``keep_existing=True`` leaves variables that are already set as they are (only unset
    ones get ``values``). Variables that were unset are removed again afterwards.
    """
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(
        {k: v for k, v in values.items() if not (keep_existing and saved[k] is not None)}
    )
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


#: Environment variables through which a kernel-variation configuration
#: (:mod:`recsys_lib.course.kernels`) reaches the settings torch only takes in-process.
TORCH_THREADS_ENV = "RECSYS_TORCH_THREADS"
QUANTIZED_ENGINE_ENV = "RECSYS_QUANTIZED_ENGINE"


def torch_threads(requested: int | None = None) -> int | None:
    """The torch thread count to use: ``$RECSYS_TORCH_THREADS`` when set, else ``requested``.

    The override lets a kernel-variation run change the summation order of every chapter's
    torch work (a reduction split over 1 or 2 threads adds floats in another order), as a
    machine with another core count would.
    """
    raw = setting(TORCH_THREADS_ENV) or ""
    if not raw:
        return requested
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"{TORCH_THREADS_ENV}={raw!r} must be a positive integer (e.g. 1 or 2); unset it "
            "to let each chapter choose."
        )
    return int(raw)


def set_torch_threads(requested: int | None = None) -> int:
    """Set torch's intra-op thread count (:func:`torch_threads` decides); return the count used."""
    import torch

    threads = torch_threads(requested)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def apply_kernel_settings() -> dict[str, object]:
    """Apply the in-process kernel settings named by the environment; return what was set.

    ``$RECSYS_QUANTIZED_ENGINE`` selects torch's int8 engine (``x86``, ``fbgemm``, ``qnnpack``
    or ``onednn``: what another processor family would run) and ``$RECSYS_TORCH_THREADS`` the
    thread count. Environment-only knobs (``ATEN_CPU_CAPABILITY``, ``OPENBLAS_CORETYPE``, ...)
    act when the libraries load and need nothing here.
    """
    applied: dict[str, object] = {}
    engine = setting(QUANTIZED_ENGINE_ENV) or ""
    threads = torch_threads(None)
    if not engine and threads is None:
        return applied
    import torch

    if engine:
        supported = list(torch.backends.quantized.supported_engines)
        if engine not in supported:
            raise ValueError(
                f"{QUANTIZED_ENGINE_ENV}={engine!r} is not supported by this torch build; "
                f"choose one of {supported}."
            )
        torch.backends.quantized.engine = engine
        applied["quantized_engine"] = engine
    if threads is not None:
        torch.set_num_threads(threads)
        applied["torch_threads"] = threads
    return applied
