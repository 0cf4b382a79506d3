"""Text embedding and exact top-k scoring on the executors (pandas on every partition)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.linalg import positions
from recsys_lib.retrieval.topk import check_k, exclude_entries, top_k

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame

    from recsys_lib.text.embeddings import TextEncoder

# Distributed text embedding and top-K scoring (pandas on every partition)
# ----------------------------------------------------------------------------------------

_ENCODERS: dict[tuple[str, str], TextEncoder] = {}  # one TextEncoder per Python worker process


def cached_encoder(model: str = "default", device: str = "cpu") -> TextEncoder:
    """The process-wide :class:`recsys_lib.text.embeddings.TextEncoder` for (model, device).

    Loaded on first use in each Python worker, then reused by every later task that the
    worker runs (Spark reuses Python workers by default).
    """
    key = (model, device)
    if key not in _ENCODERS:
        from recsys_lib.text.embeddings import TextEncoder

        # No on-disk cache: parallel workers (or executors on other machines) must not race
        # on one cache folder.
        _ENCODERS[key] = TextEncoder(model=model, device=device, use_cache=False)
    return _ENCODERS[key]


def _embed_partition(
    batches: Iterator[pd.DataFrame],
    *,
    id_col: str,
    text_col: str,
    model: str | Any,
    device: str,
    batch_size: int,
) -> Iterator[pd.DataFrame]:
    named = isinstance(model, str)
    encoder = cached_encoder(model, device) if named else model
    options: dict[str, Any] = {"show_progress": False} if named else {}  # quiet workers
    for batch in batches:
        for start in range(0, len(batch), batch_size):
            part = batch.iloc[start : start + batch_size]
            texts = part[text_col].fillna("").astype(str).tolist()
            vectors = np.asarray(encoder.encode(texts, **options), dtype=np.float32)
            if vectors.shape[0] != len(texts):
                raise ValueError(
                    f"encoder returned {vectors.shape[0]} vectors for {len(texts)} texts."
                )
            yield pd.DataFrame({id_col: part[id_col].to_numpy(), "embedding": list(vectors)})


def embed_texts(
    frame: DataFrame,
    *,
    id_col: str = "item_id",
    text_col: str = "text",
    model: str | Any = "default",
    device: str = "cpu",
    batch_size: int = 256,
) -> DataFrame:
    """Embed a text column on the executors: (id_col, embedding array<float>).

    ``model`` is a :class:`~recsys_lib.text.embeddings.TextEncoder` model name (loaded once per
    Python worker through :func:`cached_encoder`) or any picklable object with
    ``encode(list[str]) -> (n, d) float32``. Texts are encoded ``batch_size`` at a time.
    """
    from pyspark.sql import types as T

    fields = [(id_col, frame.schema[id_col].dataType),
              ("embedding", T.ArrayType(T.FloatType(), containsNull=False))]  # fmt: skip
    return _map_in_pandas(frame.select(id_col, text_col), _embed_partition, fields,
                          id_col=id_col, text_col=text_col, model=model, device=device,
                          batch_size=batch_size)  # fmt: skip


def _map_in_pandas(frame: DataFrame, partition_fn: Any, fields: list[tuple[str, Any]],
                   **options: Any) -> DataFrame:  # fmt: skip
    """``frame.mapInPandas(partition_fn(batches, **options))`` with the output columns
    ``fields`` = [(name, Spark type)]."""
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField(name, dtype) for name, dtype in fields])
    return frame.mapInPandas(functools.partial(partition_fn, **options), schema)


def _top_k_partition(
    batches: Iterator[pd.DataFrame],
    *,
    user_col: str,
    vector_col: str,
    items: Any,
    k: int,
    block_size: int,
) -> Iterator[pd.DataFrame]:
    item_ids, item_vectors = items.value  # sorted ids (n_items,), (n_items, d) float32
    for batch in batches:
        for start in range(0, len(batch), block_size):
            part = batch.iloc[start : start + block_size]
            queries = np.stack(part[vector_col].to_numpy()).astype(np.float32)
            scores = queries @ item_vectors.T  # (block, n_items)
            if "seen" in part.columns:
                seen = part["seen"].to_numpy()
                lengths = np.array([0 if s is None else len(s) for s in seen])
                if lengths.sum():
                    flat = np.concatenate([np.asarray(s) for s in seen if s is not None])
                    cols = positions(item_ids, flat)
                    rows = np.repeat(np.arange(len(part)), lengths)
                    known = cols >= 0
                    mask = sp.csr_matrix(
                        (np.ones(known.sum()), (rows[known], cols[known])), shape=scores.shape
                    )
                    exclude_entries(scores, mask)
            cols, values = top_k(scores, k)
            kk = cols.shape[1]
            valid = cols >= 0
            yield pd.DataFrame(
                {
                    user_col: np.repeat(part[user_col].to_numpy(), kk)[valid.ravel()],
                    "rank": np.tile(np.arange(1, kk + 1, dtype=np.int32), len(part))[valid.ravel()],
                    "item_id": item_ids[np.where(valid, cols, 0)].ravel()[valid.ravel()],
                    "score": values.ravel()[valid.ravel()].astype(np.float32),
                }
            )


def top_k_scores(
    queries: DataFrame,
    item_ids: np.ndarray,
    item_vectors: np.ndarray,
    k: int = 10,
    *,
    seen: DataFrame | None = None,
    user_col: str = "user_id",
    vector_col: str = "features",
    block_size: int = 1024,
) -> DataFrame:
    """Top-k items for every query row by dot product, computed per partition.

    ``queries``: (user_col, vector_col array<float> of length d). ``item_ids`` (n_items,) and
    ``item_vectors`` (n_items, d) are broadcast once to the executors. ``seen``: optional
    (user_col, item_id) frame of items to exclude per user (e.g. the train interactions).
    Ties break towards the lower item id (items are sorted by id; see
    :func:`recsys_lib.retrieval.topk.top_k`). Returns a long frame (user_col, rank, item_id, score),
    best first, ranks from 1.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    k = check_k(k)
    item_ids = np.asarray(item_ids)
    item_vectors = np.asarray(item_vectors, dtype=np.float32)
    if item_vectors.ndim != 2 or item_vectors.shape[0] != len(item_ids):
        raise ValueError(
            f"item_vectors must be (n_items, d) with n_items = len(item_ids) = {len(item_ids)}, "
            f"got shape {item_vectors.shape}."
        )
    order = np.argsort(item_ids, kind="stable")
    items = queries.sparkSession.sparkContext.broadcast((item_ids[order], item_vectors[order]))
    frame = queries.select(user_col, vector_col)
    if seen is not None:
        lists = seen.groupBy(user_col).agg(F.collect_list("item_id").alias("seen"))
        frame = frame.join(lists, user_col, "left")
    id_type = T.LongType() if np.issubdtype(item_ids.dtype, np.integer) else T.StringType()
    fields = [(user_col, queries.schema[user_col].dataType), ("rank", T.IntegerType()),
              ("item_id", id_type), ("score", T.FloatType())]  # fmt: skip
    return _map_in_pandas(frame, _top_k_partition, fields, user_col=user_col,
                          vector_col=vector_col, items=items, k=k, block_size=block_size)  # fmt: skip


# ----------------------------------------------------------------------------------------
