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

from recsys_lib.spark.als import (  # noqa: F401
    factor_model_from_spark,
    fit_spark_als,
    implicit_to_spark_hyperparameters,
    interactions_to_spark,
    spark_als,
)
from recsys_lib.spark.distributed import (  # noqa: F401
    cached_encoder,
    embed_texts,
    top_k_scores,
)
from recsys_lib.spark.evaluation import (  # noqa: F401
    distributed_ranking_metrics,
)
from recsys_lib.spark.jobs import (  # noqa: F401
    SCORE_JOB_ALS,
    main,
    score_job,
    synthetic_interactions,
)
from recsys_lib.spark.session import (  # noqa: F401
    INSTALL_HINT,
    MIN_JAVA,
    PANDAS_CONVERSION_WARNINGS,
    SparkUnavailableError,
    java_version,
    local_cores,
    quiet_pandas_conversions,
    require_spark,
    spark_config,
    spark_session,
    spark_unavailable_reason,
)

__all__ = [
    "INSTALL_HINT",
    "MIN_JAVA",
    "PANDAS_CONVERSION_WARNINGS",
    "SCORE_JOB_ALS",
    "SparkUnavailableError",
    "cached_encoder",
    "distributed_ranking_metrics",
    "embed_texts",
    "factor_model_from_spark",
    "fit_spark_als",
    "implicit_to_spark_hyperparameters",
    "interactions_to_spark",
    "java_version",
    "local_cores",
    "main",
    "quiet_pandas_conversions",
    "require_spark",
    "score_job",
    "spark_als",
    "spark_config",
    "spark_session",
    "spark_unavailable_reason",
    "synthetic_interactions",
    "top_k_scores",
]
