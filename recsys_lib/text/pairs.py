"""Labelled (user, item) pairs for training click models, built from interactions only.

What counts as a positive on MovieLens, which has ratings but no clicks:

* a **click** is any rating (``min_rating=1``): the user chose to watch the film;
* a **conversion** is a rating of 4 or 5 (``min_rating=4``): the user chose it *and* liked it.

Negatives are items the user did **not** interact with, sampled uniformly or in proportion to
popularity (``count ** power``). Which interactions a negative must avoid is always passed in
explicitly (``known``):

* training pairs: ``known`` = the train split only, so nothing about validation or test leaks
  into training (a test item may be drawn as a training negative: the model cannot know better);
* held-out pairs: ``known`` = train + held-out, so an evaluation negative is a genuine
  non-interaction.

Frames are long: one row per pair, columns ``user_id, item_id, label`` (1 = positive).
:func:`pair_features` and :class:`LogisticBaseline` give the simple-feature baseline
(popularity, genre match, user activity) that a text model has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.data.splits import _check_columns, stratified_split
from recsys_lib.linalg import fit_logistic, positions, row_cosine, sigmoid
from recsys_lib.validation import SEED, Interval, check_params

CLICK_MIN_RATING = 1  #: any rating is a click (the user watched the film)
CONVERSION_MIN_RATING = 4  #: a rating >= 4 is a conversion (watched and liked)


def positives(ratings: pd.DataFrame, min_rating: float = CLICK_MIN_RATING) -> pd.DataFrame:
    """Positive pairs: rows of ``ratings`` with ``rating >= min_rating``, deduplicated.

    Returns a frame (user_id, item_id, label=1) sorted by (user_id, item_id).
    """
    check_params("positives", {"min_rating": (Interval(float, None, None), min_rating)})
    _check_columns(ratings, "user_id", "item_id", "rating", name="ratings")
    kept = ratings.loc[ratings["rating"] >= min_rating, ["user_id", "item_id"]]
    kept = kept.drop_duplicates().sort_values(["user_id", "item_id"], kind="mergesort")
    return kept.assign(label=np.int64(1)).reset_index(drop=True)


def popularity_weights(
    train_ratings: pd.DataFrame, item_ids: np.ndarray, power: float = 1.0, smoothing: float = 1.0
) -> np.ndarray:
    """Sampling probabilities over ``item_ids``: ``(train count + smoothing) ** power``, summing
    to 1. ``power=0`` is uniform; ``power=1`` samples in proportion to popularity.

    Counts come from ``train_ratings`` only. Returns float64 (len(item_ids),).
    """
    counts = train_ratings["item_id"].value_counts()
    counts = counts.reindex(np.asarray(item_ids), fill_value=0).to_numpy(dtype=np.float64)
    weights = (counts + smoothing) ** power
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(
            f"popularity weights are degenerate (power={power}, smoothing={smoothing})."
        )
    return np.asarray(weights / weights.sum())


POPULARITY_WORDS = ("rarely watched", "little known", "well known", "a blockbuster")
#: Finer, percentile-style popularity phrases for :func:`popularity_labels` (pass both):
#: eleven levels instead of four, so a text model sees nearly what a log-count feature sees.
#: Chapter 5's cross-encoder uses them (chosen on validation AUC).
PERCENTILE_CUTS = (0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
PERCENTILE_WORDS = (
    "in the bottom fifth", "in the bottom third", "below the median", "in the top half",
    "in the top 40%", "in the top 30%", "in the top 20%", "in the top 15%", "in the top 10%",
    "in the top 5%", "in the top 2%",
)  # fmt: skip


def popularity_labels(
    train_ratings: pd.DataFrame,
    item_ids: np.ndarray,
    cuts: tuple[float, ...] = (0.4, 0.7, 0.9),
    words: tuple[str, ...] = POPULARITY_WORDS,
) -> pd.Series:
    """A popularity word per item from its train count percentile (str Series by item_id).

    With the defaults: the least-watched 40% of items are "rarely watched", then "little
    known" up to 70%, "well known" up to 90%, and the top 10% "a blockbuster". Lets a text
    model see the same popularity signal as a feature model (use it in an item template).
    """
    if len(words) != len(cuts) + 1:
        raise ValueError(f"need one word more than cuts; got {len(words)} words, {len(cuts)} cuts.")
    item_ids = np.asarray(item_ids)
    counts = train_ratings["item_id"].value_counts().reindex(item_ids, fill_value=0)
    percentile = counts.rank(method="average", pct=True).to_numpy()
    bucket = np.searchsorted(np.asarray(cuts), percentile, side="left")
    return pd.Series(
        np.asarray(words, dtype=object)[bucket], index=pd.Index(item_ids, name="item_id")
    )


def sample_negatives(
    pos: pd.DataFrame,
    known: pd.DataFrame,
    item_ids: np.ndarray,
    *,
    ratio: int = 1,
    how: str = "uniform",
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """``ratio`` negatives per positive row: items the user has no row for in ``known``.

    pos: frame with user_id (one row per positive). known: every (user_id, item_id) a negative
    must avoid. item_ids: the candidate universe. how: ``"uniform"`` or ``"popularity"`` (then
    ``weights`` over ``item_ids`` is required, e.g. :func:`popularity_weights`). Draws are with
    replacement across a user's negatives (a user may get the same negative twice) and are
    rejection-sampled, so the distribution over the allowed items is exactly the requested one.

    Returns (user_id, item_id, label=0) with ``ratio`` rows per row of ``pos``, users in the
    order of ``pos``. Raises if a user has interacted with every candidate, or if every item
    a user may get has weight 0 (the rejection sampler could never finish).
    """
    _check_columns(pos, "user_id", name="pos")
    _check_columns(known, "user_id", "item_id", name="known")
    if int(ratio) != ratio or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}.")
    item_ids = np.unique(np.asarray(item_ids))
    n_items = len(item_ids)
    if how == "uniform":
        probs = None
    elif how == "popularity":
        if weights is None or len(weights) != n_items:
            raise ValueError(
                f"how='popularity' needs weights over the {n_items} candidate items (sorted by id); "
                f"got {None if weights is None else len(weights)}. Use popularity_weights()."
            )
        probs = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    else:
        raise ValueError(f"how must be 'uniform' or 'popularity', got {how!r}.")

    users = pos["user_id"].to_numpy()
    uniq_users, user_code = np.unique(users, return_inverse=True)
    known_u = positions(uniq_users, known["user_id"].to_numpy())
    known_i = positions(item_ids, known["item_id"].to_numpy())
    ok = (known_u >= 0) & (known_i >= 0)
    known_keys = np.unique(known_u[ok].astype(np.int64) * n_items + known_i[ok])
    per_user_known = np.bincount(known_keys // n_items, minlength=len(uniq_users))
    full = np.flatnonzero(per_user_known >= n_items)
    if full.size:
        raise ValueError(
            f"user(s) {uniq_users[full[:5]].tolist()} interacted with all {n_items} candidate "
            "items, so they have no negatives; drop them or widen item_ids."
        )

    if probs is not None:
        if (probs < 0).any() or not np.isfinite(probs).all():
            raise ValueError("popularity weights must be finite and non-negative; "
                             "use popularity_weights() (it smooths zero counts).")  # fmt: skip
        allowed_mass = probs.sum() - np.bincount(
            known_keys // n_items, weights=probs[known_keys % n_items], minlength=len(uniq_users)
        )
        stuck = np.flatnonzero(allowed_mass <= 1e-12)
        if stuck.size:
            raise ValueError(
                f"user(s) {uniq_users[stuck[:5]].tolist()} have weight 0 on every item they have "
                "not interacted with, so no negative can be drawn; give unseen items a positive "
                "weight (popularity_weights(smoothing > 0)) or use how='uniform'."
            )
    rng = np.random.default_rng(seed)
    owner = np.repeat(user_code, int(ratio)).astype(np.int64)
    drawn = np.empty(len(owner), dtype=np.int64)
    todo = np.arange(len(owner))
    while todo.size:
        candidates = rng.choice(n_items, size=todo.size, p=probs)
        keys = owner[todo] * n_items + candidates
        bad = positions(known_keys, keys) >= 0
        drawn[todo[~bad]] = candidates[~bad]
        todo = todo[bad]
    return pd.DataFrame(
        {"user_id": uniq_users[owner], "item_id": item_ids[drawn], "label": np.int64(0)}
    )


def build_pairs(
    ratings: pd.DataFrame,
    known: pd.DataFrame,
    item_ids: np.ndarray,
    *,
    min_rating: float = CLICK_MIN_RATING,
    ratio: int = 1,
    how: str = "uniform",
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Positives from ``ratings`` (rating >= min_rating) plus ``ratio`` sampled negatives each.

    For training pairs pass ``ratings=known=train``; for held-out pairs pass the held-out
    ratings and ``known = concat(train, held-out)``. Returns (user_id, item_id, label) with the
    positives first, then the negatives, in a deterministic order.
    """
    pos = positives(ratings, min_rating)
    neg = sample_negatives(pos, known, item_ids, ratio=ratio, how=how, weights=weights, seed=seed)
    return pd.concat([pos, neg], ignore_index=True)


