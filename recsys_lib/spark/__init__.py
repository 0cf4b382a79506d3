"""Scaling out on Apache Spark: session, ALS, distributed scoring and distributed metrics.

Optional extra ``spark`` (``pip install -e '.[spark]'``) plus Java 17 or newer. Nothing here
imports pyspark at import time; every function that needs it says clearly what is missing.

Orientation and naming follow the rest of the library: a long interaction frame has one row
per (user, item) pair with columns ``user_id``, ``item_id`` and ``value``; factors exported
from Spark are ordered by a :class:`~recsys_lib.data.interactions.Catalogue` (rows = users,
columns = items) so :class:`~recsys_lib.models.base.FactorModel` and chapter 0's evaluation work
on them unchanged.

Command line (the same job runs under ``spark-submit`` on a cluster)::

    python -m recsys_lib.spark generate --rows 1000000 --output /tmp/inter.parquet
    python -m recsys_lib.spark score --input /tmp/inter.parquet --output /tmp/top10.parquet
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.data.interactions import Catalogue, Interactions
from recsys_lib.linalg import positions
from recsys_lib.models.base import FactorModel
from recsys_lib.retrieval.topk import check_k, exclude_entries, top_k
from recsys_lib.runtime import temporary_environ

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame, SparkSession

    from recsys_lib.text.embeddings import TextEncoder

MIN_JAVA = 17
INSTALL_HINT = (
    "Java 17 is required: check `java -version`; install with e.g. "
    "`sudo apt-get install openjdk-17-jre-headless` (or set JAVA_HOME to a JDK 17+)."
)


class SparkUnavailableError(RuntimeError):
    """pyspark or a suitable Java runtime is missing."""


# ----------------------------------------------------------------------------------------
# Environment checks and the session helper
# ----------------------------------------------------------------------------------------


def java_version() -> int | None:
    """Major version of the Java that Spark would start (JAVA_HOME first, then PATH).

    Returns None when no ``java`` executable is found or it cannot report a version.
    """
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home, "bin", "java") if home else None
    java = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if java is None:
        return None
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2)) if major == 1 and match.group(2) else major


def spark_unavailable_reason() -> str | None:
    """Why Spark cannot run here (a sentence), or None when pyspark and Java 17+ are present."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return (
            "pyspark is not installed: install the optional extra with "
            "`pip install -e '.[spark]'` (pyspark and pyarrow)."
        )
    version = java_version()
    if version is None:
        return f"no Java runtime found (java not on PATH and JAVA_HOME unset). {INSTALL_HINT}"
    if version < MIN_JAVA:
        return f"Java {version} found but Spark 4 needs Java {MIN_JAVA}+. {INSTALL_HINT}"
    return None


def require_spark() -> None:
    """Raise :class:`SparkUnavailableError` with the reason and the fix if Spark cannot run."""
    reason = spark_unavailable_reason()
    if reason:
        raise SparkUnavailableError(reason)


def local_cores(master: str) -> int:
    """Cores a ``local[n]`` / ``local[*]`` / ``local`` master uses; os.cpu_count() otherwise."""
    match = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if match is None or match.group(1) in (None, "*"):
        if match is not None and match.group(1) is None:
            return 1
        return os.cpu_count() or 1
    return int(match.group(1))


def _write_log4j_file(folder: str, level: str) -> str:
    """A log4j2 properties file in ``folder`` that lets only ``level`` and above through."""
    path = Path(folder) / "log4j2.properties"
    path.write_text(
        "rootLogger.level = " + level.lower() + "\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n"
    )
    return str(path)


#: pyspark 4.3 warns on every pandas conversion under pandas 3; the conversions the library
#: makes (numeric and array columns) are covered by the tests.
PANDAS_CONVERSION_WARNINGS = (
    "PySpark does not yet fully support pandas",
    "The copy keyword is deprecated",
)


