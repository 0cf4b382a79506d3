"""Spark helpers on tiny frames; one local[2] session shared by the whole file.

Spark tests are skipped, with a message that says how to install Java 17, where Java 17 or
pyspark is missing: `make test` needs only Python 3.11 and make. Set RECSYS_REQUIRE_SPARK=1 to
turn a missing runtime into a failure (a CI that must prove the Spark chapter runs).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_lib import spark as rs
from recsys_lib.data.interactions import shared_interactions
from recsys_lib.evaluation.metrics import ranking_report
from recsys_lib.evaluation.protocol import evaluation_users
from recsys_lib.models.base import Popularity
from recsys_lib.retrieval.topk import top_k

REASON = rs.spark_unavailable_reason()
# pyspark 4.3 warns on every pandas 3 conversion; the conversions below are checked by value.
pytestmark = [
    # one Spark session per worker is enough: keep this file on one pytest-xdist worker
    pytest.mark.xdist_group("spark"),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="session")
def spark():
    if REASON:
        if os.environ.get("RECSYS_REQUIRE_SPARK") == "1":
            pytest.fail(f"RECSYS_REQUIRE_SPARK=1 but Spark cannot start: {REASON}")
        pytest.skip(REASON)
    session = rs.spark_session("local[2]", driver_memory="2g", shuffle_partitions=4)
    yield session
    session.stop()


# ---------------------------------------------------------------- no JVM needed


def test_unavailable_reason_names_the_java_fix(monkeypatch):
    monkeypatch.setattr(rs.session, "java_version", lambda: None)
    reason = rs.spark_unavailable_reason()
    assert "java -version" in reason and "openjdk-17-jre-headless" in reason
    monkeypatch.setattr(rs.session, "java_version", lambda: 11)
    assert "Java 11 found" in rs.spark_unavailable_reason()
    with pytest.raises(rs.SparkUnavailableError, match="Java 17 is required"):
        rs.require_spark()
    monkeypatch.setattr(rs.session, "java_version", lambda: 17)
    assert rs.spark_unavailable_reason() is None


def test_java_version_parses_this_machine():
    version = rs.java_version()
    assert version is None or version >= 8


def test_local_cores():
    assert rs.local_cores("local[2]") == 2
    assert rs.local_cores("local") == 1
    assert rs.local_cores("local[3, 2]") == 3
    assert rs.local_cores("local[*]") == (os.cpu_count() or 1)


def test_spark_config_local_defaults():
    conf = rs.spark_config("local[3]", driver_memory="1g")
    assert conf["spark.sql.shuffle.partitions"] == "6"  # 2 x cores
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.driver.memory"] == "1g"
    assert "spark.driver.extraJavaOptions" not in conf  # no log file unless one is given
    quiet = rs.spark_config("local[3]", log_file="/x/log4j2.properties")
    assert (
        quiet["spark.driver.extraJavaOptions"]
        == "-Dlog4j2.configurationFile=file:/x/log4j2.properties"
    )
    assert rs.spark_config("local[3]", shuffle_partitions=5)["spark.sql.shuffle.partitions"] == "5"
    assert rs.spark_config(extra={"spark.ui.enabled": "true"})["spark.ui.enabled"] == "true"


def test_spark_session_leaves_no_environment_filters_or_files_behind(spark, monkeypatch, tmp_path):
    import tempfile
    import warnings

    for key in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        monkeypatch.delenv(key, raising=False)
    # A private temp folder: other pytest-xdist workers (and notebooks) start Spark sessions
    # of their own in the shared /tmp at the same time, so a glob there races with them.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env, filters = dict(os.environ), list(warnings.filters)
    assert rs.spark_session("local[2]") is spark  # one session per process: reused
    assert dict(os.environ) == env
    assert list(warnings.filters) == filters
    assert list(tmp_path.iterdir()) == []


def test_implicit_to_spark_hyperparameters():
    got = rs.implicit_to_spark_hyperparameters(30.0, 2.0, mean_interactions=60.0)
    assert got == {"regParam": 0.5, "alpha": 2.0}  # mf.ALS already uses 1 + alpha * r
    raw = rs.implicit_to_spark_hyperparameters(30.0, 5.0, 60.0, raw_implicit=True)
    assert raw == {"regParam": 0.5, "alpha": 4.0}  # raw implicit: c = alpha * r
    with pytest.raises(ValueError, match="alpha >= 1"):
        rs.implicit_to_spark_hyperparameters(1.0, 0.5, 10.0, raw_implicit=True)
    with pytest.raises(ValueError, match="mean_interactions"):
        rs.implicit_to_spark_hyperparameters(1.0, 1.0, 0.0)


def test_cached_encoder_loads_once_per_process(monkeypatch):
    import recsys_lib.text.embeddings as emb

    calls = []

    class Fake:
        def __init__(self, model, device, use_cache):
            calls.append((model, device, use_cache))

    monkeypatch.setattr(emb, "TextEncoder", Fake)
    monkeypatch.setattr(rs.distributed, "_ENCODERS", {})
    first = rs.cached_encoder("m", "cpu")
    assert rs.cached_encoder("m", "cpu") is first
    rs.cached_encoder("other", "cpu")
    assert calls == [("m", "cpu", False), ("other", "cpu", False)]


# ---------------------------------------------------------------- with the shared session


@pytest.mark.spark
def test_session_has_local_defaults(spark):
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.ui.enabled") == "false"
    assert spark.sparkContext.master == "local[2]"
    assert rs.spark_session("local[2]") is spark  # getOrCreate: one session per process


@pytest.fixture(scope="module")
def tiny_split():
    train = pd.DataFrame(
        {"user_id": [1, 1, 2, 2, 3, 3, 4], "item_id": [10, 20, 10, 30, 20, 30, 10]}
    )
    test = pd.DataFrame(
        {"user_id": [1, 2, 5], "item_id": [30, 20, 40]}
    )  # user 5, item 40: test only
    return shared_interactions(train, test)


@pytest.mark.spark
def test_factor_model_is_ordered_by_catalogue_with_zeros_for_unseen(spark, tiny_split):
    train, _ = tiny_split
    frame = rs.interactions_to_spark(spark, train)
    als = rs.fit_spark_als(frame, factors=3, iterations=3, regularization=0.1, seed=1, blocks=2)
    model = rs.factor_model_from_spark(als, train.catalogue)
    assert model.user_factors.shape == (5, 3) and model.item_factors.shape == (4, 3)
    spark_users = {r.id: np.array(r.features) for r in als.userFactors.collect()}
    spark_items = {r.id: np.array(r.features) for r in als.itemFactors.collect()}
    for row, uid in enumerate(train.catalogue.user_ids):
        want = spark_users.get(int(uid), np.zeros(3))
        np.testing.assert_allclose(model.user_factors[row], want, rtol=1e-6)
    for col, iid in enumerate(train.catalogue.item_ids):
        want = spark_items.get(int(iid), np.zeros(3))
        np.testing.assert_allclose(model.item_factors[col], want, rtol=1e-6)
    assert not model.user_factors[train.catalogue.user_index([5])[0]].any()
    assert not model.item_factors[train.catalogue.item_index([40])[0]].any()
    assert model.user_factors[0].any()


@pytest.mark.spark
def test_spark_als_fits_into_the_model_contract(spark, tiny_split):
    train, test = tiny_split
    model = rs.spark_als(spark, train, factors=2, iterations=2, regularization=0.1, seed=0)
    assert model.train_ is train and model.fit_seconds_ > 0
    recs = model.recommend([0, 1], k=2)  # users 1 and 2
    seen = train.matrix[[0, 1]].toarray() > 0
    for row, cols in enumerate(recs):
        assert not seen[row, cols[cols >= 0]].any()


@pytest.mark.spark
def test_interactions_to_spark_rejects_string_ids(spark):
    (inter,) = shared_interactions(pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))
    with pytest.raises(TypeError, match="integer ids"):
        rs.interactions_to_spark(spark, inter)


@pytest.mark.spark
def test_distributed_metrics_by_hand(spark):
    # User 1: list (a, b, c, d) = (1, 2, 3, 4); relevant {2, 4, 5}; k = 4.
    # User 2: relevant {7}, no recommendations at all; user 3: recs only, not averaged.
    recs = pd.DataFrame(
        {"user_id": [1, 1, 1, 1, 1, 3], "item_id": [1, 2, 3, 4, 5, 9], "rank": [1, 2, 3, 4, 5, 1]}
    )
    truth = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [2, 4, 5, 7]})
    got = rs.distributed_ranking_metrics(
        spark.createDataFrame(recs), spark.createDataFrame(truth), 4
    )
    ndcg1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    ap_sum = 1 / 2 + 2 / 4  # hits at ranks 2 and 4 (item 5 at rank 5 is beyond k)
    want = {
        "precision@4": (2 / 4 + 0) / 2,
        "recall@4": (2 / 3 + 0) / 2,
        "ndcg@4": ndcg1 / 2,
        "map": (ap_sum / 3) / 2,
        "map@4": (ap_sum / 3) / 2,
        "hit_rate@4": 0.5,
        "mrr@4": (1 / 2) / 2,
    }
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


@pytest.mark.spark
def test_distributed_metrics_equal_numpy_on_random_lists(spark):
    rng = np.random.default_rng(3)
    n_users, n_items, k = 30, 25, 5
    dense = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    dense[0] = 0  # a user without relevant items is not averaged
    relevant = sp.csr_matrix(dense)
    recommended = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    users, ranks = np.meshgrid(np.arange(n_users), np.arange(1, k + 1), indexing="ij")
    recs = pd.DataFrame(
        {"user_id": users.ravel(), "item_id": recommended.ravel(), "rank": ranks.ravel()}
    )
    coo = relevant.tocoo()
    truth = pd.DataFrame({"user_id": coo.row, "item_id": coo.col})
    got = rs.distributed_ranking_metrics(
        spark.createDataFrame(recs), spark.createDataFrame(truth), k
    )
    want = ranking_report(recommended, relevant, k)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.spark
def test_distributed_metrics_equal_numpy_on_movielens(spark, benchmark_split):
    train_df, test_df, train, test = benchmark_split
    model = Popularity().fit(train)
    users = evaluation_users(test)
    recs = model.recommend_frame(test.catalogue.user_ids[users], k=10)
    got = rs.distributed_ranking_metrics(
        spark.createDataFrame(recs), spark.createDataFrame(test_df[["user_id", "item_id"]]), 10
    )
    want = ranking_report(model.recommend(users, 10), test.matrix[users], 10)
    for name, value in want.items():
        assert abs(got[name] - value) < 1e-6, name


@pytest.mark.spark
def test_distributed_metrics_checks_columns(spark):
    frame = spark.createDataFrame(pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(ValueError, match="rank"):
        rs.distributed_ranking_metrics(frame, frame, 10)


@pytest.mark.spark
def test_top_k_scores_matches_numpy_and_excludes_seen(spark):
    rng = np.random.default_rng(0)
    users = rng.normal(size=(7, 4)).astype(np.float32)
    items = rng.normal(size=(9, 4)).astype(np.float32)
    items[5] = items[2]  # a tie: the lower item id must win
    item_ids = np.array([90, 10, 20, 30, 40, 50, 60, 70, 80])  # not sorted on purpose
    queries = spark.createDataFrame(
        pd.DataFrame({"user_id": np.arange(7), "features": list(users)})
    )
    seen = pd.DataFrame({"user_id": [0, 0, 3], "item_id": [20, 90, 70]})
    out = (
        rs.top_k_scores(
            queries, item_ids, items, k=3, seen=spark.createDataFrame(seen), block_size=3
        )
        .toPandas()
        .sort_values(["user_id", "rank"])
    )
    order = np.argsort(item_ids)
    scores = users @ items[order].T
    sorted_ids = item_ids[order]
    for _, row in seen.iterrows():
        scores[row.user_id, np.searchsorted(sorted_ids, row.item_id)] = -np.inf
    cols, values = top_k(scores, 3)
    assert out["item_id"].to_numpy().reshape(7, 3).tolist() == sorted_ids[cols].tolist()
    np.testing.assert_allclose(out["score"].to_numpy().reshape(7, 3), values, rtol=1e-5)
    assert out["rank"].tolist() == [1, 2, 3] * 7


@pytest.mark.spark
def test_top_k_scores_checks_shapes(spark):
    queries = spark.createDataFrame(pd.DataFrame({"user_id": [1], "features": [[1.0, 2.0]]}))
    with pytest.raises(ValueError, match="n_items"):
        rs.top_k_scores(queries, np.array([1, 2]), np.ones((3, 2)), k=1)


@pytest.mark.spark
def test_embed_texts_runs_the_encoder_per_partition(spark):
    class LengthEncoder:  # defined locally so cloudpickle ships it by value to the workers
        def encode(self, texts):
            return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    frame = spark.createDataFrame(
        pd.DataFrame({"item_id": [1, 2, 3, 4, 5], "text": ["a", "banana", "", "kiwi", "aa"]})
    ).repartition(2)
    out = rs.embed_texts(frame, model=LengthEncoder(), batch_size=2).toPandas()
    got = {r.item_id: list(r.embedding) for r in out.itertuples()}
    assert got == {1: [1, 1], 2: [6, 3], 3: [0, 0], 4: [4, 0], 5: [2, 2]}


@pytest.mark.spark
def test_synthetic_interactions_shape_and_determinism(spark):
    a = rs.synthetic_interactions(spark, 5000, n_users=100, n_items=50, seed=3, partitions=2)
    b = rs.synthetic_interactions(spark, 5000, n_users=100, n_items=50, seed=3, partitions=2)
    pa, pb = a.toPandas(), b.toPandas()
    assert len(pa) == 5000 and pa.equals(pb)
    assert pa["user_id"].between(0, 99).all() and pa["item_id"].between(0, 49).all()
    counts = pa["item_id"].value_counts()
    assert counts.loc[0] > 5 * counts.loc[49]  # long tail: low ids popular


@pytest.mark.spark
def test_score_job_end_to_end(spark, tmp_path):
    events = rs.synthetic_interactions(spark, 3000, n_users=60, n_items=40, seed=1, partitions=2)
    out = tmp_path / "top5"
    timings = rs.score_job(spark, events, str(out), k=5, factors=4, iterations=2, partitions=2)
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"  # the session's value is back
    recs = spark.read.parquet(str(out)).toPandas()
    pairs = events.toPandas().drop_duplicates(["user_id", "item_id"])
    assert timings["pairs"] == len(pairs)
    assert timings["rows_out"] == len(recs) == 60 * 5  # every user has 5 unseen items left
    assert all(list(r) == [1, 2, 3, 4, 5] for r in recs.groupby("user_id")["rank"].apply(sorted))
    clash = recs.merge(pairs, on=["user_id", "item_id"])
    assert clash.empty, "seen items were recommended"
    assert recs.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()


@pytest.mark.spark
def test_command_line_generate_and_score(spark, tmp_path, capsys):
    events, out = tmp_path / "events", tmp_path / "recs"
    rs.main(
        [
            "--master",
            "local[2]",
            "generate",
            "--rows",
            "2000",
            "--items",
            "30",
            "--output",
            str(events),
            "--partitions",
            "2",
        ]
    )
    rs.main(
        [
            "--master",
            "local[2]",
            "score",
            "--input",
            str(events),
            "--output",
            str(out),
            "--k",
            "3",
            "--factors",
            "4",
            "--iterations",
            "2",
            "--partitions",
            "2",
        ]
    )
    assert spark.read.parquet(str(events)).count() == 2000
    recs = spark.read.parquet(str(out))
    assert set(recs.columns) == {"user_id", "rank", "item_id", "score"}
    assert recs.count() == 3 * recs.select("user_id").distinct().count()
    assert '"total_s"' in capsys.readouterr().out
    assert spark.sparkContext._jsc is not None  # main() did not stop the shared session
