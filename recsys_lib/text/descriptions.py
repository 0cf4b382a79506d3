"""Users and items described in plain language, ready for a text encoder.

An item becomes one sentence filled from a format string::

    item_descriptions(ml.items)[1]   # 'Movie: Toy Story (1995). Genres: Animation, Children's, Comedy.'

A user becomes one sentence built **only from the ratings frame passed in** (pass the train
frame, never the full log, or test ratings leak into the description)::

    user_descriptions(train_df, ml.items)[42]
    # 'User 42 likes Drama, Comedy and Thriller; loved Star Wars (1977), Fargo (1996), ...'

Privacy by default: the zip code is never used, demographics are off unless asked for, and
when they are on the age is reported as a bucket ("25-34"), not the exact age.
:func:`description_fields` lists exactly which fields a description used.

With ``max_tokens`` and a tokenizer, a user description is shortened to the encoder's token
budget by dropping whole parts, least important first (liked titles from the end, then the
demographics, then genres from the end), so no word is ever cut in half.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEFAULT_ITEM_TEMPLATE = "Movie: {title}. Genres: {genres}."

#: Fields that never enter a description, whatever the options.
PRIVACY_EXCLUDED_FIELDS = ("zip_code", "exact age")

AGE_BUCKETS = ((0, 18, "under 18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
               (45, 55, "45-54"), (55, 200, "55+"))  # fmt: skip
_GENDER_WORDS = {"M": "man", "F": "woman"}


def join_genres(genres: Iterable[str] | str | None) -> str:
    """``["Animation", "Children's", "Comedy"]`` -> ``"Animation, Children's, Comedy"``.

    A string is returned unchanged; an empty list or None gives ``"unknown"``.
    """
    if genres is None:
        return "unknown"
    if isinstance(genres, str):
        return genres
    names = [str(g) for g in genres]
    return ", ".join(names) if names else "unknown"


def _and_list(words: Sequence[str]) -> str:
    """``["a"]`` -> "a"; ``["a", "b", "c"]`` -> "a, b and c"."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def item_descriptions(
    items: pd.DataFrame,
    template: str = DEFAULT_ITEM_TEMPLATE,
    extra: dict[str, pd.Series] | None = None,
) -> pd.Series:
    """One description per item, filled from ``template`` (a ``str.format`` string).

    ``items`` needs ``item_id``; the template may use any of its columns (``{title}``,
    ``{genres}`` joined as "A, B, C", ``{year}`` as an integer or "unknown", ...) and any key of
    ``extra``, a dict of Series indexed by item_id (items missing from a Series get "").
    Returns a Series of str indexed by item_id, in the order of ``items``. Items need no
    interactions: every row of ``items`` gets a description.
    """
    if "item_id" not in items.columns:
        raise ValueError(f"items needs an item_id column; it has {list(items.columns)}.")
    extra = extra or {}
    available = set(items.columns) | set(extra)
    missing = [name for name in _template_fields(template) if name not in available]
    if missing:
        raise KeyError(
            f"template {template!r} uses {missing}, which are neither columns of items "
            f"({sorted(items.columns)}) nor keys of extra ({sorted(extra)}). "
            "Fix the field names or pass the values in extra={name: Series by item_id}."
        )
    ids = items["item_id"].to_numpy()
    fields: dict[str, list[Any]] = {}
    for name in _template_fields(template):
        if name in extra:
            series = extra[name]
            fields[name] = ["" if pd.isna(v) else v for v in series.reindex(ids).tolist()]
        elif name == "genres":
            fields[name] = [join_genres(g) for g in items["genres"].tolist()]
        elif name == "year":
            fields[name] = ["unknown" if pd.isna(y) else int(y) for y in items["year"].tolist()]
        else:
            fields[name] = items[name].tolist()
    texts = [
        template.format(**{name: values[row] for name, values in fields.items()})
        for row in range(len(items))
    ]
    return pd.Series(texts, index=pd.Index(ids, name="item_id"), name="description", dtype=object)


def age_bucket(age: float | int | None) -> str:
    """Exact age -> coarse bucket ("under 18", "18-24", "25-34", "35-44", "45-54", "55+")."""
    if age is None or pd.isna(age):
        return "unknown age"
    for low, high, label in AGE_BUCKETS:
        if low <= age < high:
            return label
    raise ValueError(f"age {age!r} is outside 0..200; check the users frame.")


