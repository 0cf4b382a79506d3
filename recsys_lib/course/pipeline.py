"""The whole course in one call, for day one: data -> text -> embeddings -> ALS -> hybrid.

    qs = build_quickstart(load_movielens_100k())
    qs.metrics()                          # popularity, text, ALS, hybrid on the test split
    qs.recommend_with_reasons(196, k=10)  # titles with "because you liked ..."
    qs.lift("hybrid", "ALS")              # paired bootstrap interval over test users
    qs.explanations(196, k=10)            # text-nearest reason vs ALS's exact decomposition

Every step is a library call a later chapter explains; ALS's settings are chapter 3's
validated choice (``recsys_lib.course.choices``) and the blend weight is chosen on a validation split
carved from train, so the test figures are honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from recsys_lib.course import choices
from recsys_lib.data.interactions import Interactions
from recsys_lib.data.movielens import MovieLens
from recsys_lib.data.splits import BenchmarkData, benchmark_data
from recsys_lib.evaluation.metrics import paired_bootstrap
from recsys_lib.evaluation.protocol import evaluate, evaluate_per_user
from recsys_lib.linalg import normalize_rows
from recsys_lib.models.base import FactorModel, Model, Popularity
from recsys_lib.models.hybrid import blend, blend_weight_curve
from recsys_lib.models.mf import ALS, explain_als
from recsys_lib.production.serving import Recommender
from recsys_lib.retrieval.similarity import user_profiles

if TYPE_CHECKING:
    from recsys_lib.text.embeddings import TextEncoder

# A copy of chapter 3's full-run ALS choice (seed 42) for callers that do not read
# build/choices.json yet (chapter 5); build_quickstart reads recsys_lib.course.choices instead, and
# tests/test_choices.py fails when a full run of chapter 3 has chosen something else.
DEFAULT_ALS_PARAMS: dict[str, Any] = {"factors": 32, "regularization": 20.0, "alpha": 1.0}


@dataclass
class QuickStart:
    """What :func:`build_quickstart` fitted, ready to query."""

    movielens: MovieLens
    data: BenchmarkData
    item_text: np.ndarray  # (n_items, d) unit text embeddings, catalogue column order
    item_descriptions: pd.Series  # by item_id
    user_descriptions: pd.Series  # by user_id, from train only
    models: dict[str, Model]  # fitted on the full train part
    text_weight: float
    weight_curve: pd.DataFrame
    explainer: Recommender  # ALS factors + text embeddings, for "because you liked ..."

    @property
    def als(self) -> ALS:
        """The fitted ALS model, ``models["ALS"]``, typed as one (its settings are readable)."""
        model = self.models["ALS"]
        if not isinstance(model, ALS):
            raise TypeError(f"models['ALS'] is a {type(model).__name__}, not an ALS model.")
        return model

    def metrics(self, k: int = 10) -> pd.DataFrame:
        """Test metrics of every model, one row each."""
        rows = {name: evaluate(model, self.data.test, k) for name, model in self.models.items()}
        return pd.DataFrame(rows).T[["map", f"ndcg@{k}", f"precision@{k}", f"recall@{k}"]]

    def recommend_with_reasons(self, user_id: int, k: int = 10) -> pd.DataFrame:
        """The hybrid's top-k for one raw user id, with a one-line reason per film."""
        hybrid = self.models["hybrid"]
        items = hybrid.recommend_frame([user_id], k)["item_id"].to_numpy()
        titles = self.movielens.items.set_index("item_id")["title"]
        reasons = self.explainer.explain(user_id, items, space="text")
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(items) + 1),
                "title": titles.loc[items].to_numpy(),
                "reason": reasons["reason"].to_numpy(),
            }
        ).set_index("rank")

    def lift(self, a: str = "hybrid", b: str = "ALS", k: int = 10, seed: int = 0) -> dict[str, Any]:
        """Test nDCG@k of model ``a`` minus model ``b``, with a paired bootstrap interval over
        the test users (:func:`recsys_lib.evaluation.metrics.paired_bootstrap`)."""
        per_user = {
            name: evaluate_per_user(self.models[name], self.data.test, k)[f"ndcg@{k}"]
            for name in (a, b)
        }
        return paired_bootstrap(per_user[a], per_user[b], seed=seed)

    def explanations(self, user_id: int, k: int = 10) -> pd.DataFrame:
        """For the hybrid's top-k of one user: the text-nearest history film (the reason shown
        to users) beside the history film that contributes most to the ALS part of the score
        in ALS's exact decomposition (:func:`recsys_lib.models.mf.explain_als`), and its share."""
        items = self.models["hybrid"].recommend_frame([user_id], k)["item_id"].to_numpy()
        catalogue = self.data.train.catalogue
        als = cast(ALS, self.models["ALS"])
        history, contributions, scores = explain_als(
            als, int(catalogue.user_index([user_id])[0]), catalogue.item_index(items)
        )
        top = contributions.argmax(1)
        titles = self.movielens.items.set_index("item_id")["title"]
        text = self.explainer.explain(user_id, items, space="text")
        als_because = catalogue.item_ids[history[top]]
        return pd.DataFrame(
            {
                "title": titles.loc[items].to_numpy(),
                "nearest in text": titles.loc[text["because_item_id"]].to_numpy(),
                "top ALS contributor": titles.loc[als_because].to_numpy(),
                "its share of the ALS score": contributions[np.arange(len(items)), top] / scores,
                "agree": text["because_item_id"].to_numpy() == als_because,
            },
            index=pd.RangeIndex(1, len(items) + 1, name="rank"),
        )


