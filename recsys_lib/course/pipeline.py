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

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from recsys_lib.course import choices
from recsys_lib.data.interactions import Interactions
from recsys_lib.data.movielens import MovieLens
from recsys_lib.data.owndata import MOVIELENS
from recsys_lib.data.splits import BenchmarkData, benchmark_data
from recsys_lib.evaluation.metrics import paired_bootstrap
from recsys_lib.evaluation.protocol import evaluate, evaluate_per_user
from recsys_lib.evaluation.tuning import check_interior
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


def content_profile_model(train: Interactions, item_text: np.ndarray) -> FactorModel:
    """The hybrid's text side: each user is the mean of the unit text vectors of the films
    they interacted with in ``train`` (:func:`~recsys_lib.retrieval.similarity.user_profiles`),
    scored against every film's unit text vector by dot product."""
    unit = normalize_rows(item_text)
    return FactorModel(user_profiles(train, unit), unit).fit(train)


def choose_text_weight(
    data: BenchmarkData,
    item_text: np.ndarray,
    als_params: dict[str, Any],
    *,
    seed: int,
    smoke: bool,
    weights: Sequence[float] | None = None,
    normalization: str = "zscore",
    chapter: str = "04_similarity_and_hybrid",
    path: str | os.PathLike[str] | None = None,
    dataset: str = MOVIELENS,
) -> tuple[float, pd.DataFrame]:
    """Choose the hybrid's text weight w in (1 - w) z(ALS) + w z(content profile) on
    validation (ALS and profiles fitted on ``data.fit``, scored on ``data.valid``), over
    ``weights`` (default :data:`~recsys_lib.course.choices.HYBRID_WEIGHTS` for the mode), and
    store it as choice :data:`~recsys_lib.course.choices.HYBRID_CHOICE` with its curve.
    ``normalization``: per-user score normalisation of the blend (stored with the choice; the
    quick start reads only a "zscore" choice, its own).

    Returns (weight, curve: one row per weight with its validation metrics).
    """
    grid = [float(w) for w in (weights or choices.HYBRID_WEIGHTS["smoke" if smoke else "full"])]
    als_fit = ALS(seed=seed, **als_params).fit(data.fit)
    curve = blend_weight_curve(
        als_fit, content_profile_model(data.fit, item_text), data.valid, grid
    )
    weight = float(curve.loc[curve["ndcg@10"].idxmax(), "weight"])
    reasons = choices.EDGE_REASONS[choices.HYBRID_CHOICE] | (
        {"weight": choices.SMOKE_EDGE_REASON} if smoke else {}
    )
    edges = check_interior({"weight": weight}, {"weight": grid}, reasons)
    evidence = {
        "metric": "ndcg@10",
        "validation": float(curve["ndcg@10"].max()),
        "grid": {"weight": grid},
        "als": dict(als_params),
        "normalization": normalization,
        "edges": edges,
        "curve": curve[["weight", "ndcg@10"]].to_dict("list"),
        "protocol": "text weight of (1 - w) z(ALS) + w z(content profile) on (fit, valid)",
    }
    choices.write_choice(choices.HYBRID_CHOICE, weight, chapter=chapter, smoke=smoke, seed=seed,
                         evidence=evidence, path=path, dataset=dataset)  # fmt: skip
    return weight, curve


def validated_text_weight(
    data: BenchmarkData,
    item_text: np.ndarray,
    als_params: dict[str, Any],
    *,
    seed: int,
    smoke: bool,
    path: str | os.PathLike[str] | None = None,
    dataset: str = MOVIELENS,
) -> tuple[float, pd.DataFrame]:
    """Chapter 4's hybrid text weight and its validation curve, read from the choices file
    when chapter 4 (or an earlier call) stored one for these ALS settings, else chosen now by
    :func:`choose_text_weight` with chapter 4's grid and stored, so that every reader of the
    hybrid (quick start, chapter 4, the explorer) blends with one weight."""
    stored = choices.read_choice(choices.HYBRID_CHOICE, smoke=smoke, seed=seed, path=path,
                                 dataset=dataset)  # fmt: skip
    usable = (
        stored is not None
        and stored.get("als") == dict(als_params)
        and stored.get("normalization", "zscore") == "zscore"
        and "curve" in stored
    )
    if stored is not None and usable:
        return float(stored["value"]), pd.DataFrame(stored["curve"])
    return choose_text_weight(data, item_text, als_params, seed=seed, smoke=smoke, path=path,
                              dataset=dataset)  # fmt: skip