def description_fields(include_demographics: bool = False) -> list[str]:
    """The user fields a description from :func:`user_descriptions` uses, in sentence order.

    The zip code and the exact age are never among them (see ``PRIVACY_EXCLUDED_FIELDS``).
    """
    fields = ["user_id"]
    if include_demographics:
        fields += ["age bucket", "gender", "occupation"]
    fields += ["preferred genres (rating-weighted lift, train ratings only)",
               "highly rated titles (train ratings only)"]  # fmt: skip
    return fields


GENRE_WEIGHTINGS = ("lift", "rating")
#: Minimum support of a genre preference: a user "likes" a genre only if they rated at least
#: this many of its films in train. Chosen in chapter 1 on a validation split carved from train
#: (:func:`genre_claim_check`: the number of genre claims the held-out ratings confirm peaks
#: there); a test checks it on MovieLens 100K.
GENRE_MIN_FILMS = 4


def _genre_table(train_ratings: pd.DataFrame, items: pd.DataFrame, aggfunc: str) -> pd.DataFrame:
    """(users x genres) sum or count of each user's train ratings per genre ("unknown" out)."""
    exploded = items[["item_id", "genres"]].explode("genres").dropna()
    exploded = exploded[exploded["genres"] != "unknown"]
    joined = train_ratings[["user_id", "item_id", "rating"]].merge(exploded, on="item_id")
    table = joined.pivot_table(
        index="user_id", columns="genres", values="rating", aggfunc=aggfunc, fill_value=0
    ).astype(np.float64)
    return table.reindex(np.unique(train_ratings["user_id"].to_numpy()), fill_value=0.0)


def genre_preferences(
    train_ratings: pd.DataFrame,
    items: pd.DataFrame,
    weighting: str = "lift",
    min_films: int = 1,
) -> pd.DataFrame:
    """Genre preference scores: a (n_users, n_genres) frame indexed by user_id.

    With s(u, g) = sum of u's ratings of films in genre g (over ``train_ratings`` only; a film
    with k genres counts fully for each, "unknown" is left out):

    * ``weighting="rating"``: s(u, g) itself. Drama and Comedy win for almost everyone.
    * ``weighting="lift"`` (default): u's rating-weighted share of g over the share of g in all
      of train, ``(s(u, g) / sum_g s(u, g)) / (sum_u s(u, g) / sum_ug s(u, g))``. Above 1 means
      u favours g more than users do in general: descriptions become more distinctive (chosen
      on a validation split carved from train, chapter 2).

    ``min_films``: a score is set to 0 (no preference) where the user rated fewer than this many
    films of the genre. The lift of a rare genre is large after a single film (one documentary
    among twenty films is ten times Documentary's share), so without support one film defines
    a taste; :data:`GENRE_MIN_FILMS` is the support chapter 1 chooses on validation.

    Users are the ones in ``train_ratings``; columns are the genres that appear in ``items``.
    """
    if weighting not in GENRE_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {GENRE_WEIGHTINGS}, got {weighting!r}.")
    if isinstance(min_films, bool) or not isinstance(min_films, int | np.integer) or min_films < 1:
        raise ValueError(
            f"min_films must be an integer >= 1 (films of a genre), got {min_films!r}."
        )
    table = _genre_table(train_ratings, items, "sum")
    supported = _genre_table(train_ratings, items, "count") >= min_films
    if weighting == "rating":
        return table.where(supported, 0.0)
    user_share = table.div(table.sum(axis=1).replace(0.0, np.nan), axis=0).fillna(0.0)
    global_share = table.sum(axis=0) / table.to_numpy().sum()
    lift = user_share.div(global_share.replace(0.0, np.nan), axis=1).fillna(0.0)
    return lift.where(supported, 0.0)


