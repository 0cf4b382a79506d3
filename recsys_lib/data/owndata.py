"""Your own interactions instead of MovieLens: load, validate, summarise.

    data = load_interactions("clicks.csv", user_col="customer", item_col="sku",
                             time_col="ts", items="products.parquet")
    summarize(data)                       # users, items, interactions, density, time span
    data = load_dataset("movielens-100k")  # or a folder / file: what every chapter's DATASET takes

The result has the same three frames as :class:`~recsys_lib.data.movielens.MovieLens` (``ratings``,
``items``, ``users``), so every chapter's pipeline runs on it unchanged:

- ratings: user_id, item_id, rating (float32; 1.0 for every row when there is no rating
  column: implicit feedback), timestamp (int64 unix seconds; the row number when there is no
  time column).
- items: item_id, title (the item id when no title is given), year (NaN), genres (the list of
  tags, empty without tags), description ("" without one). Items of the item table without
  interactions are kept: they are the cold-start items text can still rank.
- users: user_id plus whatever attribute columns the user table has.

The folder format :func:`load_dataset` reads (and :func:`write_example_dataset` writes):
``interactions.csv`` (or ``.parquet``) with user_id, item_id and optional rating and timestamp
columns; optional ``items.csv`` with item_id and any of title, description, tags (separated
by "|"); optional ``users.csv`` with user_id and attributes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.data.movielens import DataError, MovieLens, load_movielens_100k
from recsys_lib.data.splits import subsample_ratings
from recsys_lib.validation import Options, check_params

log = logging.getLogger(__name__)

MOVIELENS = "movielens-100k"
SUFFIXES = (".csv", ".parquet", ".pq")
TAG_SEPARATOR = "|"


@dataclass(frozen=True)
class OwnData(MovieLens):
    """A team's own data in MovieLens's shape; ``item_template`` describes its items as text.

    ``has_time``: the interactions had a time column (otherwise ``timestamp`` is the row
    number); ``has_text``: the items table had a title or a description column (otherwise each
    item's title is its id).
    """

    item_template: str = "Item: {title}."
    has_time: bool = False
    has_text: bool = False


def _read(
    source: str | os.PathLike[str] | pd.DataFrame, what: str, text_cols: Sequence[str] = ()
) -> pd.DataFrame:
    """A table from a frame, CSV or Parquet file; ``text_cols`` of a CSV are read as text,
    so ids such as '007' keep their leading zeros."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist; check the path.")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"{what} file {path} has suffix {path.suffix!r}; give a .csv or .parquet file."
        )
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype={c: str for c in text_cols if c is not None})
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as err:
        raise DataError(f"{what} file {path} could not be read ({err}).") from err


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} has no column(s) {missing}; it has {list(frame.columns)}. Pass the right "
            "names (user_col=, item_col=, rating_col=, time_col=)."
        )


