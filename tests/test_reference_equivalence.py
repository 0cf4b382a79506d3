"""Chapter 0's numbers, recomputed independently.

A second implementation of the split (pandas sort + groupby, as recommenders writes it) and of
the metrics (pandas merges over long frames, one row per recommendation, as recommenders'
python_evaluation computes them) must reproduce the library's popularity and random figures on
the benchmark split to 4 decimals.
"""

import numpy as np
import pandas as pd
import pytest

from recsys_lib.data.interactions import shared_interactions
from recsys_lib.data.splits import recommenders_stratified_split
from recsys_lib.evaluation.protocol import evaluate
from recsys_lib.models.base import Popularity, RandomModel


def pandas_split(ratings, ratio=0.75, seed=42):
    """Upstream's current rule (recommenders >= July 2022): rank <= round(ratio * count)."""
    df = ratings.copy()
    np.random.seed(seed)
    df["random"] = np.random.rand(len(df))
    df = df.sort_values(["item_id", "random"])
    groups = df.groupby("item_id")
    keep = groups.cumcount() + 1 <= round(ratio * groups["item_id"].transform("count"))
    return df[keep].drop(columns=["random"]), df[~keep].drop(columns=["random"])


def pandas_metrics(recs: pd.DataFrame, truth: pd.DataFrame, k: int) -> dict[str, float]:
    """recs: user_id, item_id, rank (1-based). truth: user_id, item_id."""
    users = np.intersect1d(recs["user_id"].unique(), truth["user_id"].unique())
    n_rel = truth.groupby("user_id").size().rename("n_rel")
    hits = recs.merge(truth[["user_id", "item_id"]], on=["user_id", "item_id"])
    hits = hits.sort_values(["user_id", "rank"])
    hits["hit_order"] = hits.groupby("user_id").cumcount() + 1
    hits["precision_at_hit"] = hits["hit_order"] / hits["rank"]
    hits["dcg"] = 1 / np.log2(hits["rank"] + 1)
    per_user = pd.DataFrame(index=pd.Index(users, name="user_id")).join(n_rel)
    per_user = per_user.join(
        hits.groupby("user_id").agg(
            n_hits=("item_id", "size"), ap_sum=("precision_at_hit", "sum"), dcg=("dcg", "sum")
        )
    ).fillna(0)
    idcg = (
        per_user["n_rel"]
        .clip(upper=k)
        .map(lambda m: sum(1 / np.log2(r + 1) for r in range(1, int(m) + 1)))
    )
    return {
        "map": float((per_user["ap_sum"] / per_user["n_rel"]).mean()),
        f"ndcg@{k}": float((per_user["dcg"] / idcg).mean()),
        f"precision@{k}": float((per_user["n_hits"] / k).mean()),
        f"recall@{k}": float((per_user["n_hits"] / per_user["n_rel"]).mean()),
    }


@pytest.mark.parametrize(
    "model", [Popularity(), RandomModel(seed=42)], ids=["popularity", "random"]
)
def test_library_matches_independent_reimplementation(movielens, model):
    train_df, test_df = recommenders_stratified_split(movielens.ratings)
    ref_train, ref_test = pandas_split(movielens.ratings)
    assert set(train_df.index) == set(ref_train.index)
    train, test = shared_interactions(train_df, test_df)
    ours = evaluate(model.fit(train), test, k=10)
    recs = model.recommend_frame(train.catalogue.user_ids, k=10)
    theirs = pandas_metrics(recs, ref_test, k=10)
    for name, value in theirs.items():
        assert round(ours[name], 4) == round(value, 4), name
        assert ours[name] == pytest.approx(value, abs=1e-9), name