def genre_claim_check(
    fit_ratings: pd.DataFrame,
    valid_ratings: pd.DataFrame,
    items: pd.DataFrame,
    min_films: Iterable[int],
    n_genres: int = 3,
) -> pd.DataFrame:
    """How many "likes G" claims of the descriptions held-out ratings confirm, per support.

    For each ``min_films`` value, each user's top ``n_genres`` genres by lift on
    ``fit_ratings`` (with that support) are the claims; a claim is confirmed when the user's
    lift for the genre on ``valid_ratings`` is above 1 (they favour it on ratings the claim
    never saw). Users without held-out ratings of any genre are left out. One row per value:
    claims, confirmed claims, their share, and claims of the rarest genre in ``fit_ratings``.
    A small support makes many claims from one film; a large one leaves slots empty or fills
    them with weaker genres, so the confirmed count has a peak: the support to choose.
    """
    held_out = genre_preferences(valid_ratings, items)
    fit_counts = _genre_table(fit_ratings, items, "count")
    rarest = fit_counts.sum(axis=0).idxmin()
    rows = []
    for support in min_films:
        prefs = genre_preferences(fit_ratings, items, min_films=int(support))
        users = prefs.index.intersection(held_out.index[held_out.to_numpy().sum(1) > 0])
        claims = confirmed = rare = 0
        for user in users:
            top = _top_genres(prefs.loc[user], n_genres)
            claims += len(top)
            rare += rarest in top
            observed = held_out.loc[user]
            confirmed += sum(float(observed.get(genre, 0.0)) > 1.0 for genre in top)
        rows.append({"min_films": int(support), "claims": claims, "confirmed": confirmed,
                     "confirmed share": confirmed / max(claims, 1),
                     f"claims of {rarest}": rare})  # fmt: skip
    return pd.DataFrame(rows)


def _top_genres(scores: pd.Series, n: int) -> list[str]:
    """Highest scores first; ties broken by genre name so the output is deterministic."""
    positive = scores[scores > 0]
    order = sorted(positive.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in order[:n]]


def _liked_titles(train_ratings: pd.DataFrame, items: pd.DataFrame, like_threshold: float,
                  n: int) -> dict[str, Any]:  # fmt: skip
    """user_id -> up to n titles rated >= like_threshold, best rating then most recent first."""
    liked = train_ratings[train_ratings["rating"] >= like_threshold]
    liked = liked.merge(items[["item_id", "title"]], on="item_id", how="left")
    sort_cols, ascending = ["user_id", "rating"], [True, False]
    if "timestamp" in liked.columns:
        sort_cols.append("timestamp")
        ascending.append(False)
    sort_cols.append("item_id")
    ascending.append(True)
    liked = liked.sort_values(sort_cols, ascending=ascending, kind="mergesort")
    top = liked.groupby("user_id", sort=False).head(n)
    return {uid: list(group["title"].astype(str)) for uid, group in top.groupby("user_id")}


def _demographics(row: pd.Series) -> str:
    parts = [age_bucket(row.get("age"))]
    gender = row.get("gender")
    if isinstance(gender, str) and gender:
        parts.append(_GENDER_WORDS.get(gender, gender))
    occupation = row.get("occupation")
    if isinstance(occupation, str) and occupation:
        parts.append("no occupation" if occupation == "none" else occupation)
    return ", ".join(parts)


def _compose(uid: object, demographics: str | None, genres: list[str], titles: list[str]) -> str:
    text = f"User {uid}"
    if demographics:
        text += f" ({demographics})"
    if genres:
        text += f" likes {_and_list(genres)}"
    if titles:
        text += ("; loved " if genres else " loved ") + ", ".join(titles)
    if not genres and not titles:
        text += " has no ratings yet"
    return text + "."


def names_title(description: str, title: str) -> bool:
    """Whether a user description from :func:`user_descriptions` lists ``title`` as a loved film.

    A whole-title match, not a substring test: "Heat (1995)" is not named by a text that loves
    "White Heat (1949)", and titles holding commas ("Crow, The (1994)") still match whole.
    """
    loved = description.rsplit("loved ", 1)
    if len(loved) < 2:
        return False
    listed = loved[1].removesuffix(".")
    return (
        listed == title
        or listed.startswith(title + ", ")
        or (", " + title + ", ") in (listed + ", ")
    )


def _shortenings(
    uid: object, demographics: str | None, genres: Iterable[str], titles: Iterable[str]
) -> list[str]:
    """The description, then each shorter version in drop order, shortest last.

    Drop order: liked titles from the end, then the demographics, then genres from the end.
    Whole parts go, so no word is ever cut.
    """
    genres, titles = list(genres), list(titles)
    versions = [_compose(uid, demographics, genres, titles)]
    while titles or demographics or genres:
        if titles:
            titles.pop()
        elif demographics:
            demographics = None
        else:
            genres.pop()
        versions.append(_compose(uid, demographics, genres, titles))
    return versions