def build_quickstart(
    movielens: MovieLens,
    *,
    seed: int = 42,
    als_params: dict[str, Any] | None = None,
    weights: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0),
    device: str = "auto",
    encoder: TextEncoder | None = None,
    smoke: bool = False,
) -> QuickStart:
    """Fit the day-one pipeline on the recommenders benchmark split.

    Text side: each film's description is embedded (cached on disk) and each user is the mean
    of the embeddings of the films they watched in train. Collaborative side: ALS, with
    chapter 3's validated settings (``choices.validated("als", ...)``, for the smoke or the full
    run) unless ``als_params`` overrides them. The hybrid weight is the best of ``weights`` on
    validation (fit/valid inside train).
    """
    from recsys_lib.data.owndata import dataset_key, item_template
    from recsys_lib.text.descriptions import item_descriptions, user_descriptions
    from recsys_lib.text.embeddings import TextEncoder

    data = benchmark_data(movielens.ratings, seed=seed)
    params = als_params or choices.validated("als", data, smoke=smoke, seed=seed,
                                             dataset=dataset_key(movielens))  # fmt: skip
    catalogue = data.train.catalogue
    items = movielens.items.set_index("item_id").loc[catalogue.item_ids].reset_index()
    descriptions = item_descriptions(items, item_template(movielens))  # own data: its own
    encoder = encoder or TextEncoder("default", device=device)
    item_text = normalize_rows(encoder.encode(descriptions.tolist()))

    def fitted(train: Interactions) -> tuple[FactorModel, ALS]:
        text = FactorModel(user_profiles(train, item_text), item_text).fit(train)
        return text, ALS(seed=seed, **params).fit(train)

    text_fit, als_fit = fitted(data.fit)
    curve = blend_weight_curve(als_fit, text_fit, data.valid, weights)
    weight = float(curve.loc[curve["ndcg@10"].idxmax(), "weight"])
    text, als = fitted(data.train)
    models = {
        "popularity": Popularity().fit(data.train),
        "text": text,
        "ALS": als,
        "hybrid": blend(als, text, weight),
    }
    return QuickStart(
        movielens=movielens,
        data=data,
        item_text=item_text,
        item_descriptions=descriptions,
        user_descriptions=user_descriptions(data.train_df, movielens.items),
        models=models,
        text_weight=weight,
        weight_curve=curve,
        explainer=Recommender.from_model(
            als,
            data.train,
            item_embeddings=item_text,
            item_names=movielens.items.set_index("item_id")["title"],
        ),
    )
