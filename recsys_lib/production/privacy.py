"""What user data gives away, and a differentially private popularity count.

Re-identification. A user is *unique* on a set of fields (age, gender, occupation, zip code)
when no other user shares their combination of values; anyone who knows those facts about a
person then finds their row, and with it their whole rating history.
:func:`unique_share` measures that share, :func:`k_anonymity` the smallest group, and
:func:`coarsen_users` the usual defences (age buckets, zip prefixes, dropped fields).
:func:`history_unique_share` asks the same of the rating history itself: how many users are
singled out by a few films they rated (what a text description listing liked titles leaks).

Differential privacy. The Laplace mechanism releases ``f(D) + Laplace(0, b)`` per coordinate
with ``b = Delta_1 / epsilon``, where ``Delta_1`` is the L1 sensitivity: the most the vector
``f`` can change, summed over coordinates, when one user's data is added or removed. For item
popularity counts one user adds 1 to *every* item they interacted with, so ``Delta_1`` is that
user's number of items; it is only bounded once each user's contribution is capped at ``m``
items (:func:`bound_contributions`), giving ``Delta_1 = m`` and ``b = m / epsilon``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from recsys_lib.data.interactions import Interactions
from recsys_lib.evaluation.protocol import evaluate
from recsys_lib.validation import NON_NEGATIVE, check_params

# ---------------------------------------------------------------- re-identification


def _check_fields(users: pd.DataFrame, fields: Iterable[str]) -> list[str]:
    names = list(fields)
    missing = [f for f in names if f not in users.columns]
    if missing:
        hint = (
            " (load_movielens_100k drops zip_code unless include_zip=True)"
            if "zip_code" in missing
            else ""
        )
        raise KeyError(f"fields {missing} are not columns of users {list(users.columns)}{hint}.")
    return names


def class_sizes(users: pd.DataFrame, fields: Sequence[str]) -> np.ndarray:
    """For each user (row of ``users``), how many users share its values on ``fields``: (n,).

    With no fields every user is in one class of size n.
    """
    fields = _check_fields(users, fields)
    if not fields:
        return np.full(len(users), len(users), dtype=np.int64)
    keys = users[fields].astype(str).agg("\x1f".join, axis=1)
    sizes: np.ndarray = keys.map(keys.value_counts()).to_numpy(dtype=np.int64)
    return sizes


def unique_share(users: pd.DataFrame, fields: Sequence[str]) -> float:
    """Share of users whose combination of ``fields`` no other user has (class size 1)."""
    if len(users) == 0:
        raise ValueError("users is empty.")
    return float(np.mean(class_sizes(users, fields) == 1))


def k_anonymity(users: pd.DataFrame, fields: Sequence[str]) -> int:
    """The k of k-anonymity: the size of the smallest group of users sharing ``fields``."""
    if len(users) == 0:
        raise ValueError("users is empty.")
    return int(class_sizes(users, fields).min())


def coarsen_users(
    users: pd.DataFrame,
    *,
    age_width: int | None = None,
    zip_digits: int | None = None,
    drop: Sequence[str] = (),
) -> pd.DataFrame:
    """A copy of ``users`` with generalised quasi-identifiers.

    age_width: replace ``age`` by its bucket of that width ("20-29" for width 10).
    zip_digits: keep only the first ``zip_digits`` characters of ``zip_code``.
    drop: columns removed altogether.
    """
    out = users.copy()
    if age_width is not None:
        if age_width < 1:
            raise ValueError(f"age_width must be >= 1, got {age_width}.")
        low = (out["age"].to_numpy() // age_width) * age_width
        out["age"] = [f"{lo}-{lo + age_width - 1}" for lo in low.tolist()]
    if zip_digits is not None:
        _check_fields(out, ["zip_code"])
        if zip_digits < 0:
            raise ValueError(f"zip_digits must be >= 0, got {zip_digits}.")
        out["zip_code"] = out["zip_code"].astype(str).str[:zip_digits]
    return out.drop(columns=list(drop))


def risk_table(scenarios: dict[str, tuple[pd.DataFrame, list[str]]]) -> pd.DataFrame:
    """One row per scenario name -> (users frame, fields): unique share, k, groups, fields."""
    rows = {}
    for name, (frame, fields) in scenarios.items():
        sizes = class_sizes(frame, fields)
        rows[name] = {
            "fields": ", ".join(fields),
            "unique_share": float(np.mean(sizes == 1)),
            "k_anonymity": int(sizes.min()),
            "groups": int(frame[list(fields)].drop_duplicates().shape[0]) if fields else 1,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def history_unique_share(train: Interactions, n_known: int, seed: int = 0) -> float:
    """Share of users singled out by ``n_known`` random items of their own train history.

    For each user with at least ``n_known`` items, draw that many of them; the user is
    singled out when no other user interacted with all of them. Users with fewer items are
    left out of the average.
    """
    if n_known < 1:
        raise ValueError(f"n_known must be >= 1, got {n_known}.")
    x = train.binary().matrix.tocsr()
    dense = x.toarray().astype(bool)  # (n_users, n_items); fine for catalogue-sized data
    rng = np.random.default_rng(seed)
    hits, counted = 0, 0
    for u in range(x.shape[0]):
        items = x.indices[x.indptr[u] : x.indptr[u + 1]]
        if len(items) < n_known:
            continue
        chosen = rng.choice(items, size=n_known, replace=False)
        counted += 1
        hits += int(dense[:, chosen].all(axis=1).sum() == 1)
    if counted == 0:
        raise ValueError(f"no user has {n_known} or more items; lower n_known.")
    return hits / counted


# ---------------------------------------------------------------- differential privacy


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """Noise scale b = sensitivity / epsilon of the Laplace mechanism (0 for epsilon = inf)."""
    check_params("laplace_scale", {"sensitivity": (NON_NEGATIVE, sensitivity)})
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (smaller = more private), got {epsilon}.")
    return 0.0 if np.isinf(epsilon) else float(sensitivity) / float(epsilon)


def laplace_mechanism(
    values: ArrayLike,
    sensitivity: float,
    epsilon: float,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """``values + Laplace(0, b)`` element-wise with b = sensitivity / epsilon (float64).

    ``sensitivity`` must be the L1 sensitivity of the whole vector ``values``: the largest
    change, summed over all entries, that adding or removing one person can cause.
    The noise has mean 0 and standard deviation sqrt(2) * b.
    """
    values = np.asarray(values, dtype=np.float64)
    scale = laplace_scale(sensitivity, epsilon)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if scale == 0.0:
        return values.copy()
    return values + rng.laplace(0.0, scale, size=values.shape)


def bound_contributions(
    train: Interactions, max_items: int, rng: np.random.Generator | int | None = None
) -> Interactions:
    """Keep at most ``max_items`` interactions per user (a uniform random subset), binary.

    After this, adding or removing one user changes any per-item count vector by at most
    ``max_items`` in L1 norm.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}.")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    x = train.binary().matrix
    rows, cols = [], []
    for u in range(x.shape[0]):
        items = x.indices[x.indptr[u] : x.indptr[u + 1]]
        if len(items) > max_items:
            items = np.sort(rng.choice(items, size=max_items, replace=False))
        rows.append(np.full(len(items), u))
        cols.append(items)
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=x.shape)
    return Interactions(m, train.catalogue)


