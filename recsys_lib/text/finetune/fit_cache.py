"""Finished trainings on disk: a second run of a chapter reads the trained weights back.

Training the transformers of chapters 5 and 6 takes minutes on a CPU; everything after the
training takes seconds. :func:`cached_training` runs a training once and stores what it changed
(the trainable weights and buffers, as safetensors, plus the :class:`TrainHistory`); the next
call with the same key loads them instead of training, so re-running a chapter to change a later
cell costs seconds.

The key is everything that decides the trained weights:

* the starting weights (:func:`state_fingerprint`: pretrained encoder, random initialisation,
  a text start ...) and the :class:`TrainConfig` (seed, learning rate, patience ...);
* the training and validation data the caller names in ``data`` (:func:`fingerprint`);
* the library's own source (:func:`library_fingerprint`): any edit of ``recsys_lib`` retrains;
* torch's version, the device type, torch's thread count and the kernel configuration of
  :mod:`recsys_lib.course.kernels` (floating-point order changes trained weights).

Entries live in ``$RECSYS_FIT_CACHE`` (default ``fits/`` in the embedding cache, so each kernel
configuration keeps its own); ``RECSYS_FIT_CACHE=off`` disables the cache. Reads verify the
weights' sha256, names and shapes; an entry that fails is deleted with a warning and the model
retrained. Writes are atomic (weights first, then the manifest), under a file lock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.data.interactions import Interactions
from recsys_lib.runtime import atomic_write_bytes, atomic_write_text, setting
from recsys_lib.text.finetune.training import TrainConfig, TrainHistory

if TYPE_CHECKING:
    import torch

FIT_CACHE_VERSION = 1
FIT_CACHE_ENV = "RECSYS_FIT_CACHE"
#: TrainConfig fields that do not change the trained weights.
_NOT_KEYED = ("progress",)


def _feed(h: Any, part: object) -> None:
    """Hash ``part`` into ``h`` with its type, shape and dtype, so different objects differ."""
    if isinstance(part, Interactions):
        _feed(h, ("interactions", part.matrix, part.catalogue.user_ids, part.catalogue.item_ids))
        _feed(h, tuple(getattr(part, "items", ())))  # a Sequences' order
    elif isinstance(part, np.ndarray):
        array = np.ascontiguousarray(part)
        if array.dtype == object:
            _feed(h, [str(v) for v in array.tolist()])
            return
        h.update(f"ndarray{array.dtype.str}{array.shape}".encode())
        h.update(array.tobytes())
    elif sp.issparse(part):
        csr = sp.csr_matrix(part)
        _feed(h, ("sparse", csr.shape, csr.indptr, csr.indices, csr.data))
    elif isinstance(part, pd.DataFrame):
        _feed(h, ("frame", [str(c) for c in part.columns], part.index.to_numpy()))
        for column in part.columns:
            _feed(h, part[column].to_numpy())
    elif isinstance(part, pd.Series):
        _feed(h, ("series", str(part.name), part.index.to_numpy(), part.to_numpy()))
    elif isinstance(part, Mapping):
        h.update(b"map")
        for key in sorted(part, key=str):
            _feed(h, (str(key), part[key]))
    elif isinstance(part, list | tuple):
        h.update(f"seq{len(part)}".encode())
        for item in part:
            _feed(h, item)
    elif part is None or isinstance(part, bool | int | float | str | np.generic):
        h.update(f"{type(part).__name__}:{part!r};".encode())
    else:
        raise TypeError(
            f"fingerprint cannot hash a {type(part).__name__}; give arrays, sparse matrices, "
            "Interactions, data frames, series, numbers, strings, or lists/dicts of them."
        )


def fingerprint(*parts: object) -> str:
    """sha256 of ``parts`` (arrays, sparse matrices, :class:`Interactions` with their order,
    data frames, series, numbers, strings and lists/dicts of them), type- and shape-aware."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


