"""Spark ML ALS: interactions as a Spark frame, implicit's hyper-parameters translated, fitting, and
the fitted factors exported into the library's model contract.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_lib.data.interactions import Catalogue, Interactions
from recsys_lib.models.base import FactorModel

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame, SparkSession

from recsys_lib.spark.session import quiet_pandas_conversions

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
        pdf: Any = factor_frame.select("id", "features").toPandas()
    ids = pdf["id"].to_numpy()
    if len(pdf) == 0:
        return ids, np.zeros((0, 0), np.float32)
    return ids, np.stack(pdf["features"].to_numpy()).astype(np.float32)


def _ordered(
    ids: np.ndarray, vectors: np.ndarray, positions: np.ndarray, n: int, rank: int
) -> np.ndarray:
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