def shuffle_pairs(pairs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The rows in a random (seeded) order, index reset."""
    check_params("shuffle_pairs", {"seed": (SEED, seed)})
    order = np.random.default_rng(seed).permutation(len(pairs))
    return pairs.iloc[order].reset_index(drop=True)


@dataclass
class ClickPairSets:
    """Labelled pairs for a click model: ``train`` / ``val`` / ``test`` (shuffled, truncated
    to the requested sizes) and ``train_all`` (every training pair, before truncation)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    train_all: pd.DataFrame


def profile_target_split(
    fit: pd.DataFrame, profile_share: float = 0.5, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(profile, target): each user's ``fit`` ratings divided at random, ``profile_share`` of
    them to describe the user (user texts, history prompts) and the rest to draw training
    positives from (``click_pair_sets(..., train_targets=target)``), so no training positive is
    named in its own user's text. Chapters 5 and 7 build their training pairs this way."""
    return stratified_split(fit, profile_share, by="user_id", seed=seed)


def click_pair_sets(
    fit: pd.DataFrame,
    val: pd.DataFrame,
    train: pd.DataFrame,
    test: pd.DataFrame,
    item_ids: np.ndarray,
    *,
    sizes: tuple[int | None, int | None, int | None] = (None, None, None),
    min_rating: float = CLICK_MIN_RATING,
    ratio: int = 1,
    how: str = "uniform",
    seed: int = 0,
    train_targets: pd.DataFrame | None = None,
) -> ClickPairSets:
    """Training, validation and test pairs with chapter 5's leakage rules.

    fit / val: the training split divided for validation; train / test: the benchmark split
    (``train`` = fit + val). Training positives come from ``train_targets`` (default ``fit``;
    pass the *target* part of a profile/target split of ``fit`` when the user text is built
    from the profile part, so no training pair's user text names its own target) and
    training negatives avoid all of ``fit``; validation pairs avoid fit + val; test pairs avoid
    train + test. Popularity negatives use counts of the part the sampler may know (``fit`` for
    train and validation, ``train`` for test). Each set is shuffled with ``seed`` and cut to
    ``sizes`` (None or 0: keep all).
    """
    fit_weights = popularity_weights(fit, item_ids)
    options: dict[str, Any] = dict(min_rating=min_rating, ratio=ratio, how=how)
    targets = fit if train_targets is None else train_targets
    outside = targets.merge(fit[["user_id", "item_id"]], how="left", indicator=True)
    if (outside["_merge"] == "left_only").any():
        raise ValueError(
            f"{int((outside['_merge'] == 'left_only').sum())} train_targets rows are not in fit; "
            "train_targets must be a part of fit (e.g. the target half of a profile/target split)"
        )
    train_all = build_pairs(targets, fit, item_ids, seed=seed, weights=fit_weights, **options)
    val_pairs = build_pairs(val, pd.concat([fit, val]), item_ids, seed=seed + 1,
                            weights=fit_weights, **options)  # fmt: skip
    test_pairs = build_pairs(test, pd.concat([train, test]), item_ids, seed=seed + 2,
                             weights=popularity_weights(train, item_ids), **options)  # fmt: skip
    cut = [shuffle_pairs(p, seed).iloc[: n or len(p)].reset_index(drop=True)
           for p, n in zip((train_all, val_pairs, test_pairs), sizes, strict=True)]  # fmt: skip
    return ClickPairSets(train=cut[0], val=cut[1], test=cut[2], train_all=train_all)


def pair_features(
    pairs: pd.DataFrame, train_ratings: pd.DataFrame, items: pd.DataFrame
) -> np.ndarray:
    """Simple features per pair, from train only: float64 (n_pairs, 3).

    Columns: ``log1p(item train count)``, ``genre match`` (cosine between the user's train genre
    counts and the item's genre indicator; 0 for users or items without genres), and
    ``log1p(user train count)``. See :data:`PAIR_FEATURE_NAMES`.
    """
    _check_columns(pairs, "user_id", "item_id", name="pairs")
    genre_names = sorted({g for gs in items["genres"] for g in gs})
    item_genres = pd.DataFrame(
        [[g in set(gs) for g in genre_names] for gs in items["genres"]],
        index=items["item_id"].to_numpy(),
        columns=genre_names,
        dtype=np.float64,
    )
    rated = item_genres.reindex(train_ratings["item_id"].to_numpy(), fill_value=0.0)
    user_genres = rated.groupby(train_ratings["user_id"].to_numpy()).sum()
    u = user_genres.reindex(pairs["user_id"].to_numpy(), fill_value=0.0).to_numpy()
    i = item_genres.reindex(pairs["item_id"].to_numpy(), fill_value=0.0).to_numpy()
    match = row_cosine(u, i)
    item_count = train_ratings["item_id"].value_counts()
    user_count = train_ratings["user_id"].value_counts()
    pop = item_count.reindex(pairs["item_id"].to_numpy(), fill_value=0).to_numpy(np.float64)
    act = user_count.reindex(pairs["user_id"].to_numpy(), fill_value=0).to_numpy(np.float64)
    return np.column_stack([np.log1p(pop), match, np.log1p(act)])


PAIR_FEATURE_NAMES = ("log_item_popularity", "genre_match", "log_user_activity")


@dataclass
class LogisticBaseline:
    """L2-regularised logistic regression fitted by Newton's method (numpy only).

    Features are standardised with the training mean/std; ``coef_`` is on the standardised
    scale and ``intercept_`` is the bias. ``l2`` penalises the weights, not the bias.
    """

    l2: float = 1e-3
    max_iter: int = 50
    tol: float = 1e-8

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticBaseline:
        """x: (n, d) features, y: (n,) labels in {0, 1}."""
        x = np.asarray(x, dtype=np.float64)  # fit_logistic checks the shapes and labels
        self.mean_ = x.mean(0)
        self.std_ = np.where(x.std(0) > 0, x.std(0), 1.0)
        w = fit_logistic((x - self.mean_) / self.std_, y, self.l2, self.max_iter, self.tol)
        self.intercept_, self.coef_ = float(w[-1]), w[:-1]
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(label = 1) per row: float64 (n,)."""
        if not hasattr(self, "coef_"):
            raise RuntimeError("LogisticBaseline is not fitted: call fit(x, y) first.")
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.std_
        return sigmoid(z @ self.coef_ + self.intercept_)


def with_score(features: np.ndarray, probs: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``features`` (n, d) with one more column: the logit of a model's click probabilities
    ``probs`` (n,), clipped to [eps, 1 - eps]: float64 (n, d + 1).

    The logit puts a model's confident scores on the same additive scale as the logistic
    regression that stacks them (:func:`fit_fusion`).
    """
    x = np.asarray(features, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if x.ndim != 2 or p.shape != (len(x),):
        raise ValueError(
            f"features must be (n, d) and probs (n,), got features {x.shape} and probs {p.shape}; "
            "give one probability per row of features."
        )
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(
            "probs must be probabilities in [0, 1] (no NaN); pass predict_proba's output."
        )
    p = np.clip(p, eps, 1 - eps)
    return np.column_stack([x, np.log(p) - np.log1p(-p)])


def fit_fusion(
    val_features: np.ndarray, val_probs: np.ndarray, val_labels: np.ndarray, *, l2: float = 1e-3
) -> LogisticBaseline:
    """Stack a text model on the behavioural features: a :class:`LogisticBaseline` fitted on the
    *validation* pairs' features plus the logit of the model's validation probabilities.

    Score held-out pairs with ``fusion.predict_proba(with_score(test_features, test_probs))``.
    Test labels never enter: the weights, and the standardisation's mean and spread, come from
    the validation pairs alone. Reported against the baseline fitted on the same features without
    the score, the difference measures what the text model adds to behaviour.
    """
    return LogisticBaseline(l2=l2).fit(with_score(val_features, val_probs), val_labels)
