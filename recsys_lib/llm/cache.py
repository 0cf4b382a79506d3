"""LLM scores on disk: a second run of a chapter reads them instead of running the model.

The store is the embedding cache of :mod:`recsys_lib.text.embeddings` (one home for "vectors
on disk, verified and file-locked"): one folder per (kind of score, model file sha256, what is
read, weight count), one entry per prompt, keyed by the sha256 of the prompt's token ids. Every
entry is checked against its checksum on read, and writers hold a file lock, so two processes
can fill it at once.

Scores are returned rounded to float32 whether they come from the cache or from the model, so
a cold and a warm run rank the candidates identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recsys_lib.llm.loading import LLM
from recsys_lib.text.embeddings import EmbeddingCache, default_embedding_cache_dir, text_hash


@dataclass
class CacheStats:
    """What the last :func:`cached_rows` call did: rows found, rows computed, seconds each."""

    hits: int = 0
    misses: int = 0
    seconds: float = 0.0


def prompt_key(ids: Sequence[int]) -> str:
    """The cache key of a prompt: sha256 of its token ids written as decimal text."""
    return text_hash(",".join(str(int(i)) for i in ids))


def score_cache(lm: LLM, kind: str, read: Sequence[int] | str, dim: int,
                root: str | None = "default") -> EmbeddingCache | None:  # fmt: skip
    """The on-disk store for one kind of score of ``lm``, or None when it cannot be keyed.

    ``kind``: a name ("listwise", "pointwise", "hidden"); ``read``: the token ids whose logits
    are stored (or a word for other readings); ``dim``: values per prompt. Only a model loaded
    from a verified file (``lm.sha256`` set) is cached, and the weight count is part of the key,
    so a model with adapters added (LoRA) never reads its base model's scores. ``root``:
    ``"default"`` = ``llm-scores`` in the embedding cache (scores, like text vectors, are
    computed by the processor's float kernels, so each kernel configuration of
    :mod:`recsys_lib.course.kernels` keeps its own); None disables caching.
    """
    if root is None or lm.sha256 is None:
        return None
    if dim < 1:
        raise ValueError(f"dim must be at least 1, got {dim}.")
    root = str(default_embedding_cache_dir() / "llm-scores") if root == "default" else root
    n_weights = sum(p.numel() for p in lm.model.parameters())
    config = {"kind": kind, "model_sha256": lm.sha256, "read": list(read) if not isinstance(
        read, str) else read, "n_weights": int(n_weights)}  # fmt: skip
    return EmbeddingCache(root, config, dim)


def cached_rows(cache: EmbeddingCache | None, prompts: list[list[int]],
                compute: Callable[[list[int]], np.ndarray],
                stats: CacheStats | None = None, chunk: int = 256) -> np.ndarray:  # fmt: skip
    """One row of values per prompt: float64 (n, dim), from ``cache`` where present and from
    ``compute(positions) -> (m, dim)`` otherwise (``positions``: indices into ``prompts`` of the
    rows to compute; they are stored every ``chunk`` rows). Values are rounded to float32 either way. ``stats``,
    when given, is incremented with the hits, the misses and the seconds spent."""
    if not prompts:
        return np.empty((0, cache.dim if cache is not None else 0))
    start = time.perf_counter()
    keys = [prompt_key(p) for p in prompts]
    found = cache.get(list(dict.fromkeys(keys))) if cache is not None else {}
    missing = [i for i, k in enumerate(keys) if k not in found]
    first: dict[str, int] = {}
    for i in missing:  # a prompt asked twice is computed once
        first.setdefault(keys[i], i)
    todo = list(first.values())
    for s in range(0, len(todo), chunk):  # stored chunk by chunk: an interrupted run keeps them
        part = todo[s : s + chunk]
        fresh = np.asarray(compute(part), dtype=np.float32)
        if fresh.ndim == 1:
            fresh = fresh[:, None]
        for i, row in zip(part, fresh, strict=True):
            found[keys[i]] = row
        if cache is not None:
            cache.put([keys[i] for i in part], fresh)
    out = np.stack([np.asarray(found[k], dtype=np.float32) for k in keys]).astype(np.float64)
    if stats is not None:
        stats.hits += len(keys) - len(todo)
        stats.misses += len(todo)
        stats.seconds += time.perf_counter() - start
    return out
