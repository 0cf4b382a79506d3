"""Interactions that remember their order, and the leave-last-out split built on them.

    split = sequence_split(ratings)   # train / valid / history / test, one catalogue
    split.train.items[u]              # user row u's item columns, oldest first

**Order and ties.** Interactions are ordered per user by timestamp; equal timestamps keep the
order of the rows in the frame (a stable sort, the same rule as ``splits.leave_k_out``).
MovieLens stores seconds and many ratings of one user share a second (a rating session), so
part of the "order" is the file's order, not the user's: :func:`timestamp_ties` measures how
much.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recsys_lib.data.interactions import Catalogue, Interactions
from recsys_lib.data.splits import _check_columns, leave_k_out


def order_interactions(ratings: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by (user_id, timestamp); equal timestamps keep the frame's row order."""
    _check_columns(ratings, "user_id", "item_id", "timestamp")
    order = np.lexsort(
        (np.arange(len(ratings)), ratings["timestamp"].to_numpy(), ratings["user_id"].to_numpy())
    )
    return ratings.iloc[order]


def timestamp_ties(ratings: pd.DataFrame) -> dict[str, float]:
    """How much of the order is decided by the tie rule rather than by time.

    Returns shares in [0, 1]: ``tied_pairs`` (consecutive interactions of a user with equal
    timestamps), ``tied_interactions`` (interactions sharing their second with another of the
    same user), ``users_with_ties``, and ``tied_last`` (users whose last interaction, the
    leave-last-out test item, shares its timestamp with the one before).
    """
    ordered = order_interactions(ratings)
    users, stamps = ordered["user_id"].to_numpy(), ordered["timestamp"].to_numpy()
    same_user = users[1:] == users[:-1]
    tied = same_user & (stamps[1:] == stamps[:-1])
    in_tie = np.zeros(len(users), dtype=bool)
    in_tie[1:] |= tied
    in_tie[:-1] |= tied
    last = np.r_[~same_user, True]  # the last row of each user
    tied_last = in_tie & last & np.r_[False, tied]
    n_users = int(last.sum())
    return {
        "tied_pairs": float(tied.sum() / max(same_user.sum(), 1)),
        "tied_interactions": float(in_tie.mean()) if len(users) else 0.0,
        "users_with_ties": float(pd.Series(in_tie).groupby(users).any().mean()) if n_users else 0.0,
        "tied_last": float(tied_last.sum() / max(n_users, 1)),
    }


@dataclass(frozen=True, eq=False)
class Sequences(Interactions):
    """:class:`Interactions` that remember the order: ``items[u]`` holds user row u's item
    columns (int64), oldest first. Every model accepts it; sequential models require it."""

    items: tuple[np.ndarray, ...] = ()

    @classmethod
    def from_frame(  # type: ignore[override]  # no value or column options: ids and time only
        cls, frame: pd.DataFrame, catalogue: Catalogue | None = None
    ) -> Sequences:
        """Sequences (ordered by :func:`order_interactions`) plus their users x items matrix."""
        catalogue = catalogue or Catalogue.from_frames(frame)
        ordered = order_interactions(frame)
        rows = catalogue.user_index(ordered["user_id"].to_numpy())
        cols = catalogue.item_index(ordered["item_id"].to_numpy())
        bounds = np.searchsorted(rows, np.arange(catalogue.n_users + 1))  # rows are sorted
        items = tuple(cols[bounds[u] : bounds[u + 1]] for u in range(catalogue.n_users))
        matrix = Interactions.from_frame(ordered, catalogue).matrix
        return cls(matrix, catalogue, items)

    def lengths(self) -> np.ndarray:
        """(n_users,) number of interactions of each user."""
        return np.array([len(s) for s in self.items], dtype=np.int64)


@dataclass(frozen=True)
class SequenceSplit:
    """Leave-last-out on one catalogue: ``test`` = each user's last item, ``valid`` = the one
    before, ``train`` = the rest (a :class:`Sequences`), ``history`` = train + valid (what a
    model may read when it predicts the test item)."""

    train: Sequences
    valid: Interactions
    history: Sequences
    test: Interactions
    train_df: pd.DataFrame
    valid_df: pd.DataFrame
    test_df: pd.DataFrame


def sequence_split(ratings: pd.DataFrame) -> SequenceSplit:
    """Leave-last-out per user (``splits.leave_k_out`` twice; its tie rule is ours).

    Users with fewer than three interactions keep them all in train and are not evaluated.
    """
    _check_columns(ratings, "user_id", "item_id", "timestamp")
    short = ratings.groupby("user_id")["user_id"].transform("size").to_numpy() < 3
    history_df, test_df = leave_k_out(ratings[~short], k=1, how="last")
    train_df, valid_df = leave_k_out(history_df, k=1, how="last")
    history_df = pd.concat([history_df, ratings[short]])
    train_df = pd.concat([train_df, ratings[short]])
    catalogue = Catalogue.from_frames(ratings)
    return SequenceSplit(
        train=Sequences.from_frame(train_df, catalogue),
        valid=Interactions.from_frame(valid_df, catalogue),
        history=Sequences.from_frame(history_df, catalogue),
        test=Interactions.from_frame(test_df, catalogue),
        train_df=train_df,
        valid_df=valid_df,
        test_df=test_df,
    )


def reorder_training(
    split: SequenceSplit, *, ties_only: bool = True, seed: int = 0
) -> SequenceSplit:
    """The same split with the order of each user's *training* items drawn at random.

    ``ties_only``: only items sharing a timestamp swap places (the tie rule replaced by chance);
    otherwise each training history is shuffled as a whole (no order left). The validation and
    test items, and which items each part holds, are unchanged, so a model trained on the result
    is compared with the original user by user on the same targets. ``history`` is the reordered
    training history followed by the validation item; the frames' timestamps are renumbered in
    the new order.
    """
    rng = np.random.default_rng(seed)
    train_df = split.train_df.iloc[rng.permutation(len(split.train_df))]
    if not ties_only:
        train_df = train_df.assign(timestamp=0)  # one tie per user: the shuffled order stays
    train_df = order_interactions(train_df)
    train_df = train_df.assign(timestamp=np.arange(len(train_df)))
    valid_df = split.valid_df.assign(timestamp=len(train_df) + np.arange(len(split.valid_df)))
    catalogue = split.train.catalogue
    return replace(
        split,
        train=Sequences.from_frame(train_df, catalogue),
        history=Sequences.from_frame(pd.concat([train_df, valid_df]), catalogue),
        train_df=train_df,
        valid_df=valid_df,
    )