def dp_item_counts(
    train: Interactions, epsilon: float, max_items_per_user: int, seed: int = 0
) -> tuple[np.ndarray, float]:
    """epsilon-DP number of users per item: (noisy counts (n_items,), Laplace scale b).

    Each user's items are first capped at ``max_items_per_user`` (so the L1 sensitivity is
    exactly that cap), then Laplace(0, cap / epsilon) noise is added to every item's count.
    """
    rng = np.random.default_rng(seed)
    bounded = bound_contributions(train, max_items_per_user, rng)
    counts = np.asarray(bounded.matrix.sum(axis=0)).ravel()
    noisy = laplace_mechanism(counts, max_items_per_user, epsilon, rng)
    return noisy, laplace_scale(max_items_per_user, epsilon)


def dp_utility(
    train: Interactions,
    test: Interactions,
    epsilons: Iterable[float],
    *,
    max_items_per_user: int = 50,
    repeats: int = 5,
    k: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """The utility cost of privacy: DP popularity at each epsilon, ``repeats`` noise draws.

    Returns one row per epsilon (index) with the mean and std of ndcg@k over draws, the mean
    Spearman rank correlation of the noisy counts with the true (uncapped) counts, and the
    noise scale b. Add ``np.inf`` to ``epsilons`` for the capped, noise-free reference.
    """
    from scipy.stats import spearmanr
    from tqdm.auto import tqdm

    from recsys_lib.models.private import DPPopularity  # imports this module's mechanism

    true_counts = np.asarray(train.binary().matrix.sum(axis=0)).ravel()
    rows = {}
    for eps in tqdm(list(epsilons), desc="epsilons", disable=not progress):
        ndcgs, rhos = [], []
        for r in range(repeats):
            model = DPPopularity(eps, max_items_per_user, seed=seed * 1000 + r).fit(train)
            ndcgs.append(evaluate(model, test, k)[f"ndcg@{k}"])
            rhos.append(spearmanr(model.counts_, true_counts).statistic)
        rows[float(eps)] = {
            f"ndcg@{k}": float(np.mean(ndcgs)),
            f"ndcg@{k}_std": float(np.std(ndcgs)),
            "spearman": float(np.mean(rhos)),
            "noise_scale": model.scale_,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "epsilon"
    return table