@dataclass
class QuickStart:
    """What :func:`build_quickstart` fitted, ready to query."""

    movielens: MovieLens
    data: BenchmarkData
    item_text: np.ndarray  # (n_items, d) unit text embeddings, catalogue column order
    item_descriptions: pd.Series  # by item_id
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

    def text_profile(self, user_id: int) -> pd.DataFrame:
        """What the hybrid's text side uses for one raw user id: the films of their train
        history whose unit text vectors are averaged into the user's vector, one row each, with
        each film's description (the text the encoder read) and its cosine to that mean vector."""
        catalogue = self.data.train.catalogue
        row = int(catalogue.user_index([user_id])[0])
        columns = self.data.train.matrix[row].indices
        factors = cast(FactorModel, self.models["text"]).user_factors
        if factors is None:
            raise ValueError("the text model is not fitted; build it with build_quickstart.")
        profile = factors[row]
        unit = normalize_rows(self.item_text[columns])
        titles = self.movielens.items.set_index("item_id")["title"]
        ids = catalogue.item_ids[columns]
        return pd.DataFrame(
            {
                "title": titles.loc[ids].to_numpy(),
                "description (what the encoder read)": self.item_descriptions.to_numpy()[columns],
                "cosine to the user's vector": unit @ profile / max(np.linalg.norm(profile), 1e-12),
            },
            index=pd.Index(ids, name="item_id"),
        ).sort_values("cosine to the user's vector", ascending=False)

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
    weights: Sequence[float] | None = None,
    device: str = "auto",
    encoder: TextEncoder | None = None,
    smoke: bool = False,
) -> QuickStart:
    """Fit the day-one pipeline on the recommenders benchmark split.

    Text side: each film's description is embedded (cached on disk) and each user is the mean
    of the embeddings of the films they watched in train. Collaborative side: ALS, with
    chapter 3's validated settings (``choices.validated("als", ...)``, for the smoke or the full
    run) unless ``als_params`` overrides them. The hybrid's text weight is chapter 4's choice on
    validation (fit/valid inside train; :func:`validated_text_weight`), or, when ``weights`` is
    given, the best of those on validation (not stored).
    """
    from recsys_lib.data.owndata import dataset_key, item_template
    from recsys_lib.text.descriptions import item_descriptions
    from recsys_lib.text.embeddings import TextEncoder

    data = benchmark_data(movielens.ratings, seed=seed)
    params = als_params or choices.validated("als", data, smoke=smoke, seed=seed,
                                             dataset=dataset_key(movielens))  # fmt: skip
    catalogue = data.train.catalogue
    items = movielens.items.set_index("item_id").loc[catalogue.item_ids].reset_index()
    descriptions = item_descriptions(items, item_template(movielens))  # own data: its own
    encoder = encoder or TextEncoder("default", device=device)
    item_text = normalize_rows(encoder.encode(descriptions.tolist()))

    if weights is None:
        weight, curve = validated_text_weight(data, item_text, params, seed=seed, smoke=smoke,
                                              dataset=dataset_key(movielens))  # fmt: skip
    else:
        als_fit = ALS(seed=seed, **params).fit(data.fit)
        text_fit = content_profile_model(data.fit, item_text)
        curve = blend_weight_curve(als_fit, text_fit, data.valid, weights)
        weight = float(curve.loc[curve["ndcg@10"].idxmax(), "weight"])
    text, als = (
        content_profile_model(data.train, item_text),
        ALS(seed=seed, **params).fit(data.train),
    )
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