def user_descriptions(
    train_ratings: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame | None = None,
    *,
    include_demographics: bool = False,
    n_genres: int = 3,
    n_titles: int = 3,
    like_threshold: float = 4.0,
    max_tokens: int | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    genre_weighting: str = "lift",
    genre_min_films: int = 1,
) -> pd.Series:
    """One description per user, built only from ``train_ratings``; Series indexed by user_id.

    Sentence: "User {id} [(age bucket, gender, occupation)] likes G1, G2 and G3; loved T1, T2,
    T3." -- the ``n_genres`` genres with the largest score (:func:`genre_preferences` with
    ``genre_weighting``, "lift" or "rating", among genres with at least ``genre_min_films``
    rated films; ties by name) and up to ``n_titles`` films rated ``>= like_threshold`` (best
    rating first, then most recent). Demographics appear only with ``include_demographics=True``
    and need ``users``; the age is bucketed and the zip code is never read.

    Users are those in ``train_ratings``, plus those of ``users`` with no train ratings (they get
    "User N has no ratings yet.", with demographics when asked for), sorted by id.
    With ``max_tokens`` and ``tokenizer`` (the encoder's, counting special tokens) each
    description is shortened to fit by dropping whole parts; see the module docstring.
    """
    required = {"user_id", "item_id", "rating"}
    if not required <= set(train_ratings.columns):
        raise ValueError(
            f"train_ratings needs columns {sorted(required)}; it has {list(train_ratings.columns)}."
        )
    if include_demographics and users is None:
        raise ValueError(
            "include_demographics=True needs the users frame (user_id, age, gender, occupation); "
            "pass users=ml.users or leave demographics off."
        )
    if (max_tokens is None) != (tokenizer is None):
        raise ValueError(
            "max_tokens and tokenizer go together: the budget is measured with the encoder's "
            f"tokenizer (got max_tokens={max_tokens!r}, tokenizer={type(tokenizer).__name__})."
        )
    prefs = genre_preferences(train_ratings, items, genre_weighting, genre_min_films)
    titles = _liked_titles(train_ratings, items, like_threshold, n_titles) if n_titles > 0 else {}
    user_ids = prefs.index.to_numpy()
    if users is not None:
        user_ids = np.union1d(user_ids, users["user_id"].to_numpy())
    demo: dict[str, Any] = {}
    if include_demographics and users is not None:  # users is given: checked above
        cols = [c for c in ("user_id", "age", "gender", "occupation") if c in users.columns]
        demo = {r["user_id"]: _demographics(r) for r in users[cols].to_dict("records")}
    versions = []  # per user: full description first, then shorter ones
    for uid in user_ids.tolist():
        genres = _top_genres(prefs.loc[uid], n_genres) if uid in prefs.index else []
        liked = titles.get(uid, [])
        d = demo.get(uid) if include_demographics else None
        if max_tokens is None:
            versions.append([_compose(uid, d, genres, liked)])
        else:
            versions.append(_shortenings(uid, d, genres, liked))
    if max_tokens is None or tokenizer is None:  # both or neither: checked above
        texts = [v[0] for v in versions]
    else:  # one tokenizer call over every candidate, then the longest that fits per user
        lengths = token_lengths([t for v in versions for t in v], tokenizer).tolist()
        texts, offset = [], 0
        for candidates in versions:
            counts = lengths[offset : offset + len(candidates)]
            offset += len(candidates)
            fitting = [t for t, n in zip(candidates, counts, strict=True) if n <= max_tokens]
            texts.append(fitting[0] if fitting else candidates[-1])
    return pd.Series(
        texts, index=pd.Index(user_ids, name="user_id"), name="description", dtype=object
    )


def token_lengths(texts: Iterable[str], tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """Number of tokens the encoder sees per text, special tokens ([CLS], [SEP]) included.

    ``tokenizer`` is a Hugging Face tokenizer (e.g. ``TextEncoder(...).tokenizer``). No
    truncation is applied, so lengths above the encoder's ``max_length`` show what would be cut.
    Returns int64 (n,).
    """
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros(0, dtype=np.int64)
    encoded = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    return np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(texts))
