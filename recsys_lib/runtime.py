"""Seeding and device selection: the only process-wide state the library touches."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy (legacy global generator too) and torch; return a numpy Generator.

    Also asks torch for deterministic algorithms where it can without raising, so CPU runs
    repeat exactly under the same seed.
    """
    random.seed(seed)
    np.random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
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
