"""The one parameter-validation mechanism: constraints, the message format, the decorator,
and its use by TrainConfig and the public functions that take user input."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recsys_lib.validation import (
    ArrayOf,
    InstanceOf,
    Interval,
    InvalidParameterError,
    Options,
    check_array,
    check_param,
    check_same_shape,
    invalid_example,
    short_repr,
    validate_params,
)


@pytest.mark.parametrize(
    ("constraint", "good", "bad", "words"),
    [
        (Interval(int, 1, None), [1, 7, np.int64(3)], [0, -1, 2.5, True, "3"], "an integer >= 1"),
        (Interval(int, 1, 10), [1, 10], [0, 11], "an integer between 1 and 10"),
        (Interval(float, 0, 1, closed="right"), [1.0, 0.5], [0.0, 1.5, np.nan], "in (0, 1]"),
        (Interval(float, 0, None), [0.0, 3], [-1e-9, np.inf, np.nan, False], "a finite number >= 0"),
        (Options({"a", "b"}), ["a", "b"], ["c", None, 1], "one of 'a', 'b'"),
        (InstanceOf(str), ["x"], [1, None], "a str"),
        (ArrayOf(2), [np.zeros((2, 2))], [np.zeros(2), np.full((1, 1), np.nan), np.zeros((0, 2))],
         "a non-empty 2-D array of finite numbers"),
    ],
)  # fmt: skip
def test_constraints_accept_refuse_and_describe(constraint, good, bad, words):
    assert all(constraint.is_satisfied_by(v) for v in good)
    assert not any(constraint.is_satisfied_by(v) for v in bad)
    assert words in constraint.description
    assert not constraint.is_satisfied_by(invalid_example(constraint))


def test_one_message_format_names_where_parameter_value_and_fix():
    with pytest.raises(InvalidParameterError) as info:
        check_param("factors", 0, Interval(int, 1, None), where="ALS", hint="e.g. factors=64")
    assert str(info.value) == "ALS: factors must be an integer >= 1, got 0; e.g. factors=64."
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert check_param("k", None, [None, Interval(int, 1, None)]) is None


def test_huge_values_are_not_echoed():
    text = short_repr("x" * 1_000_000)
    assert len(text) < 120 and "1000002 characters" in text
    with pytest.raises(InvalidParameterError) as info:
        check_param("user_id", "x" * 1_000_000, Interval(int, 1, None))
    assert len(str(info.value)) < 200


def test_decorator_checks_defaults_too_and_keeps_the_declarations():
    @validate_params({"n": Interval(int, 1, None), "how": Options({"x"})})
    def f(n, how="y"):
        return n

    with pytest.raises(InvalidParameterError, match=re.escape("f: how must be 'x', got 'y'")):
        f(1)
    assert f(2, how="x") == 2
    assert set(f.parameter_constraints) == {"n", "how"}
    with pytest.raises(ValueError, match="no parameter"):
        validate_params({"nope": Interval(int, 1, None)})(lambda n: n)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"low": 0, "low_open": True}, r"p must hold only values that are finite and > 0; 2 of 4"),
        ({"high": 1}, r"p must hold only values that are finite and <= 1; 2 of 4"),
    ],
)
def test_check_array_counts_and_locates_the_bad_entries(kwargs, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):
        check_array("p", [0.5, 0.0, np.nan, 2.0] if "low" in kwargs else [0.5, 2, np.inf, 1],
                    **kwargs)  # fmt: skip
    with pytest.raises(InvalidParameterError, match="must be 1-D"):
        check_array("p", [[1.0]], ndim=1)
    with pytest.raises(InvalidParameterError, match="array of numbers"):
        check_array("p", ["a", "b"])


def test_check_same_shape_refuses_broadcasting():
    assert check_same_shape(a=np.zeros(3), b=[1, 2, 3]) == (3,)
    with pytest.raises(InvalidParameterError, match=r"labels \(4,\), probs \(1,\)"):
        check_same_shape(labels=np.zeros(4), probs=np.zeros(1))


# ------------------------------------------------------------------ TrainConfig
@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("grad_accum", 0), ("epochs", 0), ("epochs", -1), ("lr", -1e-3),
     ("warmup_ratio", 1.0), ("max_length", 0), ("eval_every", 0), ("patience", 0),
     ("max_steps", 0), ("seed", -1), ("max_grad_norm", float("nan")), ("amp", "yes")],
)  # fmt: skip
def test_train_config_refuses_settings_that_cannot_train(field, value):
    from recsys_lib.text.finetune import TrainConfig

    with pytest.raises(InvalidParameterError, match=rf"TrainConfig: {field} must be"):
        TrainConfig(**{field: value})


def test_train_config_epochs_zero_needs_max_steps():
    from recsys_lib.text.finetune import TrainConfig

    with pytest.raises(InvalidParameterError, match="epochs=0 trains nothing"):
        TrainConfig(epochs=0)
    assert TrainConfig(epochs=0, max_steps=5).max_steps == 5


# ------------------------------------------------------------------ the public API, swept
def _tiny():
    import pandas as pd

    from recsys_lib.data.interactions import Catalogue, Interactions
    from recsys_lib.models.base import Popularity
    from recsys_lib.production.serving import Recommender

    frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 3], "item_id": [10, 11, 10, 12, 11, 12, 13],
                          "timestamp": range(7)})  # fmt: skip
    catalogue = Catalogue(np.array([1, 2, 3]), np.array([10, 11, 12, 13]))
    train = Interactions.from_frame(frame, catalogue)
    vectors = np.random.default_rng(0).normal(size=(4, 3))
    served = Recommender([1, 2, 3], [10, 11, 12, 13], np.ones((3, 2)), vectors[:, :2],
                         train.matrix)  # fmt: skip
    return frame, catalogue, train, Popularity().fit(train), vectors, served


def _sweep_cases():
    from recsys_lib.business import kpis, reranking
    from recsys_lib.data import splits
    from recsys_lib.models import sequential as sq
    from recsys_lib.production import loadtest, monitoring, privacy, serving
    from recsys_lib.retrieval import similarity

    frame, catalogue, train, pop, vec, served = _tiny()
    nan_vec = vec.copy()
    nan_vec[0, 0] = np.nan
    return {
        "recommend block_size=0": (lambda: pop.recommend([0], 2, block_size=0), "block_size"),
        "candidates out of range": (lambda: pop.recommend([0], 2, candidates=[99]), "candidates"),
        "candidates -1 (was the last item)": (lambda: pop.recommend([0], 2, candidates=[-1]),
                                              "candidates"),
        "user row 0.7 (was truncated)": (lambda: pop.recommend([0.7], 2), "user_rows"),
        "user row True (was row 1)": (lambda: pop.score([True]), "user_rows"),
        "evaluate candidates -1": (lambda: __import__("recsys_lib.evaluation.protocol", fromlist=["x"])
                                   .evaluate(pop, train, 2, candidates=[-1]), "candidates"),
        "recommend_many block_size=0": (lambda: served.recommend_many([1], 2, block_size=0),
                                        "block_size"),
        "latency percentile 150": (lambda: serving.latency_percentiles([0.1], (150,)),
                                   "percentiles"),
        "latency NaN": (lambda: serving.latency_percentiles([np.nan, 0.1]), "seconds"),
        "time_requests warmup -1": (lambda: serving.time_requests(abs, [1, 2], warmup=-1),
                                    "warmup"),
        "similar_items row 99": (lambda: similarity.similar_items(vec, [99], k=2), "item_rows"),
        "similar_items NaN vectors": (lambda: similarity.similar_items(nan_vec, [1], k=2),
                                      "item_vectors"),
        "blocked_top_k block_size=0": (lambda: similarity.blocked_top_k(vec, vec, 2,
                                                                        block_size=0),
                                       "block_size"),
        "assign_windows NaN days": (lambda: monitoring.assign_windows([1, 2], np.nan),
                                    "window_days"),
        "assign_windows inf days": (lambda: monitoring.assign_windows([1, 2], np.inf),
                                    "window_days"),
        "assign_windows NaN timestamp": (lambda: monitoring.assign_windows([1, np.nan], 1.0),
                                         "timestamps"),
        "psi floor 0 (was inf)": (lambda: monitoring.psi([0.5, 0.5], [1, 0], floor=0.0), "floor"),
        "distribution NaN": (lambda: monitoring.total_variation([np.nan, 1], [1, 0]), "finite"),
        "laplace sensitivity NaN": (lambda: privacy.laplace_scale(np.nan, 1.0), "sensitivity"),
        "min_count NaN (was empty)": (lambda: splits.min_count_filter(frame, np.nan),
                                      "min_count"),
        "min_count 1.5": (lambda: splits.min_count_filter(frame, 1.5), "min_count"),
        "leave_k_out k=1.5": (lambda: splits.leave_k_out(frame, 1.5), "k must be"),
        "scalarise NaN weight": (lambda: reranking.scalarise({"a": np.ones(3)}, {"a": np.nan}),
                                 "weights must be finite"),
        "scalarise NaN objective": (lambda: reranking.scalarise({"a": np.array([np.nan, 1])}, {"a": 1.0}),
                             "objectives['a']"),
        "one_hot -1 (was the last class)": (lambda: kpis.one_hot(np.array([-1, 0])), "labels"),
        "one_hot too few classes": (lambda: kpis.one_hot(np.array([0, 5]), 2), "n_classes"),
        "ctr NaN": (lambda: kpis.ctr(np.array([1, np.nan])), "clicks"),
        "revenue slate -1 (was last price)": (lambda: kpis.revenue_per_impression(
            np.ones((1, 2)), np.array([[0, -1]]), np.ones(3)), "slates"),
        "pad_sequences 1.5": (lambda: sq.pad_sequences([[1, 2]], 1.5), "max_length"),
        "project std -1": (lambda: sq.project_item_vectors(vec, 2, std=-1.0), "std"),
        "popularity edges descending": (lambda: sq.popularity_buckets(train, train, (100, 20)),
                                        "edges"),
        "sampled_evaluate n_negatives -1": (lambda: sq.sampled_evaluate(pop, train, -1, k=2),
                                            "n_negatives"),
        "request_paths k=0": (lambda: loadtest.request_paths([1], k=0), "k must be"),
    }  # fmt: skip


SWEEP = list(_sweep_cases())


@pytest.mark.parametrize("case", SWEEP)
def test_public_functions_refuse_bad_input_by_name(case):
    call, words = _sweep_cases()[case]
    with pytest.raises(ValueError, match=re.escape(words)):
        call()


def test_unknown_ids_are_not_echoed_at_length():
    _, catalogue, *_ = _tiny()
    with pytest.raises(KeyError) as info:
        catalogue.user_index(["x" * 1_000_000])
    assert len(str(info.value)) < 400


def _more_cases():
    import pandas as pd

    from recsys_lib.business import kpis, shop
    from recsys_lib.data import splits
    from recsys_lib.models import hybrid
    from recsys_lib.text import pairs

    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11], "rating": [5, 4]})
    return {
        "positives min_rating NaN (was empty)": (lambda: pairs.positives(frame, np.nan),
                                                 "min_rating"),
        "shuffle_pairs seed -1": (lambda: pairs.shuffle_pairs(frame, -1), "seed"),
        "subsample_ratings n_users 0": (lambda: splits.subsample_ratings(frame, 0, 5), "n_users"),
        "position_bias 0 (was empty)": (lambda: shop.position_bias(0), "n_positions"),
        "exposure_share NaN weight": (lambda: kpis.exposure_share(
            np.array([[0, 1]]), np.array([True, False]), np.array([1, np.nan])),
            "position_weights"),
        "exposure_share item outside mask": (lambda: kpis.exposure_share(
            np.array([[0, 5]]), np.array([True, False])), "slates"),
        "normalize_scores NaN": (lambda: hybrid.normalize_scores(np.array([[np.nan, 1.0]])),
                                 "NaN"),
        "blend weight 1.5": (lambda: hybrid.blend(None, None, 1.5), "weight must be"),
    }  # fmt: skip


MORE = list(_more_cases())


@pytest.mark.parametrize("case", MORE)
def test_more_public_functions_refuse_bad_input_by_name(case):
    call, words = _more_cases()[case]
    with pytest.raises(ValueError, match=re.escape(words)):
        call()
