"""A LoRA adapter of the LLM kept on disk: its weights, their checksum and where they came from.

A budget that lets LoRA learn (thousands of pairs, several validations) is a long CPU job, so
``benchmarks/train_lora_adapter.py`` trains it once and stores the low-rank weights only
(a few MB) with a manifest:

* ``adapter.safetensors``: every ``lora_a`` / ``lora_b`` tensor, named as in the model;
* ``adapter.json``: the sha256 of that file, the base model's sha256, rank, alpha, the wrapped
  layers, the key of the pairs it was trained on (:func:`pairs_key`) and the training log.

:func:`load_adapter` refuses a file whose checksum, base model or training data differ from
what the caller expects, so a chapter can never evaluate an adapter on pairs it was trained on
or on another model without saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.llm.loading import LLM
from recsys_lib.runtime import atomic_write_text
from recsys_lib.text.embeddings import sha256_file

WEIGHTS_FILE = "adapter.safetensors"
MANIFEST_FILE = "adapter.json"
_LORA_NAMES = ("lora_a", "lora_b")


def pairs_key(*frames: pd.DataFrame) -> str:
    """SHA-256 (hex) of the (user_id, item_id, label) rows of ``frames``, in order.

    Two pair sets with the same rows in the same order give the same key; any added, dropped,
    reordered or relabelled pair gives another. Ids are hashed as text, so int and str ids differ.
    """
    digest = hashlib.sha256()
    for index, frame in enumerate(frames):
        missing = {"user_id", "item_id", "label"} - set(frame.columns)
        if missing:
            raise ValueError(f"frame {index} has no column(s) {sorted(missing)}; pairs need "
                             "user_id, item_id and label.")  # fmt: skip
        digest.update(f"frame {index}: {len(frame)} rows\n".encode())
        for u, i, y in frame[["user_id", "item_id", "label"]].itertuples(index=False):
            digest.update(f"{u!r}\t{i!r}\t{int(y)}\n".encode())
    return digest.hexdigest()


def lora_weights(model: Any) -> dict[str, Any]:
    """The LoRA tensors of ``model`` (names ending in ``lora_a`` / ``lora_b``), detached on CPU."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()
            if name.endswith(_LORA_NAMES)}  # fmt: skip


def save_adapter(lm: LLM, folder: str | os.PathLike[str], *, targets: tuple[str, ...],
                 rank: int, alpha: float, data_key: str, provenance: dict[str, Any],
                 last_layers: int | None = None) -> Path:  # fmt: skip
    """Write ``lm.model``'s LoRA weights and their manifest to ``folder``; return the manifest path.

    ``targets``, ``rank``, ``alpha``, ``last_layers``: how the adapter was added
    (:func:`recsys_lib.text.lora.add_lora_by_name`); ``data_key``: :func:`pairs_key` of the
    training (and validation) pairs; ``provenance``: anything JSON-serialisable that says how it
    was trained (script, settings, curve, date, machine). Both files are replaced atomically, the
    weights first, so a reader never sees a manifest whose checksum does not match.
    """
    from safetensors.torch import save_file

    weights = lora_weights(lm.model)
    if not weights:
        raise ValueError("the model has no LoRA weights to save; add them with "
                         "recsys_lib.text.lora.add_lora_by_name and train first.")  # fmt: skip
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / (WEIGHTS_FILE + ".partial")
    save_file(weights, str(partial))
    os.replace(partial, out / WEIGHTS_FILE)
    manifest = {
        "weights_sha256": sha256_file(out / WEIGHTS_FILE), "base_model": lm.name,
        "base_sha256": lm.sha256, "targets": list(targets), "rank": int(rank),
        "alpha": float(alpha), "last_layers": last_layers,
        "n_weights": int(sum(w.numel() for w in weights.values())),
        "data_key": data_key, "provenance": provenance,
    }  # fmt: skip
    return atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a stored adapter (raises FileNotFoundError naming the missing file)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no adapter manifest at {path}; train one with "
                                "benchmarks/train_lora_adapter.py.")  # fmt: skip
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def load_adapter(lm: LLM, folder: str | os.PathLike[str], *,
                 data_key: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Add the stored adapter in ``folder`` to ``lm.model`` (in place) and return its manifest.

    Checks, before the model is touched: the weights file's sha256 against the manifest, the base
    model's sha256 against ``lm.sha256``, and (when given) ``data_key`` against the key the adapter
    was trained on. After wrapping, every LoRA tensor must be present with its shape; nothing else
    is loaded. Any mismatch raises ValueError naming both values.
    """
    import torch
    from safetensors.torch import load_file

    from recsys_lib.text.lora import add_lora_by_name

    manifest = read_manifest(folder)
    weights_path = Path(folder) / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"the manifest in {folder} has no weights file {weights_path}.")
    actual = sha256_file(weights_path)
    if actual != manifest["weights_sha256"]:
        raise ValueError(f"{weights_path} has sha256 {actual}, but its manifest says "
                         f"{manifest['weights_sha256']}: the file is damaged or was replaced.")  # fmt: skip
    if manifest["base_sha256"] != lm.sha256:
        raise ValueError(f"the adapter was trained on the model with sha256 "
                         f"{manifest['base_sha256']}, not on this one ({lm.sha256}).")  # fmt: skip
    if data_key is not None and manifest["data_key"] != data_key:
        raise ValueError(f"the adapter was trained on pairs with key {manifest['data_key']}, "
                         f"these pairs have key {data_key}: rebuild it on these pairs.")  # fmt: skip
    stored = load_file(str(weights_path))
    add_lora_by_name(lm.model, tuple(manifest["targets"]), rank=manifest["rank"],
                     alpha=manifest["alpha"], last_layers=manifest.get("last_layers"))  # fmt: skip
    params = dict(lm.model.named_parameters())
    expected = {name for name in params if name.endswith(_LORA_NAMES)}
    if set(stored) != expected:
        extra, absent = sorted(set(stored) - expected), sorted(expected - set(stored))
        raise ValueError(f"the adapter's tensors do not fit this model: {len(extra)} unknown "
                         f"(e.g. {extra[:2]}), {len(absent)} missing (e.g. {absent[:2]}).")  # fmt: skip
    for name, tensor in stored.items():  # every shape first: copy all or nothing
        if tuple(tensor.shape) != tuple(params[name].shape):
            raise ValueError(f"{name}: stored shape {tuple(tensor.shape)}, model shape "
                             f"{tuple(params[name].shape)}.")  # fmt: skip
    with torch.no_grad():
        for name, tensor in stored.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    return manifest


def curve(manifest: dict[str, Any], metric: str = "auc") -> pd.DataFrame:
    """The stored adapter's validation curve: one row per validation (step, ``metric``)."""
    evals = manifest.get("provenance", {}).get("evals", [])
    frame = pd.DataFrame(evals)
    if frame.empty or metric not in frame:
        raise ValueError(f"the manifest holds no validation '{metric}' values "
                         f"(keys: {sorted(frame.columns) if not frame.empty else []}).")  # fmt: skip
    return frame[["step", metric]].astype({"step": int, metric: np.float64})
