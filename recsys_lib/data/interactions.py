"""The user x item interaction matrix, with its id <-> index mappings kept beside it.

One orientation everywhere: **rows are users, columns are items** (CSR, one row per user),
which is what ``implicit`` expects since 0.5. Every model in the suite receives an
:class:`Interactions` object, never a bare matrix, so the orientation cannot be mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from recsys_lib.linalg import positions
from recsys_lib.validation import short_repr


@dataclass(frozen=True)
class Catalogue:
    """The fixed universe of user ids and item ids, shared by train, validation and test."""

    user_ids: np.ndarray  # (n_users,) raw ids, index = row
    item_ids: np.ndarray  # (n_items,) raw ids, index = column
    _user_order: np.ndarray = field(init=False, repr=False, compare=False)
    _item_order: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("user_ids", "item_ids"):
            ids = np.asarray(getattr(self, name))
            if len(np.unique(ids)) != len(ids):
                raise ValueError(f"{name} contains duplicates; ids must be unique.")
            object.__setattr__(self, name, ids)
        object.__setattr__(self, "_user_order", np.argsort(self.user_ids, kind="stable"))
        object.__setattr__(self, "_item_order", np.argsort(self.item_ids, kind="stable"))

    @classmethod
    def from_frames(
        cls, *frames: pd.DataFrame, user_col: str = "user_id", item_col: str = "item_id"
    ) -> Catalogue:
        """The sorted union of ids seen in ``frames``."""
        users = np.unique(np.concatenate([f[user_col].to_numpy() for f in frames]))
        items = np.unique(np.concatenate([f[item_col].to_numpy() for f in frames]))
        return cls(users, items)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_index(self, ids: ArrayLike, *, strict: bool = True) -> np.ndarray:
        """Row positions for raw user ids (-1 for unknown ids when ``strict=False``)."""
        return self._lookup(ids, self.user_ids, self._user_order, "user", strict)

    def item_index(self, ids: ArrayLike, *, strict: bool = True) -> np.ndarray:
        """Column positions for raw item ids (-1 for unknown ids when ``strict=False``)."""
        return self._lookup(ids, self.item_ids, self._item_order, "item", strict)

    @staticmethod
    def _lookup(
        ids: ArrayLike, table: np.ndarray, order: np.ndarray, kind: str, strict: bool
    ) -> np.ndarray:
        ids = np.atleast_1d(np.asarray(ids))
        out = positions(table, ids, order)
        if strict and (out < 0).any():
            bad = ids[out < 0][:5].tolist()
            raise KeyError(
                f"{kind} id(s) {short_repr(bad)} not in the catalogue ({len(table)} {kind}s); build the "
                f"Catalogue from all frames, or pass strict=False to get -1 for unknown ids."
            )
        return out


@dataclass(frozen=True)
class Interactions:
    """A users x items CSR matrix (float32) plus the catalogue that names its rows/columns."""

    matrix: sp.csr_matrix
    catalogue: Catalogue

    def __post_init__(self) -> None:
        shape = (self.catalogue.n_users, self.catalogue.n_items)
        if not sp.isspmatrix_csr(self.matrix) or self.matrix.shape != shape:
            raise ValueError(
                f"matrix must be a users x items CSR of shape {shape}, got "
                f"{type(self.matrix).__name__} {self.matrix.shape}. Use Interactions.from_frame."
            )
        bad = ~np.isfinite(self.matrix.data)
        if bad.any():
            row = int(np.searchsorted(self.matrix.indptr, np.flatnonzero(bad)[0], side="right") - 1)
            raise ValueError(
                f"the interaction matrix holds {int(bad.sum())} NaN or infinite value(s) (first "
                f"in the row of user id {self.catalogue.user_ids[row].item()!r}); models would rank "
                "nothing for those users. Drop or fill those rows (ratings.dropna()) first."
            )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        catalogue: Catalogue | None = None,
        *,
        value_col: str | None = None,
        user_col: str = "user_id",
        item_col: str = "item_id",
    ) -> Interactions:
        """Build the users x items matrix from a long frame.

        value_col=None gives binary 1.0 entries (implicit feedback); otherwise the column's
        values are used (e.g. ratings). Duplicate (user, item) pairs keep the last value.
        """
        catalogue = catalogue or Catalogue.from_frames(frame, user_col=user_col, item_col=item_col)
        rows = catalogue.user_index(frame[user_col].to_numpy())
        cols = catalogue.item_index(frame[item_col].to_numpy())
        if value_col is None:
            values = np.ones(len(frame), dtype=np.float32)
        else:
            values = frame[value_col].to_numpy(dtype=np.float32)
        # Keep the last value of duplicates rather than summing them.
        keys = rows * catalogue.n_items + cols
        _, last = np.unique(keys[::-1], return_index=True)
        keep = len(keys) - 1 - last
        matrix = sp.csr_matrix(
            (values[keep], (rows[keep], cols[keep])),
            shape=(catalogue.n_users, catalogue.n_items),
            dtype=np.float32,
        )
        matrix.sort_indices()
        return cls(matrix, catalogue)

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.matrix.shape
        return int(rows), int(cols)

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def binary(self) -> Interactions:
        """The same pattern with every stored value set to 1."""
        m = self.matrix.copy()
        m.data[:] = 1.0
        return Interactions(m, self.catalogue)

    def density(self) -> float:
        return self.nnz / float(self.shape[0] * self.shape[1])

    def to_frame(self, value_col: str = "value") -> pd.DataFrame:
        """Back to a long frame with raw ids (user_id, item_id, value)."""
        coo = self.matrix.tocoo()
        return pd.DataFrame(
            {
                "user_id": self.catalogue.user_ids[coo.row],
                "item_id": self.catalogue.item_ids[coo.col],
                value_col: coo.data,
            }
        )


def shared_interactions(
    *frames: pd.DataFrame, value_col: str | None = None
) -> tuple[Interactions, ...]:
    """One :class:`Interactions` per frame, all on one catalogue (the union of their ids),
    so train, validation and test rows/columns line up."""
    catalogue = Catalogue.from_frames(*frames)
    return tuple(Interactions.from_frame(f, catalogue, value_col=value_col) for f in frames)
