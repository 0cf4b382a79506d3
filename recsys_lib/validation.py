"""One way to check what a caller passes in: declarative constraints, one message format.

    @validate_params({"factors": Interval(int, 1, None), "scaling": Options({"sqrt", "full"})})
    def __init__(self, factors=64, scaling="sqrt"): ...

    check_params("EASE", {"regularization": (Interval(float, 0, None), 250.0)})

Every failure raises :class:`InvalidParameterError` with the same sentence shape::

    ALS: factors must be an integer >= 1, got 0; pass e.g. factors=64.

It names where (the class or function), the parameter, what it must be, the value it got
(shortened when long) and, when the declaration gives one, what to do. The error is both a
``ValueError`` and a ``TypeError`` (as in scikit-learn), so either ``except`` catches it.

Array inputs go through :func:`check_array` (finite numbers, dimension, bounds) and
:func:`check_same_shape` (no broadcasting between arrays that must pair element by element).
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

import numpy as np

__all__ = [
    "ArrayOf",
    "Constraint",
    "InstanceOf",
    "Interval",
    "InvalidParameterError",
    "Options",
    "Satisfies",
    "check_array",
    "check_param",
    "check_params",
    "check_same_shape",
    "short_repr",
    "validate_params",
]

MAX_REPR = 80


class InvalidParameterError(ValueError, TypeError):
    """A parameter value outside its declared constraints."""


def short_repr(value: Any, limit: int = MAX_REPR) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how long it was (no huge echoes)."""
    if isinstance(value, np.ndarray):
        text = f"array of shape {value.shape} and dtype {value.dtype}"
    else:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
            text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text)} characters)"


class Constraint:
    """What a value must be: ``is_satisfied_by(value)`` and a ``description`` for messages.

    ``invalid_example()`` returns one value that breaks the constraint (tests use it to feed
    every declared parameter a bad value).
    """

    description = "valid"

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def invalid_example(self) -> Any:
        return object()

    def __str__(self) -> str:
        return self.description


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


class Interval(Constraint):
    """A number in an interval. ``kind`` is ``int`` (integers only, never bools) or ``float``
    (any finite real); ``left``/``right`` None mean unbounded; ``closed`` is "both", "left",
    "right" or "neither" (which bounds belong to the interval)."""

    def __init__(
        self,
        kind: type,
        left: float | None,
        right: float | None,
        *,
        closed: str = "both",
    ) -> None:
        if kind not in (int, float):
            raise ValueError(f"Interval kind must be int or float, got {kind!r}.")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(
                f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}."
            )
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def _left_closed(self) -> bool:
        return self.closed in ("both", "left")

    def _right_closed(self) -> bool:
        return self.closed in ("both", "right")

    def is_satisfied_by(self, value: Any) -> bool:
        if not (_is_int(value) if self.kind is int else _is_real(value)):
            return False
        if not math.isfinite(float(value)):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and not self._left_closed()):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and not self._right_closed()):
                return False
        return True

    @property
    def description(self) -> str:  # type: ignore[override]
        what = "an integer" if self.kind is int else "a finite number"
        lo, hi = self.left, self.right
        if lo is None and hi is None:
            return what
        if hi is None:
            return f"{what} {'>=' if self._left_closed() else '>'} {lo:g}"
        if lo is None:
            return f"{what} {'<=' if self._right_closed() else '<'} {hi:g}"
        if self.closed == "both":
            return f"{what} between {lo:g} and {hi:g}"
        return (
            f"{what} in {'[' if self._left_closed() else '('}{lo:g}, {hi:g}"
            f"{']' if self._right_closed() else ')'}"
        )

    def invalid_example(self) -> Any:
        if self.left is not None:
            return self.left - 1 if self._left_closed() else self.left
        if self.right is not None:
            return self.right + 1 if self._right_closed() else self.right
        return float("nan") if self.kind is float else 1.5


class Options(Constraint):
    """One of a fixed set of values (compared with ``==``, bools never stand for 0/1)."""

    def __init__(self, options: Iterable[Any]) -> None:
        self.options = list(options)

    def is_satisfied_by(self, value: Any) -> bool:
        for option in self.options:
            if isinstance(value, bool) != isinstance(option, bool):
                continue
            try:
                if value == option and type(value) is not np.ndarray:
                    return True
            except Exception:  # noqa: BLE001 - an odd __eq__ is simply not a match
                continue
        return False

    @property
    def description(self) -> str:  # type: ignore[override]
        shown = sorted(self.options, key=repr)
        if len(shown) == 1:
            return repr(shown[0])
        return "one of " + ", ".join(repr(o) for o in shown)

    def invalid_example(self) -> Any:
        return "not-an-option"