def _no_nulls(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    for col in columns:
        empty = frame[col].isna().to_numpy()
        if empty.any():
            raise DataError(
                f"{what} column {col!r} is empty in {int(empty.sum())} row(s), the first at row "
                f"{int(np.argmax(empty))}; fill or drop those rows."
            )


_INTEGER_TEXT = r"-?(?:0|[1-9][0-9]{0,17})"


def _ids(values: pd.Series, what: str, kind: str | None = None) -> pd.Series:
    """Ids as given: integers stay integers, text stays text unless every value is written
    as a plain integer ('7', not '007' or '7.0'), so '007', '7' and '0007' stay three ids.

    ``kind`` ("i" or "U") forces the type chosen for the interactions on a side table.
    Raises DataError when two different values would become one id.
    """
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{what} holds True/False values; ids must be integers or text.")
    if pd.api.types.is_integer_dtype(values):
        out = values.astype(np.int64)
    elif pd.api.types.is_float_dtype(values):
        if not (np.isfinite(values) & (values == np.round(values))).all():
            bad = ~(np.isfinite(values) & (values == np.round(values))).to_numpy()
            _reject(bad, values, what, "non-integer numeric",
                    "ids must be whole numbers or text")  # fmt: skip
        out = values.astype(np.int64)
    else:
        texts = values.map(lambda v: v if isinstance(v, str) else str(v))
        if texts.nunique() != values.nunique():
            seen: dict[str, object] = {}
            for raw, text in zip(values.tolist(), texts.tolist(), strict=True):
                if text in seen and seen[text] != raw:
                    raise DataError(
                        f"{what} holds both {seen[text]!r} and {raw!r}, which are one id as "
                        "text; make the column one type (all text or all integers)."
                    )
                seen.setdefault(text, raw)
        plain = texts.str.fullmatch(_INTEGER_TEXT).all() and kind != "U"
        out = texts.astype(np.int64) if plain else texts.astype(str)
    if kind == "U" and out.dtype.kind != "U" and not pd.api.types.is_string_dtype(out):
        return out.astype(str)
    if kind == "i" and not pd.api.types.is_integer_dtype(out):
        bad = ~out.astype(str).str.fullmatch(_INTEGER_TEXT).to_numpy()
        _reject(bad, out, what, "non-integer",
                "the interactions use integer ids, so this table must too (write them the same "
                "way, e.g. 7 not '007')")  # fmt: skip
        return out.astype(np.int64)
    return out


def _reject(bad: np.ndarray, raw: pd.Series, what: str, problem: str, hint: str) -> None:
    """Raise DataError naming how many values of ``raw`` are bad and the first one."""
    if bad.any():
        row = int(np.argmax(bad))
        first = raw.iloc[row]
        first = first.item() if isinstance(first, np.generic) else first
        raise DataError(
            f"{what} has {int(bad.sum())} {problem} value(s), the first {first!r} at "
            f"row {row}; {hint}."
        )


def _ratings(frame: pd.DataFrame, col: str | None) -> np.ndarray:
    if col is None:
        return np.ones(len(frame), dtype=np.float32)
    values = pd.to_numeric(frame[col], errors="coerce")
    _reject(values.isna().to_numpy(), frame[col], f"rating column {col!r}", "non-numeric or empty",
            "ratings must be numbers (or pass rating_col=None for implicit feedback)")  # fmt: skip
    numbers = values.to_numpy(dtype=np.float64)
    _reject(~np.isfinite(numbers), frame[col], f"rating column {col!r}", "infinite",
            "ratings must be finite numbers; drop or fix those rows")  # fmt: skip
    return np.asarray(numbers.astype(np.float32))


TIME_UNITS = ("auto", "s", "ms", "us", "ns")
# Largest |value| of each unit for dates up to the year ~5000 (1e11 s); above, the next unit.
_UNIT_LIMITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", 9.2e18))


def detect_time_unit(values: np.ndarray, col: str = "timestamp") -> str:
    """The unit of numeric epoch timestamps from their size: "s", "ms", "us" or "ns".

    Today is about 1.7e9 seconds, 1.7e12 milliseconds, 1.7e15 microseconds and 1.7e18
    nanoseconds after 1970, so the largest value tells the unit. A column whose values span
    more than a factor 1000 above 1e11 (e.g. seconds and milliseconds mixed) is refused.
    """
    numbers = np.abs(np.asarray(values, dtype=np.float64))
    top = float(numbers.max()) if numbers.size else 0.0
    unit = next((name for name, limit in _UNIT_LIMITS if top < limit), None)
    if unit is None:
        raise DataError(
            f"time column {col!r} holds {top:.3g}, too large for epoch seconds, milliseconds, "
            "microseconds or nanoseconds; convert it to unix seconds or ISO 8601 text."
        )
    positive = numbers[numbers > 0]
    if unit != "s" and positive.size and positive.min() < top / 1e3:
        raise DataError(
            f"time column {col!r} mixes magnitudes ({positive.min():.3g} .. {top:.3g}), e.g. "
            "seconds and milliseconds; convert every row to one unit, or pass time_unit= "
            f"one of {TIME_UNITS[1:]} to say which it is."
        )
    return unit


def _timestamps(frame: pd.DataFrame, col: str | None, unit: str = "auto") -> np.ndarray:
    if col is None:
        return np.arange(len(frame), dtype=np.int64)
    raw = frame[col]
    numeric = raw if pd.api.types.is_numeric_dtype(raw) else None
    if numeric is None and raw.map(lambda v: isinstance(v, str)).all():
        as_numbers = pd.to_numeric(raw, errors="coerce")
        if as_numbers.notna().all():  # epoch numbers written as text
            numeric = as_numbers
    fix = (f"pass time_unit= one of {TIME_UNITS[1:]}, or write the column as unix seconds or "
           "ISO 8601 such as '2024-03-01T12:00:00'")  # fmt: skip
    try:
        if numeric is not None and not pd.api.types.is_bool_dtype(numeric):
            values = numeric.to_numpy(dtype=np.float64)
            _reject(~np.isfinite(values), raw, f"time column {col!r}", "empty or infinite", fix)
            used = detect_time_unit(values, col) if unit == "auto" else unit
            parsed = pd.to_datetime(numeric, unit=used, utc=True, errors="coerce")
        else:
            parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
        _reject(parsed.isna().to_numpy(), raw, f"time column {col!r}", "unparseable", fix)
        return np.asarray((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1))
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as err:
        raise DataError(
            f"time column {col!r} could not be read as dates ({type(err).__name__}: beyond "
            f"the dates pandas can hold); {fix}."
        ) from None


def _side_table(
    source: str | os.PathLike[str] | pd.DataFrame, id_col: str, kind: str, id_kind: str
) -> pd.DataFrame:
    """An items or users table: read, checked, its id column renamed to ``<kind>_id`` and
    typed like the interactions' ids (``id_kind`` "i" or "U")."""
    table = _read(source, f"{kind}s", [id_col])
    _require(table, [id_col], f"{kind}s")
    _no_nulls(table, [id_col], f"{kind}s")
    table = table.rename(columns={id_col: f"{kind}_id"})
    table[f"{kind}_id"] = _ids(table[f"{kind}_id"], f"{kind}s column {id_col!r}", id_kind)
    return table


def _kind(ids: np.ndarray) -> str:
    """ "i" for integer ids, "U" for text ids."""
    return "i" if np.asarray(ids).dtype.kind in "iu" else "U"


def _items_frame(
    items: str | os.PathLike[str] | pd.DataFrame | None, item_col: str, interacted: np.ndarray
) -> tuple[pd.DataFrame, str, bool]:
    """The items frame in MovieLens's columns, the description template that fits it, and
    whether the table had text (a title or a description column)."""
    if items is None:
        table = pd.DataFrame({"item_id": interacted})
    else:
        table = _side_table(items, item_col, "item", _kind(interacted))
        dup = table["item_id"].duplicated().to_numpy()
        if dup.any():
            raise DataError(
                f"items lists item id {table['item_id'].tolist()[int(np.argmax(dup))]!r} more than "
                "once; keep one row per item."
            )
        missing = np.setdiff1d(interacted, table["item_id"].to_numpy())
        if len(missing):
            log.warning("%d interacted item(s) have no row in items (e.g. %r); they get their id "
                        "as title", len(missing), missing[0])  # fmt: skip
            table = pd.concat([table, pd.DataFrame({"item_id": missing})], ignore_index=True)
    title = table["title"] if "title" in table else pd.Series(np.nan, index=table.index)
    out = pd.DataFrame({"item_id": table["item_id"].to_numpy()})
    out["title"] = title.where(title.notna(), table["item_id"].astype(str)).astype(str).to_numpy()
    out["year"] = np.nan
    tags = table["tags"] if "tags" in table else pd.Series("", index=table.index)
    out["genres"] = [
        [t.strip() for t in str(v).split(TAG_SEPARATOR) if t.strip()] if pd.notna(v) else []
        for v in tags.tolist()
    ]
    desc = table["description"] if "description" in table else pd.Series("", index=table.index)
    out["description"] = desc.fillna("").astype(str).to_numpy()
    template = "Item: {title}."
    if "description" in table:
        template += " {description}"
    if "tags" in table:
        template += " Tags: {genres}."
    has_text = bool({"title", "description"} & set(table.columns))
    return out.sort_values("item_id", kind="stable").reset_index(drop=True), template, has_text


def load_interactions(
    path_or_frame: str | os.PathLike[str] | pd.DataFrame,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    time_col: str | None = None,
    *,
    items: str | os.PathLike[str] | pd.DataFrame | None = None,
    users: str | os.PathLike[str] | pd.DataFrame | None = None,
    duplicates: str = "error",
    time_unit: str = "auto",
) -> OwnData:
    """Read and validate a team's interactions (CSV, Parquet or a frame) into MovieLens's shape.

    ``items``: optional table with ``item_col`` and any of title, description, tags ("a|b").
    ``users``: optional table with ``user_col`` and attribute columns.
    ``duplicates``: what a repeated (user, item) pair does: "error" (default), "first" or
    "last" (by time when there is a time column, else by row order).
    Ids stay as written: integers when every id is a plain integer, else text ('007', '7'
    and '0007' are three items). ``time_unit``: numeric times are epoch "s", "ms", "us" or
    "ns"; "auto" (default) tells them apart by size (:func:`detect_time_unit`); text times
    are ISO 8601.
    Raises :class:`~recsys_lib.data.movielens.DataError` naming the problem: a missing column, an empty
    table, empty ids, duplicates, a non-numeric rating or an unparseable time.
    """
    check_params("load_interactions", {
        "duplicates": (Options({"error", "first", "last"}), duplicates),
        "time_unit": (Options(TIME_UNITS), time_unit),
    })  # fmt: skip
    frame = _read(path_or_frame, "interactions", [user_col, item_col])
    if frame.empty:
        raise DataError("interactions has no rows; give at least one (user, item) interaction.")
    cols = [user_col, item_col, *(c for c in (rating_col, time_col) if c is not None)]
    _require(frame, cols, "interactions")
    _no_nulls(frame, [user_col, item_col], "interactions")
    ratings = pd.DataFrame({
        "user_id": _ids(frame[user_col], f"interactions column {user_col!r}").to_numpy(),
        "item_id": _ids(frame[item_col], f"interactions column {item_col!r}").to_numpy(),
        "rating": _ratings(frame, rating_col),
        "timestamp": np.asarray(_timestamps(frame, time_col, time_unit), dtype=np.int64),
    })  # fmt: skip
    dup = ratings.duplicated(["user_id", "item_id"], keep=False).to_numpy()
    if dup.any():
        if duplicates == "error":
            row = int(np.argmax(dup))
            raise DataError(
                f"{int(dup.sum())} rows repeat a (user, item) pair, the first (user "
                f"{ratings['user_id'].tolist()[row]!r}, item {ratings['item_id'].tolist()[row]!r}) at row "
                f"{row}; aggregate them first, or pass duplicates='first' or 'last'."
            )
        order = ratings.sort_values("timestamp", kind="stable")
        ratings = order.drop_duplicates(["user_id", "item_id"], keep=duplicates).sort_index()
        ratings = ratings.reset_index(drop=True)
    item_table, template, has_text = _items_frame(items, item_col, np.unique(ratings["item_id"]))
    if users is None:
        user_table = pd.DataFrame({"user_id": np.unique(ratings["user_id"])})
    else:
        user_table = _side_table(users, user_col, "user", _kind(ratings["user_id"].to_numpy()))
    source = Path(path_or_frame) if not isinstance(path_or_frame, pd.DataFrame) else Path(".")
    data = OwnData(ratings=ratings, items=item_table, users=user_table, source=source,
                   item_template=template, has_time=time_col is not None,
                   has_text=has_text)  # fmt: skip
    log.info("loaded %s", summarize(data).to_dict())
    return data


def summarize(data: MovieLens) -> pd.Series:
    """The report a team reads first: sizes, density, feedback type, time span, thin spots."""
    r = data.ratings
    n_users, n_items = r["user_id"].nunique(), data.items["item_id"].nunique()
    per_user = r.groupby("user_id").size()
    ts = pd.to_datetime(r["timestamp"], unit="s", utc=True)
    implicit = bool((r["rating"] == r["rating"].iloc[0]).all())
    return pd.Series({
        "interactions": len(r),
        "users": n_users,
        "items": n_items,
        "density": len(r) / float(n_users * n_items),
        "feedback": "implicit (one value)" if implicit else
                    f"ratings {r['rating'].min():g}..{r['rating'].max():g}",
        "first": ts.min().isoformat(),
        "last": ts.max().isoformat(),
        "span_days": float((ts.max() - ts.min()) / pd.Timedelta(days=1)),
        "items_without_interactions": int(n_items - r["item_id"].nunique()),
        "users_with_one_interaction": int((per_user == 1).sum()),
        "median_interactions_per_user": float(per_user.median()),
    }, name="summary")  # fmt: skip


def _in_folder(folder: Path, stem: str) -> Path | None:
    for suffix in SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def load_dataset(
    dataset: str | os.PathLike[str] = MOVIELENS,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    include_zip: bool = False,
) -> MovieLens:
    """What a chapter's ``DATASET`` parameter names: "movielens-100k" (default) or a path.

    A path is a folder in the format of this module's docstring (interactions, optional items
    and users; rating and timestamp columns are used when present) or a single interactions
    file. ``data_dir`` and ``include_zip`` (keep the users' zip codes) are only for MovieLens
    (its folder; default RECSYS_DATA_DIR, the cache).
    """
    if str(dataset) == MOVIELENS:
        return load_movielens_100k(data_dir, include_zip=include_zip)
    path = Path(dataset).expanduser()
    if path.is_dir():
        found = _in_folder(path, "interactions")
        if found is None:
            raise DataError(
                f"{path} has no interactions.csv or interactions.parquet; see "
                "recsys_lib.data.owndata for the folder format (write_example_dataset makes one)."
            )
        items, users = _in_folder(path, "items"), _in_folder(path, "users")
    elif path.is_file():
        found, items, users = path, None, None
    else:
        raise DataError(
            f"DATASET {str(dataset)!r} is neither {MOVIELENS!r} nor an existing file or folder."
        )
    head = _read(found, "interactions").columns
    return load_interactions(
        found,
        rating_col="rating" if "rating" in head else None,
        time_col="timestamp" if "timestamp" in head else None,
        items=items,
        users=users,
    )


def is_movielens(data: MovieLens) -> bool:
    """True for MovieLens 100K, False for a team's own data (an :class:`OwnData`)."""
    return not isinstance(data, OwnData)


def subsample_dataset(
    data: MovieLens, n_users: int, n_items: int, seed: int = 0, min_per_user: int = 5
) -> MovieLens:
    """``data`` cut to the dense slice of :func:`~recsys_lib.data.splits.subsample_ratings`
    (the ``n_items`` most interacted items, then ``n_users`` random users with at least
    ``min_per_user`` interactions on them); the items and users tables keep only the rows that
    appear in the slice. Everything else (the dataset's type, template and flags) is kept."""
    ratings = subsample_ratings(data.ratings, n_users, n_items, seed, min_per_user)
    return replace(
        data,
        ratings=ratings,
        items=data.items[data.items["item_id"].isin(ratings["item_id"])],
        users=data.users[data.users["user_id"].isin(ratings["user_id"])],
    )


#: What each need of a chapter requires of own data, and how a team adds it.
NEEDS = {
    "time": (
        "a timestamp column in the interactions",
        "add one named 'timestamp' (unix seconds or ISO 8601 such as '2024-03-01T12:00:00')",
    ),
    "text": (
        "item titles or descriptions",
        "add items.csv (or .parquet) beside interactions.csv with item_id and a 'title' or "
        "'description' column",
    ),
}


def require(data: MovieLens, chapter: str, *needs: str) -> None:
    """Refuse own data that lacks what ``chapter`` needs, saying what to add.

    ``needs``: any of "time" (an order of each user's interactions) and "text" (item titles or
    descriptions). MovieLens has both. Raises :class:`~recsys_lib.data.movielens.DataError`.
    """
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"needs must be among {sorted(NEEDS)}, got {unknown}.")
    if is_movielens(data):
        return
    have = {"time": getattr(data, "has_time", False), "text": getattr(data, "has_text", False)}
    missing = [n for n in needs if not have[n]]
    if missing:
        what = " and ".join(NEEDS[n][0] for n in missing)
        how = "; ".join(NEEDS[n][1] for n in missing)
        raise DataError(f"{chapter} needs {what}, which {data.source} does not have: {how}.")