@contextlib.contextmanager
def quiet_pandas_conversions() -> Iterator[None]:
    """Silence :data:`PANDAS_CONVERSION_WARNINGS` inside a ``with`` block only."""
    with warnings.catch_warnings():
        for message in PANDAS_CONVERSION_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def spark_config(
    master: str = "local[*]",
    *,
    driver_memory: str = "4g",
    shuffle_partitions: int | None = None,
    log_file: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The configuration :func:`spark_session` uses, as a plain dict (inspect or reuse it).

    Shuffle partitions default to 2 x the local cores (Spark's default of 200 makes every
    small local job spend most of its time scheduling empty tasks). ``log_file``: a log4j2
    properties file for the driver JVM (:func:`spark_session` writes a private one that
    lets only its ``log_level`` through); without one Spark's default logging applies.
    """
    cores = local_cores(master)
    partitions = shuffle_partitions or max(2, 2 * cores)
    config = {
        "spark.master": master,
        "spark.app.name": "recsys-llm-notebooks",
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.default.parallelism": str(partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "10000",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.session.timeZone": "UTC",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
    }
    if log_file is not None:
        config["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log_file}"
    config.update(extra or {})
    return config


def spark_session(
    master: str = "local[*]",
    *,
    app_name: str = "recsys-llm-notebooks",
    driver_memory: str = "4g",
    shuffle_partitions: int | None = None,
    log_level: str = "ERROR",
    extra: dict[str, str] | None = None,
) -> SparkSession:
    """A SparkSession with sane local defaults: bounded driver memory, shuffle partitions
    sized to the cores, Arrow on, UI off, quiet logs, workers on this Python. Leaves no
    environment variable, warning filter or file behind (see :func:`quiet_pandas_conversions`
    for pyspark's pandas warnings).

    Reuses a running session (Spark allows one per process); stop it with ``spark.stop()``.
    Raises :class:`SparkUnavailableError` naming what is missing when pyspark or Java 17+
    is absent.
    """
    require_spark()
    from pyspark.sql import SparkSession

    # Python workers must be this interpreter (same numpy, same recsys_lib). pyspark reads
    # these when the session (and its JVM) starts, so they are set for that moment only;
    # the JVM also reads its log4j2 file then, so the file lives in a folder removed after.
    python = {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
              "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="recsys_spark_") as folder:
        config = spark_config(
            master,
            driver_memory=driver_memory,
            shuffle_partitions=shuffle_partitions,
            log_file=_write_log4j_file(folder, log_level),
            extra=extra,
        )
        config["spark.app.name"] = app_name
        builder = SparkSession.builder
        for key, value in config.items():
            builder = builder.config(key, value)
        with temporary_environ(python, keep_existing=True):
            spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    return spark


# ----------------------------------------------------------------------------------------
# ALS: fit in Spark, export into the library's model contract
# ----------------------------------------------------------------------------------------


def interactions_to_spark(spark: SparkSession, interactions: Interactions) -> DataFrame:
    """The stored entries of a users x items :class:`Interactions` as a Spark frame
    (user_id, item_id, value) with raw ids; ids must be integers (Spark ALS needs ints)."""
    frame = interactions.to_frame("value")
    for col in ("user_id", "item_id"):
        if not pd.api.types.is_integer_dtype(frame[col].dtype):
            raise TypeError(
                f"{col} has dtype {frame[col].dtype}; Spark ALS needs integer ids. Map the ids "
                "to integers first (e.g. the catalogue positions)."
            )
    frame = frame.astype({"user_id": "int32", "item_id": "int32", "value": "float32"})
    with quiet_pandas_conversions():
        return spark.createDataFrame(frame)


def implicit_to_spark_hyperparameters(
    regularization: float, alpha: float, mean_interactions: float, *, raw_implicit: bool = False
) -> dict[str, float]:
    """Spark ALS settings (regParam, alpha) comparable to an implicit-ALS setting.

    * Confidence: Spark uses ``c = 1 + alpha * r``, exactly as :class:`recsys_lib.models.mf.ALS`, so
      alpha carries over unchanged. Raw ``implicit.als.AlternatingLeastSquares`` (0.7) takes
      its input times alpha *as* the confidence, ``c = alpha * r``; with
      ``raw_implicit=True`` the binary-data match ``spark_alpha = alpha - 1`` is returned
      (alpha must then be >= 1).
    * Regularisation: implicit adds ``regularization * I`` to every user's (and item's)
      normal equations; Spark adds ``regParam * n_u * I`` with n_u the user's observed
      interactions (ALS-WR weighting; items likewise). No single regParam equals a constant
      for every user; ``regularization / mean_interactions`` matches on average, so
      validate around it.
    """
    if mean_interactions <= 0:
        raise ValueError(f"mean_interactions must be > 0, got {mean_interactions}.")
    spark_alpha = alpha
    if raw_implicit:
        if alpha < 1.0:
            raise ValueError(
                f"raw implicit alpha={alpha} gives confidence < 1 on observed entries; "
                "Spark's confidence 1 + alpha * r cannot match it. Use alpha >= 1."
            )
        spark_alpha = alpha - 1.0
    return {"regParam": regularization / mean_interactions, "alpha": spark_alpha}


def fit_spark_als(
    frame: DataFrame,
    *,
    factors: int = 64,
    regularization: float = 0.01,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
    blocks: int | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    value_col: str = "value",
) -> ALSModel:
    """Spark ML implicit-feedback ALS (confidence ``1 + alpha * value``, ALS-WR regParam).

    ``regularization`` is Spark's ``regParam`` and ``alpha`` Spark's alpha; see
    :func:`implicit_to_spark_hyperparameters` to translate an ``implicit`` setting.
    ``blocks`` sets numUserBlocks = numItemBlocks (default: the frame's partitions).
    """
    from pyspark.ml.recommendation import ALS

    missing = [c for c in (user_col, item_col, value_col) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}; it has {frame.columns}.")
    n_blocks = blocks or max(1, frame.rdd.getNumPartitions())
    als = ALS(
        rank=factors,
        maxIter=iterations,
        regParam=regularization,
        alpha=alpha,
        implicitPrefs=True,
        userCol=user_col,
        itemCol=item_col,
        ratingCol=value_col,
        seed=seed,
        numUserBlocks=n_blocks,
        numItemBlocks=n_blocks,
        coldStartStrategy="drop",
    )
    return als.fit(frame)


def _collect_factors(factor_frame: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n,), factors (n, f) float32) from an ALS factor frame (id, features)."""
    with quiet_pandas_conversions():
        pdf = factor_frame.select("id", "features").toPandas()
    ids = pdf["id"].to_numpy()
    if len(pdf) == 0:
        return ids, np.zeros((0, 0), np.float32)
    return ids, np.stack(pdf["features"].to_numpy()).astype(np.float32)


def _ordered(ids: np.ndarray, vectors: np.ndarray, positions: np.ndarray, n: int, rank: int):
    out = np.zeros((n, rank), dtype=np.float32)
    known = positions >= 0
    out[positions[known]] = vectors[known]
    return out


def factor_model_from_spark(als_model: ALSModel, catalogue: Catalogue) -> FactorModel:
    """Export a fitted Spark ALSModel as a :class:`FactorModel` ordered by ``catalogue``.

    User factors are (catalogue.n_users, rank) in row order, item factors
    (catalogue.n_items, rank) in column order. Users/items of the catalogue that Spark never
    saw get zero vectors (score 0); Spark ids absent from the catalogue are dropped.
    """
    rank = als_model.rank
    user_ids, user_vecs = _collect_factors(als_model.userFactors)
    item_ids, item_vecs = _collect_factors(als_model.itemFactors)
    users = _ordered(
        user_ids, user_vecs, catalogue.user_index(user_ids, strict=False), catalogue.n_users, rank
    )
    items = _ordered(
        item_ids, item_vecs, catalogue.item_index(item_ids, strict=False), catalogue.n_items, rank
    )
    return FactorModel(users, items)


def spark_als(
    spark: SparkSession, train: Interactions, *, blocks: int | None = None, **als_options: Any
) -> FactorModel:
    """Fit Spark ALS on ``train`` (users x items) and return a fitted :class:`FactorModel`.

    ``als_options``: :func:`fit_spark_als`'s hyper-parameters (factors, regularization,
    alpha, iterations, seed). ``fit_seconds_`` is the Spark fit plus the factor export (the
    JVM start is not counted).
    """
    start = time.perf_counter()
    frame = interactions_to_spark(spark, train)
    if blocks:
        frame = frame.repartition(blocks)
    als_model = fit_spark_als(frame, blocks=blocks, **als_options)
    model = factor_model_from_spark(als_model, train.catalogue).fit(train)
    model.name = "spark-als"
    model.fit_seconds_ = time.perf_counter() - start
    return model


# ----------------------------------------------------------------------------------------
# Distributed evaluation
# ----------------------------------------------------------------------------------------


def distributed_ranking_metrics(
    recommendations: DataFrame,
    relevant: DataFrame,
    k: int = 10,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rank_col: str = "rank",
) -> dict[str, float]:
    """Chapter 0's ranking metrics computed with Spark DataFrame operations.

    ``recommendations``: one row per (user, recommended item) with a 1-based ``rank``
    (best = 1; only ranks <= k count). ``relevant``: one row per (user, relevant test item).
    Averages run over users with at least one relevant item (a user without
    recommendations scores 0), exactly as :mod:`recsys_lib.evaluation.metrics`: precision divides by k,
    recall by |R|, nDCG uses binary gains and log2(rank + 1), ``map`` divides the summed
    precisions by |R| (recommenders-style), ``map@k`` by min(|R|, k).
    Returns keys map, map@k, ndcg@k, precision@k, recall@k, hit_rate@k, mrr@k (k spelled).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    k = check_k(k)
    for name, frame, cols in (
        ("recommendations", recommendations, (user_col, item_col, rank_col)),
        ("relevant", relevant, (user_col, item_col)),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} is missing column(s) {missing}; it has {frame.columns}.")

    truth = relevant.select(user_col, item_col).distinct()
    n_rel = truth.groupBy(user_col).agg(F.count(F.lit(1)).alias("n_rel"))
    recs = recommendations.where(F.col(rank_col) <= k).select(user_col, item_col, rank_col)
    hits = recs.join(truth, [user_col, item_col], "inner")
    # Hits so far at each hit position -> precision at that position.
    order = Window.partitionBy(user_col).orderBy(rank_col)
    hits = hits.withColumn("hits_so_far", F.row_number().over(order))
    per_user_hits = hits.groupBy(user_col).agg(
        F.count(F.lit(1)).alias("n_hits"),
        F.sum(1.0 / F.log2(F.col(rank_col) + 1.0)).alias("dcg"),
        F.sum(F.col("hits_so_far") / F.col(rank_col)).alias("precision_sum"),
        F.min(rank_col).alias("first_hit"),
    )
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    ideal_dcg = F.element_at(
        F.array(*[F.lit(float(v)) for v in ideal[1:]]),
        F.least(F.col("n_rel"), F.lit(k)).cast("int"),
    )
    per_user = n_rel.join(per_user_hits, user_col, "left").fillna(
        0, subset=["n_hits", "dcg", "precision_sum"]
    )
    per_user = per_user.select(
        (F.col("precision_sum") / F.col("n_rel")).alias("map"),
        (F.col("precision_sum") / F.least(F.col("n_rel"), F.lit(k))).alias("map@k"),
        (F.col("dcg") / ideal_dcg).alias("ndcg@k"),
        (F.col("n_hits") / F.lit(float(k))).alias("precision@k"),
        (F.col("n_hits") / F.col("n_rel")).alias("recall@k"),
        (F.col("n_hits") > 0).cast("double").alias("hit_rate@k"),
        F.coalesce(1.0 / F.col("first_hit"), F.lit(0.0)).alias("mrr@k"),
    )
    names = ["map", "map@k", "ndcg@k", "precision@k", "recall@k", "hit_rate@k", "mrr@k"]
    row = per_user.agg(*[F.avg(F.col(f"`{n}`")).alias(n.replace("@", "_at_")) for n in names])
    values = row.first()
    return {
        n.replace("@k", f"@{k}"): float("nan")
        if values is None or values[i] is None
        else float(values[i])
        for i, n in enumerate(names)
    }


# ----------------------------------------------------------------------------------------
# Distributed text embedding and top-K scoring (pandas on every partition)
# ----------------------------------------------------------------------------------------

_ENCODERS: dict[tuple[str, str], Any] = {}  # one TextEncoder per Python worker process


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
    options = {"show_progress": False} if named else {}  # no progress bars from workers
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
# Synthetic data and the end-to-end job
# ----------------------------------------------------------------------------------------


def synthetic_interactions(
    spark: SparkSession,
    n_rows: int,
    *,
    n_users: int | None = None,
    n_items: int = 10_000,
    seed: int = 0,
    partitions: int | None = None,
) -> DataFrame:
    """``n_rows`` synthetic interaction events generated in Spark: (user_id, item_id, value).

    Users are uniform over ``n_users`` (default n_rows // 50, so about 50 events a user);
    items follow a long tail (item = floor(n_items * u^3), u uniform, so low ids are popular).
    Rows are events, so a (user, item) pair can repeat; aggregate before fitting
    (the job does). Deterministic for a fixed (seed, partitions).
    """
    from pyspark.sql import functions as F

    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}.")
    n_users = n_users or max(1, n_rows // 50)
    parts = partitions or spark.sparkContext.defaultParallelism
    base = spark.range(0, int(n_rows), numPartitions=parts)
    return base.select(
        F.floor(F.rand(seed) * n_users).cast("int").alias("user_id"),
        F.floor(F.pow(F.rand(seed + 1), 3.0) * n_items).cast("int").alias("item_id"),
        F.lit(1.0).cast("float").alias("value"),
    )


#: The score job's ALS defaults (smaller and quicker than :func:`fit_spark_als`'s).
SCORE_JOB_ALS: dict[str, Any] = {"factors": 32, "iterations": 5}


def score_job(
    spark: SparkSession,
    interactions: DataFrame,
    output: str | None,
    *,
    k: int = 10,
    partitions: int | None = None,
    **als_options: Any,
) -> dict[str, float]:
    """End to end: aggregate events -> Spark ALS -> top-k unseen items per user -> Parquet.

    ``interactions``: (user_id, item_id[, value]) events; repeated pairs are summed.
    ``als_options``: :func:`fit_spark_als`'s hyper-parameters over :data:`SCORE_JOB_ALS`.
    ``partitions`` sets the input partitions, ALS blocks and shuffle partitions (default:
    the session's shuffle partitions). Writes (user_id, rank, item_id, score) to ``output``
    (overwritten; None = count only). Returns wall seconds per stage and sizes.
    """

    previous = spark.conf.get("spark.sql.shuffle.partitions")
    parts = partitions or int(previous)
    spark.conf.set("spark.sql.shuffle.partitions", str(parts))
    try:
        als = {**SCORE_JOB_ALS, **als_options}
        return _score_job(spark, interactions, output, parts, k=k, als=als)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)


def _score_job(
    spark: SparkSession,
    interactions: DataFrame,
    output: str | None,
    parts: int,
    *,
    k: int,
    als: dict[str, Any],
) -> dict[str, float]:
    from pyspark.sql import functions as F

    timings: dict[str, float] = {}
    start = time.perf_counter()
    if "value" not in interactions.columns:
        interactions = interactions.withColumn("value", F.lit(1.0))
    pairs = (
        interactions.groupBy("user_id", "item_id")
        .agg(F.sum("value").cast("float").alias("value"))
        .repartition(parts)
        .cache()
    )
    timings["pairs"] = float(pairs.count())
    timings["prepare_s"] = time.perf_counter() - start

    t = time.perf_counter()
    als_model = fit_spark_als(pairs, blocks=parts, **als)
    item_ids, item_vecs = _collect_factors(als_model.itemFactors)
    timings["als_s"] = time.perf_counter() - t

    t = time.perf_counter()
    users = als_model.userFactors.withColumnRenamed("id", "user_id")
    recs = top_k_scores(users, item_ids, item_vecs, k, seen=pairs.select("user_id", "item_id"))
    if output is None:
        timings["rows_out"] = float(recs.count())
    else:
        recs.write.mode("overwrite").parquet(output)
        timings["rows_out"] = float(spark.read.parquet(output).count())
    timings["score_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start
    pairs.unpersist()
    return timings


def main(argv: list[str] | None = None) -> int:
    """Command line: ``generate`` synthetic events, or ``score`` (ALS + top-k) a Parquet."""
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.spark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--master",
        default=None,
        help="e.g. local[2]; leave out under spark-submit (it sets the master)",
    )
    parser.add_argument("--driver-memory", default="4g")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write synthetic interaction events to Parquet")
    gen.add_argument("--rows", type=float, required=True, help="number of events, e.g. 1e7")
    gen.add_argument("--items", type=int, default=10_000)
    gen.add_argument("--output", required=True)
    gen.add_argument("--partitions", type=int, default=None)
    gen.add_argument("--seed", type=int, default=0)
    score = sub.add_parser("score", help="ALS + top-k unseen items per user, to Parquet")
    score.add_argument("--input", required=True, help="Parquet with user_id, item_id[, value]")
    score.add_argument("--output", required=True)
    score.add_argument("--k", type=int, default=10)
    score.add_argument("--factors", type=int, default=32)
    score.add_argument("--regularization", type=float, default=0.01)
    score.add_argument("--alpha", type=float, default=1.0)
    score.add_argument("--iterations", type=int, default=5)
    score.add_argument("--partitions", type=int, default=None)
    score.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # set by spark-submit's launcher
    if args.master is None and not under_submit:
        args.master = "local[*]"  # plain `python -m`: run locally
    require_spark()
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None  # never stop a caller's session
    if args.master is None:  # under spark-submit: keep the submitted master and settings
        spark = SparkSession.builder.appName("recsys-score-topk").getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
    else:
        spark = spark_session(args.master, driver_memory=args.driver_memory)
    try:
        with quiet_pandas_conversions():  # the command line's own output stays readable
            if args.command == "generate":
                frame = synthetic_interactions(
                    spark,
                    int(args.rows),
                    n_items=args.items,
                    seed=args.seed,
                    partitions=args.partitions,
                )
                frame.write.mode("overwrite").parquet(args.output)
                result: dict[str, float] = {"rows": float(spark.read.parquet(args.output).count())}
            else:
                result = score_job(
                    spark,
                    spark.read.parquet(args.input),
                    args.output,
                    k=args.k,
                    factors=args.factors,
                    regularization=args.regularization,
                    alpha=args.alpha,
                    iterations=args.iterations,
                    partitions=args.partitions,
                    seed=args.seed,
                )
            print(json.dumps(result))
    finally:
        if owned:
            spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