class InstanceOf(Constraint):
    """An instance of one of the given types (bools are not ints here)."""

    def __init__(self, *types: type, description: str | None = None) -> None:
        self.types = types
        self._description = description

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types and int in self.types:
            return False
        return isinstance(value, self.types)

    @property
    def description(self) -> str:  # type: ignore[override]
        if self._description:
            return self._description
        names = [t.__name__ for t in self.types]
        return "a " + " or a ".join(names)

    def invalid_example(self) -> Any:
        return object()


class Satisfies(Constraint):
    """Any rule as a predicate with its description (e.g. a non-empty mapping)."""

    def __init__(
        self, predicate: Callable[[Any], bool], description: str, example: Any = None
    ) -> None:
        self.predicate, self._description, self._example = predicate, description, example

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.predicate(value))
        except Exception:  # noqa: BLE001 - a predicate that cannot evaluate means "no"
            return False

    @property
    def description(self) -> str:  # type: ignore[override]
        return self._description

    def invalid_example(self) -> Any:
        return self._example if self._example is not None else object()


class ArrayOf(Constraint):
    """An array of finite numbers (of ``ndim`` dimensions when given; at least one row)."""

    def __init__(self, ndim: int | None = None, *, finite: bool = True) -> None:
        self.ndim, self.finite = ndim, finite

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        if self.ndim is not None and array.ndim != self.ndim:
            return False
        if array.ndim and len(array) == 0:
            return False
        return not self.finite or bool(np.isfinite(array).all())

    @property
    def description(self) -> str:  # type: ignore[override]
        dims = f"{self.ndim}-D " if self.ndim is not None else ""
        what = "finite numbers" if self.finite else "numbers"
        return f"a non-empty {dims}array of {what}"

    def invalid_example(self) -> Any:
        shape = (1,) * (self.ndim or 1)
        return np.full(shape, np.nan)


Spec = Constraint | None | list[Any]


def _as_list(constraints: Spec) -> list[Any]:
    return list(constraints) if isinstance(constraints, (list, tuple)) else [constraints]


def describe(constraints: Spec) -> str:
    """The words for a list of alternatives: "an integer >= 1 or None"."""
    parts = ["None" if c is None else str(c) for c in _as_list(constraints)]
    return " or ".join(parts)


def invalid_example(constraints: Spec) -> Any:
    """A value that no alternative in ``constraints`` accepts."""
    items = _as_list(constraints)
    candidates = [c.invalid_example() for c in items if c is not None]
    candidates += ["not-valid", -1, 0, float("nan"), object()]
    for value in candidates:
        if not any(_accepts(c, value) for c in items):
            return value
    raise ValueError(f"no invalid example found for {describe(constraints)}")


def _accepts(constraint: Constraint | None, value: Any) -> bool:
    return value is None if constraint is None else constraint.is_satisfied_by(value)


def check_param(
    name: str, value: Any, constraints: Spec, *, where: str = "", hint: str = ""
) -> Any:
    """Return ``value`` when one of ``constraints`` accepts it, else raise
    :class:`InvalidParameterError` in the library's one format. ``None`` in the list accepts
    None; ``where`` names the owner (class or function), ``hint`` says what to do."""
    if any(_accepts(c, value) for c in _as_list(constraints)):
        return value
    raise InvalidParameterError(message(name, value, describe(constraints), where=where, hint=hint))


def message(name: str, value: Any, must_be: str, *, where: str = "", hint: str = "") -> str:
    """The one message format: "<where>: <name> must be <what>, got <value>; <hint>."."""
    prefix = f"{where}: " if where else ""
    text = f"{prefix}{name} must be {must_be}, got {short_repr(value)}"
    return f"{text}; {hint.rstrip('.')}." if hint else f"{text}."