@functools.cache
def library_fingerprint() -> str:
    """sha256 of every ``.py`` file of ``recsys_lib`` (paths and bytes): an edit retrains."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def state_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of ``model``'s state dict: names, dtypes, shapes and values of every tensor."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)};".encode())
        h.update(value.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tokenizer_key(tokenizer: Any) -> list[object]:
    """What decides a tokenizer's output, for a key: its class, vocabulary size and the token ids
    of a probe text pair."""
    probe = tokenizer("a [SEP] Toy Story (1995), comedy; 4.5 stars", "0123 é ü")["input_ids"]
    return [type(tokenizer).__name__, len(tokenizer), [int(i) for i in probe]]


def default_fit_cache_dir() -> Path | None:
    """``$RECSYS_FIT_CACHE``, None when it is ``off``, else ``fits/`` in the embedding cache."""
    from recsys_lib.text.embeddings import default_embedding_cache_dir

    value = setting(FIT_CACHE_ENV)
    if value is not None and value.lower() in ("off", "0", "none", "false"):
        return None
    return Path(value).expanduser() if value is not None else default_embedding_cache_dir() / "fits"


def fit_key(
    model: torch.nn.Module, config: TrainConfig, data: Mapping[str, object]
) -> dict[str, Any]:
    """Everything that decides the weights a training of ``model`` ends with (module docstring)."""
    import torch

    from recsys_lib.runtime import resolve_device

    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_KEYED}
    settings["device"] = resolve_device(config.device).split(":")[0]
    return {
        "version": FIT_CACHE_VERSION,
        "model": type(model).__qualname__,
        "start": state_fingerprint(model),
        "config": settings,
        "data": fingerprint(dict(data)),
        "library": library_fingerprint(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "kernels": setting("RECSYS_KERNELS") or "native",
    }


def _trained_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What training can change: the parameters that require gradients, and every buffer."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    names |= {n for n, _ in model.named_buffers()}
    return {n: t.detach().cpu().contiguous() for n, t in model.state_dict().items() if n in names}


def _history_from(entry: Mapping[str, Any]) -> TrainHistory:
    known = {f.name for f in fields(TrainHistory)}
    return TrainHistory(**{k: v for k, v in entry.items() if k in known})


def _load(folder: Path, key: dict[str, Any], model: torch.nn.Module) -> TrainHistory | None:
    """The stored history after loading the stored weights into ``model``; None on a miss."""
    from safetensors.torch import load as load_tensors

    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("key") != key:
            raise ValueError("the manifest holds another key")
        raw = (folder / "weights.safetensors").read_bytes()
        if hashlib.sha256(raw).hexdigest() != manifest["sha256"]:
            raise ValueError("weights checksum mismatch")
        tensors = load_tensors(raw)
        expected = _trained_tensors(model)
        if set(tensors) != set(expected):
            raise ValueError("the stored tensors are not the model's trainable ones")
        for name, tensor in tensors.items():
            if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
                raise ValueError(f"tensor {name} has shape {tuple(tensor.shape)} {tensor.dtype}")
        history = _history_from(manifest["history"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(
            f"fit cache entry {folder} is unreadable or corrupt ({err}); it is deleted and the "
            "model trained again.",
            stacklevel=3,
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None
    model.load_state_dict(tensors, strict=False)
    model.eval()
    history.from_cache = True
    return history


def _store(
    folder: Path, key: dict[str, Any], model: torch.nn.Module, history: TrainHistory
) -> None:
    from safetensors.torch import save as save_tensors

    raw = save_tensors(_trained_tensors(model))
    atomic_write_bytes(folder / "weights.safetensors", raw)
    entry = {**asdict(history), "from_cache": False}
    manifest = {"key": key, "sha256": hashlib.sha256(raw).hexdigest(), "history": entry}
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1, default=_plain))


def _plain(value: object) -> object:
    """numpy scalars as Python numbers for JSON."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} in a training history")


def cached_training(
    model: torch.nn.Module,
    config: TrainConfig,
    data: Mapping[str, object],
    train: Callable[[], TrainHistory],
    root: str | Path | None = "default",
) -> TrainHistory:
    """``train()`` (which trains ``model`` in place), or its stored result when it ran before.

    ``data``: the training and validation data ``train`` uses, by name (anything
    :func:`fingerprint` hashes). Call it before any set-up that only training needs, so a hit
    skips that too. ``root``: the cache folder; ``"default"`` = :func:`default_fit_cache_dir`,
    None = no cache. A hit sets ``history.from_cache``; its ``seconds`` are the stored
    training's.
    """
    from filelock import FileLock

    folder_root = default_fit_cache_dir() if root == "default" else root
    if folder_root is None:
        return train()
    key = fit_key(model, config, data)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    folder = Path(folder_root) / name
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=24 * 3600):
        history = _load(folder, key, model)
        if history is not None:
            return history
        history = train()
        _store(folder, key, model, history)
    return history