def dataset_key(data: MovieLens) -> str:
    """The key of a dataset: "movielens-100k", or "own-" and a fingerprint of its ratings.

    The fingerprint (12 hex digits of a SHA-1 over every rating row) changes whenever the
    ratings do, so stored choices (:mod:`recsys_lib.course.choices`) never mix two datasets.
    """
    if is_movielens(data):
        return MOVIELENS
    rows = pd.util.hash_pandas_object(data.ratings, index=False).to_numpy()
    return "own-" + hashlib.sha1(rows.tobytes()).hexdigest()[:12]


def item_template(data: MovieLens) -> str:
    """The item-description template that fits ``data``'s item columns.

    MovieLens: :data:`recsys_lib.text.descriptions.DEFAULT_ITEM_TEMPLATE` (title and genres); own data: the
    template its loader chose from the columns the items table has (title, description, tags).
    """
    from recsys_lib.text.descriptions import DEFAULT_ITEM_TEMPLATE

    return data.item_template if isinstance(data, OwnData) else DEFAULT_ITEM_TEMPLATE


def example_ids(
    data: MovieLens,
    kind: str,
    movielens_ids: Sequence[Any],
    among: Iterable[Any] | None = None,
) -> list[Any]:
    """The users or items a chapter shows as examples.

    On MovieLens, ``movielens_ids`` (the hand-picked ones its prose names) that are in
    ``among``; on own data, as many of the most active users (``kind="user"``) or most
    interacted items (``kind="item"``) among ``among``, ties by id. ``among`` defaults to every
    id in the ratings.
    """
    if kind not in ("user", "item"):
        raise ValueError(f"kind must be 'user' or 'item', got {kind!r}.")
    column = data.ratings[f"{kind}_id"]
    allowed = set(column.tolist()) if among is None else set(np.asarray(among).tolist())
    if is_movielens(data):
        return [i for i in movielens_ids if i in allowed]
    counts = column[column.isin(allowed)].value_counts()
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [key for key, _ in order[: len(movielens_ids)]]