def check_params(
    where: str,
    spec: Mapping[str, tuple[Spec, Any]],
    hints: Mapping[str, str] | None = None,
) -> None:
    """Check several parameters at once: ``spec`` maps name -> (constraints, value)."""
    for name, (constraints, value) in spec.items():
        check_param(name, value, constraints, where=where, hint=(hints or {}).get(name, ""))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def validate_params(
    constraints: Mapping[str, Spec], *, hints: Mapping[str, str] | None = None
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: check the named arguments of every call (defaults included) against
    ``constraints`` before the function runs. The declarations stay readable on the function
    as ``parameter_constraints`` (tests feed each one a bad value)."""

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        signature = inspect.signature(func)
        unknown = set(constraints) - set(signature.parameters)
        if unknown:
            raise ValueError(f"{func.__qualname__} has no parameter(s) {sorted(unknown)}.")

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            owner = func.__qualname__
            if owner.endswith(".__init__"):
                owner = type(args[0]).__name__ if args else owner[: -len(".__init__")]
            for name, spec in constraints.items():
                check_param(
                    name,
                    bound.arguments[name],
                    spec,
                    where=owner,
                    hint=(hints or {}).get(name, ""),
                )
            return func(*args, **kwargs)

        wrapper.parameter_constraints = dict(constraints)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def check_array(
    name: str,
    value: Any,
    *,
    where: str = "",
    ndim: int | tuple[int, ...] | None = None,
    finite: bool = True,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_empty: bool = True,
    dtype: Any = np.float64,
    hint: str = "",
) -> np.ndarray:
    """``value`` as a numeric array after the checks, else InvalidParameterError naming the
    parameter, the number of bad entries and the first one (its index and value).

    ``finite``: refuse NaN and +-inf. ``low``/``high``: bounds (open with ``low_open`` /
    ``high_open``). ``ndim``: required dimension(s).
    """
    prefix = f"{where}: " if where else ""
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            message(name, value, "an array of numbers", where=where, hint=hint)
        ) from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            dims = " or ".join(f"{d}-D" for d in allowed)
            raise InvalidParameterError(
                f"{prefix}{name} must be {dims}, got shape {array.shape}"
                + (f"; {hint.rstrip('.')}." if hint else ".")
            )
    if not allow_empty and array.size == 0:
        raise InvalidParameterError(f"{prefix}{name} is empty; give at least one value.")
    if array.dtype.kind not in "fc" and not finite and low is None and high is None:
        return array
    bad = np.zeros(array.shape, dtype=bool)
    rules = []
    if finite and array.dtype.kind in "fc":
        bad |= ~np.isfinite(array)
        rules.append("finite")
    with np.errstate(invalid="ignore"):
        if low is not None:
            bad |= (array <= low) if low_open else (array < low)
            rules.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bad |= (array >= high) if high_open else (array > high)
            rules.append(f"{'<' if high_open else '<='} {high:g}")
        if (low is not None or high is not None) and array.dtype.kind in "fc":
            bad |= np.isnan(array)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), array.shape) if array.ndim else ()
        index = tuple(int(i) for i in first)
        where_at = f" at index {index[0] if len(index) == 1 else index}" if array.ndim else ""
        raise InvalidParameterError(
            f"{prefix}{name} must hold only values that are {' and '.join(rules)}; "
            f"{int(bad.sum())} of {array.size} are not, the first {array[first].item()!r}{where_at}"
            + (f"; {hint.rstrip('.')}." if hint else ".")
        )
    return array


def check_same_shape(where: str = "", **arrays: Any) -> tuple[int, ...]:
    """All arrays have one shape (no broadcasting); returns it. InvalidParameterError
    naming every parameter and its shape otherwise."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        prefix = f"{where}: " if where else ""
        raise InvalidParameterError(
            f"{prefix}{listed} must have one shape (no broadcasting): they pair element by "
            "element; pass arrays of equal length."
        )
    return next(iter(shapes.values())) if shapes else ()


# The constraints most declarations use.
POSITIVE_INT = Interval(int, 1, None)
NON_NEGATIVE_INT = Interval(int, 0, None)
NON_NEGATIVE = Interval(float, 0, None)
POSITIVE = Interval(float, 0, None, closed="neither")
SEED = Interval(int, 0, None)
BOOL = InstanceOf(bool, np.bool_, description="True or False")
PENALTY_HINT = "a negative penalty rewards large weights instead of shrinking them"
