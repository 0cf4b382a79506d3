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