def write_example_dataset(
    folder: str | os.PathLike[str], n_users: int = 60, n_items: int = 80, seed: int = 0
) -> Path:
    """Write a small synthetic dataset in the folder format (a template for your own).

    Items belong to one of four themes (in their tags and descriptions); each user prefers one
    theme and rates 8-20 items, mostly of that theme, 1-5 stars, over 2024. Returns ``folder``.
    """
    rng = np.random.default_rng(seed)
    themes = ["hiking", "cooking", "gaming", "music"]
    item_theme = rng.integers(0, len(themes), n_items)
    rows = []
    for user in range(1, n_users + 1):
        liked = rng.integers(0, len(themes))
        weights = np.where(item_theme == liked, 6.0, 1.0)
        chosen = rng.choice(n_items, rng.integers(8, 21), replace=False, p=weights / weights.sum())
        for item in chosen:
            stars = 5 if item_theme[item] == liked else int(rng.integers(1, 4))
            day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 365)))
            rows.append((user, int(item) + 1, stars, day.isoformat()))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(
        folder / "interactions.csv", index=False
    )
    pd.DataFrame({
        "item_id": np.arange(1, n_items + 1),
        "title": [f"{themes[t].title()} item {i + 1}" for i, t in enumerate(item_theme)],
        "description": [f"Everything for {themes[t]} fans." for t in item_theme],
        "tags": [f"{themes[t]}|{'indoor' if t % 2 else 'outdoor'}" for t in item_theme],
    }).to_csv(folder / "items.csv", index=False)  # fmt: skip
    pd.DataFrame({
        "user_id": np.arange(1, n_users + 1),
        "segment": rng.choice(["new", "regular", "loyal"], n_users),
    }).to_csv(folder / "users.csv", index=False)  # fmt: skip
    return folder
