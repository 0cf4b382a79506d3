"""Synthetic interaction events generated in Spark, the end-to-end scoring job and its command line."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame, SparkSession

from recsys_lib.spark.als import _collect_factors, fit_spark_als
from recsys_lib.spark.distributed import top_k_scores
from recsys_lib.spark.session import quiet_pandas_conversions, require_spark, spark_session

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

    previous = str(spark.conf.get("spark.sql.shuffle.partitions"))
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
