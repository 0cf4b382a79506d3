"""Ranking metrics computed in Spark over recommendation and relevance frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recsys_lib.retrieval.topk import check_k

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame


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
