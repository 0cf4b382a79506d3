"""Seeding, device selection and the project folder: the only process-wide state the library reads."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path

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


def project_home() -> Path:
    """The folder that holds ``data/``, ``build/`` and ``notebooks/`` for this run.

    ``$RECSYS_HOME`` when set; otherwise the nearest folder, from the working directory up,
    that holds both ``notebooks/`` and ``pyproject.toml`` (a checkout, also when a kernel runs
    inside ``notebooks/``); otherwise the working directory itself (an installed wheel used
    from a team's own folder). Never the installed package's location.
    """
    env = os.environ.get("RECSYS_HOME")
    if env:
        return Path(env).expanduser().resolve()
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
