"""A recommender as a small serving object: saved artefacts in, raw ids out.

    rec = Recommender.from_model(als, train)           # any fitted model with factors
    rec.save("artefacts/als")                            # arrays.npz + manifest.json, atomically
    rec = Recommender.load("artefacts/als")              # no pickle anywhere
    rec.recommend(196, k=10)                             # raw item ids, train items excluded
    rec.recommend_many([196, 186], k=10)                 # (2, 10) raw item ids
    rec.similar_items(50, k=5)                           # raw item ids, the item itself excluded
    rec.explain(196, rec.recommend(196, 3))              # "because you liked ..."

What is saved: user and item ids (the id <-> row mappings), user and item factors
(float32), the items each user saw in train as a CSR (``indptr``, ``indices``) so they are
excluded at serving time, optional item embeddings (text space) and optional item names.
Arrays go into one ``.npz`` written with plain numpy (read back with
``allow_pickle=False``); a JSON manifest holds the format name, its version, the counts, the
name, dtype and shape of every array, SHA-256 digests of the id lists and the SHA-256 of the
array file. Load checks all of them against the arrays, and the seen matrix's structure.

What the checksum protects against: accidental damage (a truncated copy, a flipped bit, an
edited array whose manifest was not updated). It is no proof of origin: whoever can write the
folder can edit the arrays and recompute every digest. For that, set the environment variable
``RECSYS_ARTEFACT_KEY`` (a secret) where artefacts are saved and where they are loaded: the
manifest then carries an HMAC-SHA256 signature, and with the key set, load refuses an unsigned
artefact or one whose signature does not match. ``Recommender.integrity`` says which case held.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from recsys_lib.data.interactions import Catalogue, Interactions
from recsys_lib.data.movielens import file_digest
from recsys_lib.linalg import normalize_rows
from recsys_lib.retrieval.topk import check_k, exclude_entries, top_k
from recsys_lib.runtime import setting
from recsys_lib.validation import NON_NEGATIVE_INT, POSITIVE_INT, check_array, check_params

if TYPE_CHECKING:
    from recsys_lib.models.base import Model

#: A raw user or item id: an integer or a string.
Id = int | str | np.integer

log = logging.getLogger(__name__)

FORMAT_NAME = "recsys-lib-recommender"
#: The environment variable holding the secret that signs and verifies manifests.
ARTEFACT_KEY_ENV = "RECSYS_ARTEFACT_KEY"
FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "manifest.json"


class UnknownIdError(KeyError):
    """A user or item id is not in the catalogue the recommender was built on."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ArtefactError(RuntimeError):
    """Saved artefacts are missing, corrupt, or of a format version this code cannot read."""


def _as_plain_array(ids: ArrayLike) -> np.ndarray:
    """Ids as a numeric or fixed-width unicode array (never object dtype: no pickle needed)."""
    array = np.asarray(ids)
    if array.dtype == object:
        array = array.astype(str)
    if array.dtype.kind not in "iuU":
        raise TypeError(f"ids must be integers or strings, got dtype {array.dtype}.")
    return array


def _artefact_key(key: str | bytes | None) -> bytes | None:
    """The signing key: ``key`` when given, else ``$RECSYS_ARTEFACT_KEY`` (unset or empty: None)."""
    if key is None:
        key = setting(ARTEFACT_KEY_ENV)
    if key is None:
        return None
    return key if isinstance(key, bytes) else key.encode("utf-8")


def _signature(manifest: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the manifest (everything but its signature) in canonical JSON."""
    body = {name: value for name, value in manifest.items() if name != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def _id_digest(ids: np.ndarray) -> str:
    """SHA-256 of an id list's values (dtype and order included)."""
    ids = np.ascontiguousarray(ids)
    return hashlib.sha256(str(ids.dtype).encode() + b"\0" + ids.tobytes()).hexdigest()


def _check_arrays(manifest: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
    """Refuse arrays that do not match the manifest's metadata or are not a valid recommender:
    the same array names, dtypes and shapes, counts, id-list digests, a well-formed seen CSR
    and finite factors. Catches an array edited (and the checksum recomputed) without the
    manifest's metadata following."""

    def refuse(why: str) -> NoReturn:
        raise ArtefactError(
            f"{folder.name}: {why}; the arrays do not match their manifest (edited or damaged). "
            "Re-save the recommender with Recommender.save(dir)."
        )

    declared = manifest.get("arrays")
    if not isinstance(declared, dict) or set(declared) != set(arrays):
        refuse(f"arrays {sorted(arrays)} differ from the manifest's {sorted(declared or {})}")
    for name, array in arrays.items():
        meta = declared[name]
        if not isinstance(meta, dict) or meta.get("dtype") != str(array.dtype):
            refuse(f"{name} has dtype {array.dtype}, the manifest says {meta}")
        if meta.get("shape") != list(array.shape):
            refuse(f"{name} has shape {list(array.shape)}, the manifest says {meta.get('shape')}")
    n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
    counts = {"n_users": n_users, "n_items": n_items,
              "factors": int(arrays["item_factors"].shape[1]) if arrays["item_factors"].ndim == 2
              else None, "n_seen": len(arrays["seen_indices"])}  # fmt: skip
    for name, value in counts.items():
        if name in manifest and manifest[name] != value:
            refuse(f"{name} is {value}, the manifest says {manifest[name]}")
    for name in ("user_ids", "item_ids"):
        digest = manifest.get("ids_sha256", {}).get(name)
        if digest is not None and digest != _id_digest(arrays[name]):
            refuse(f"{name} differ from the id list the manifest recorded")
    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    if (
        indptr.shape != (n_users + 1,)
        or (indptr.size and (indptr[0] != 0 or indptr[-1] != len(indices)))
        or bool((np.diff(indptr) < 0).any())
        or bool(((indices < 0) | (indices >= n_items)).any())
    ):
        refuse("the seen matrix (seen_indptr, seen_indices) is not a valid users x items CSR")
    for name in ("user_factors", "item_factors", "item_embeddings"):
        if name in arrays and not np.isfinite(arrays[name]).all():
            refuse(f"{name} holds NaN or infinite values")


def load_checked_arrays(arrays_path: Path, sha256: str | None, fix: str) -> dict[str, np.ndarray]:
    """The arrays of an artefact's ``.npz`` file, after its sha256 matched the manifest's.

    Raises :class:`ArtefactError` naming the file, and ``fix`` (what the reader should do),
    when the checksum differs (the file changed or was truncated) or the file cannot be read.
    Never unpickles.
    """
    if file_digest(arrays_path, "sha256") != sha256:
        raise ArtefactError(
            f"{Path(arrays_path).name} of {Path(arrays_path).parent.name} does not match its "
            f"manifest checksum (file changed or truncated); {fix}."
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError) as error:
        raise ArtefactError(
            f"{Path(arrays_path).name} of {Path(arrays_path).parent.name} cannot be read "
            f"({error}); {fix}."
        ) from None


class Recommender:
    """Answers recommendation requests with raw ids from factors and train histories.

    user_ids: (n_users,) raw ids, index = row of ``user_factors`` (n_users, f).
    item_ids: (n_items,) raw ids, index = row of ``item_factors`` (n_items, f).
    seen: users x items CSR (bool pattern) of the train interactions, excluded from results.
    item_embeddings: optional (n_items, d) text embeddings; when present, ``similar_items``
    and ``explain`` use them by default (``space="text"``), else the item factors.
    item_names: optional (n_items,) strings (titles) used by ``explain``.
    """

    def __init__(
        self,
        user_ids: ArrayLike,
        item_ids: ArrayLike,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        seen: sp.csr_matrix,
        item_embeddings: np.ndarray | None = None,
        item_names: ArrayLike | None = None,
    ) -> None:
        self.user_ids = _as_plain_array(user_ids)
        self.item_ids = _as_plain_array(item_ids)
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        if self.user_factors.ndim != 2 or self.user_factors.shape[0] != n_users:
            raise ValueError(
                f"user_factors must be (n_users={n_users}, f), got {self.user_factors.shape}."
            )
        if self.item_factors.ndim != 2 or self.item_factors.shape[0] != n_items:
            raise ValueError(
                f"item_factors must be (n_items={n_items}, f), got {self.item_factors.shape}."
            )
        if self.user_factors.shape[1] != self.item_factors.shape[1]:
            raise ValueError(
                f"user factors have {self.user_factors.shape[1]} columns but item factors "
                f"{self.item_factors.shape[1]}; they must share the dimension."
            )
        seen = sp.csr_matrix(seen, dtype=bool)
        if seen.shape != (n_users, n_items):
            raise ValueError(
                f"seen must be ({n_users}, {n_items}) users x items, got {seen.shape}."
            )
        seen.sort_indices()
        self.seen = seen
        self.item_embeddings = None
        if item_embeddings is not None:
            emb = np.ascontiguousarray(item_embeddings, dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != n_items:
                raise ValueError(
                    f"item_embeddings must be (n_items={n_items}, d), got {emb.shape}; order "
                    "them by the train catalogue's item columns."
                )
            self.item_embeddings = emb
        self.item_names = None
        if item_names is not None:
            names = np.asarray(item_names).astype(str)
            if names.shape != (n_items,):
                raise ValueError(f"item_names must have {n_items} entries, got {names.shape}.")
            self.item_names = names
        # the library's one id <-> position map (also rejects duplicate ids)
        self.catalogue = Catalogue(self.user_ids, self.item_ids)
        self._unit_cache: dict[str, np.ndarray] = {}
        #: how a loaded artefact was verified ("built in memory" until load sets it)
        self.integrity = "built in memory"

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_model(
        cls,
        model: Model,
        train_interactions: Interactions,
        item_embeddings: np.ndarray | None = None,
        item_names: ArrayLike | pd.Series | None = None,
    ) -> Recommender:
        """Build from a fitted model with ``user_factors``/``item_factors`` and its train set.

        ``item_embeddings`` (n_items, d) and ``item_names`` follow the train catalogue's item
        order; ``item_names`` may also be a Series indexed by raw item id (e.g. titles).
        """
        user_f = getattr(model, "user_factors", None)
        item_f = getattr(model, "item_factors", None)
        if user_f is None or item_f is None:
            raise ValueError(
                f"{type(model).__name__} has no user_factors/item_factors (not fitted, or not a "
                "factor model); serve a factor model such as ALS, PureSVD or FactorModel."
            )
        if not isinstance(train_interactions, Interactions):
            raise TypeError(
                "train_interactions must be the Interactions the model was fitted on, got "
                f"{type(train_interactions).__name__}."
            )
        catalogue = train_interactions.catalogue
        if isinstance(item_names, pd.Series):
            item_names = item_names.reindex(catalogue.item_ids).fillna("").astype(str).to_numpy()
        return cls(
            catalogue.user_ids,
            catalogue.item_ids,
            np.asarray(user_f),
            np.asarray(item_f),
            train_interactions.matrix,
            item_embeddings=item_embeddings,
            item_names=item_names,
        )

    @property
    def n_users(self) -> int:
        return self.catalogue.n_users

    @property
    def n_items(self) -> int:
        return self.catalogue.n_items

    # ----------------------------------------------------------------- lookups
    def _user_rows(self, user_ids: ArrayLike | Sequence[object]) -> np.ndarray:
        """Rows of raw user ids, one catalogue lookup for the whole batch."""
        hint = "unknown users need a cold-start path (e.g. popularity or a text profile)"
        return self._positions(user_ids, "user", hint)

    def _item_rows(self, item_ids: ArrayLike | Sequence[object]) -> np.ndarray:
        """Columns of raw item ids, one catalogue lookup for the whole batch."""
        return self._positions(item_ids, "item", "rebuild the recommender after adding it to train")

    def _positions(self, ids: ArrayLike | Sequence[object], kind: str, hint: str) -> np.ndarray:
        values = np.atleast_1d(np.asarray(ids, dtype=object)).tolist()
        lookup = self.catalogue.user_index if kind == "user" else self.catalogue.item_index
        rows = lookup(values, strict=False)
        if (rows < 0).any():
            size = self.n_users if kind == "user" else self.n_items
            raise UnknownIdError(
                f"{kind} id {values[int(np.argmax(rows < 0))]!r} not in the training catalogue "
                f"({size} {kind}s); {hint}."
            )
        return rows

    def _user_row(self, user_id: object) -> int:
        return int(self._user_rows([_plain(user_id)])[0])

    def _item_row(self, item_id: object) -> int:
        return int(self._item_rows([_plain(item_id)])[0])

    def _check_k(self, k: int) -> int:
        return check_k(k, self.n_items, " (catalogue size)")

    # ----------------------------------------------------------------- requests
    def recommend(self, user_id: Id, k: int = 10) -> np.ndarray:
        """The k best unseen items for one user: raw item ids (k',) best first.

        k' < k only when the user has seen all but fewer than k items.
        """
        k = self._check_k(k)
        row = self._user_row(user_id)
        scores = (self.item_factors @ self.user_factors[row])[None, :]
        cols = top_k(exclude_entries(scores, self.seen[row]), k)[0][0]
        return np.asarray(self.item_ids[cols[cols >= 0]])

    def recommend_many(
        self, user_ids: ArrayLike, k: int = 10, block_size: int = 1024
    ) -> np.ndarray:
        """Top-k unseen items for many users at once: raw item ids (n_users, k).

        Rows are padded with the sentinel -1 (or "" for string ids) where a user has fewer
        than k unseen items. At most ``block_size`` rows of scores exist at a time.
        """
        k = self._check_k(k)
        check_params("recommend_many", {"block_size": (POSITIVE_INT, block_size)})
        rows = self._user_rows(user_ids)
        pad = "" if self.item_ids.dtype.kind == "U" else -1
        out = np.full((len(rows), k), pad, dtype=self.item_ids.dtype)
        for start in range(0, len(rows), block_size):
            block = rows[start : start + block_size]
            scores = self.user_factors[block] @ self.item_factors.T
            cols = top_k(exclude_entries(scores, self.seen[block]), k)[0]
            valid = cols >= 0
            chunk = out[start : start + len(block)]
            chunk[valid] = self.item_ids[cols[valid]]
        return out

    def _unit(self, space: str) -> np.ndarray:
        if space not in self._unit_cache:
            source = self.item_embeddings if space == "text" else self.item_factors
            self._unit_cache[space] = normalize_rows(source)
        return self._unit_cache[space]

    def _space(self, space: str) -> str:
        if space == "auto":
            return "text" if self.item_embeddings is not None else "factors"
        if space not in ("text", "factors"):
            raise ValueError(f"space must be 'auto', 'text' or 'factors', got {space!r}.")
        if space == "text" and self.item_embeddings is None:
            raise ValueError(
                "space='text' needs item embeddings; build with item_embeddings=... or use "
                "space='factors'."
            )
        return space

    def similar_items(self, item_id: Id, k: int = 10, space: str = "auto") -> np.ndarray:
        """The k items most cosine-similar to ``item_id`` (itself excluded): raw ids (k',).

        ``space``: "text" (item embeddings), "factors" (item factors) or "auto" (text when
        embeddings were given).
        """
        k = self._check_k(k)
        row = self._item_row(item_id)
        unit = self._unit(self._space(space))
        scores = unit @ unit[row]
        scores[row] = -np.inf
        cols = top_k(scores[None, :], k)[0][0]
        return np.asarray(self.item_ids[cols[cols >= 0]])

    def history(self, user_id: Id) -> np.ndarray:
        """Raw ids of the items the user interacted with in train (the excluded ones)."""
        row = self._user_row(user_id)
        return np.asarray(
            self.item_ids[self.seen.indices[self.seen.indptr[row] : self.seen.indptr[row + 1]]]
        )

    def explain(self, user_id: Id, item_ids: ArrayLike, space: str = "auto") -> pd.DataFrame:
        """For each item, the user's train item that is most cosine-similar to it.

        Returns one row per item: item_id, because_item_id (always from the user's train
        history), similarity (cosine in ``space``) and a "because you liked ..." sentence.
        """
        row = self._user_row(user_id)
        cols = self._item_rows(item_ids)
        hist = self.seen.indices[self.seen.indptr[row] : self.seen.indptr[row + 1]]
        if hist.size == 0:
            raise ValueError(
                f"user id {user_id!r} has no train items, so there is nothing to explain with."
            )
        unit = self._unit(self._space(space))
        sims = unit[cols] @ unit[hist].T  # (n_items_asked, n_history)
        best = np.argmax(sims, axis=1)  # first maximum: deterministic
        because = hist[best]
        names = self.item_names if self.item_names is not None else self.item_ids.astype(str)
        return pd.DataFrame(
            {
                "item_id": self.item_ids[cols],
                "because_item_id": self.item_ids[because],
                "similarity": sims[np.arange(len(cols)), best].astype(np.float64),
                "reason": [f"because you liked {names[b]}" for b in because],
            }
        )

    # ----------------------------------------------------------------- persistence
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "seen_indptr": self.seen.indptr.astype(np.int64),
            "seen_indices": self.seen.indices.astype(np.int64),
        }
        if self.item_embeddings is not None:
            arrays["item_embeddings"] = self.item_embeddings
        if self.item_names is not None:
            arrays["item_names"] = self.item_names
        return arrays

    def save(
        self,
        directory: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        signing_key: str | bytes | None = None,
    ) -> Path:
        """Write ``arrays.npz`` and ``manifest.json`` into ``directory``; returns it.

        With a signing key (``signing_key``, else ``$RECSYS_ARTEFACT_KEY``) the manifest carries
        an HMAC-SHA256 signature that :meth:`load` verifies with the same key.

        Everything is written into a temporary sibling folder first and renamed into place
        at the end, so a failed save leaves no half-written artefact. An existing directory
        is an error unless ``overwrite=True``.
        """
        target = Path(directory)
        if target.exists() and not overwrite:
            raise FileExistsError(
                f"{target} already exists; pass overwrite=True to replace it, or pick a new path."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            arrays: dict[str, Any] = self._arrays()
            with open(staging / ARRAYS_FILE, "wb") as handle:
                np.savez(handle, **arrays)
            manifest = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "n_users": self.n_users,
                "n_items": self.n_items,
                "factors": int(self.item_factors.shape[1]),
                "embedding_dim": None
                if self.item_embeddings is None
                else int(self.item_embeddings.shape[1]),
                "n_seen": int(self.seen.nnz),
                "arrays": {
                    name: {"dtype": str(a.dtype), "shape": list(a.shape)}
                    for name, a in arrays.items()
                },  # fmt: skip
                "ids_sha256": {
                    "user_ids": _id_digest(self.user_ids),
                    "item_ids": _id_digest(self.item_ids),
                },
                "sha256": file_digest(staging / ARRAYS_FILE, "sha256"),
            }
            key = _artefact_key(signing_key)
            if key is not None:
                manifest["signature"] = {"algorithm": "hmac-sha256",
                                         "value": _signature(manifest, key)}  # fmt: skip
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
            if target.exists():
                backup = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(backup)
                staging.rename(target)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, signing_key: str | bytes | None = None
    ) -> Recommender:
        """Read artefacts written by :meth:`save`: checks format, version, checksum, the
        manifest's metadata against the arrays, and the signature.

        With a key (``signing_key``, else ``$RECSYS_ARTEFACT_KEY``) an unsigned artefact or a
        signature mismatch is refused; without one, the artefact is loaded and a warning says
        that its origin is not verified. ``integrity`` on the result records which case held.
        """
        folder = Path(directory)
        manifest_path, arrays_path = folder / MANIFEST_FILE, folder / ARRAYS_FILE
        if not manifest_path.is_file() or not arrays_path.is_file():
            raise ArtefactError(
                f"{folder} holds no saved recommender (expected {MANIFEST_FILE} and "
                f"{ARRAYS_FILE}); write one with Recommender.save(dir)."
            )
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ArtefactError(
                f"{manifest_path} is not valid JSON ({error}); the save was damaged or the file "
                "was edited. Re-save the recommender with Recommender.save(dir)."
            ) from error
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise ArtefactError(f"{manifest_path} is not a {FORMAT_NAME} manifest.")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtefactError(
                f"{folder} was saved with format version {version}; this code reads version "
                f"{FORMAT_VERSION}. Re-save it with the matching recsys_lib version."
            )
        key = _artefact_key(signing_key)
        signature = manifest.get("signature")
        if key is not None:
            if not isinstance(signature, dict) or "value" not in signature:
                raise ArtefactError(
                    f"{folder.name} is unsigned but {ARTEFACT_KEY_ENV} is set, so only signed "
                    "artefacts are accepted; re-save it with the key set."
                )
            if not hmac.compare_digest(str(signature["value"]), _signature(manifest, key)):
                raise ArtefactError(
                    f"{folder.name}: the manifest's signature does not match (edited, or signed "
                    f"with another key); refused. Re-save it with this {ARTEFACT_KEY_ENV}."
                )
            integrity = "signature verified"
        elif signature is not None:
            integrity = f"signed, but not verified ({ARTEFACT_KEY_ENV} is not set)"
        else:
            integrity = "unsigned (checksum only: catches damage, not deliberate edits)"
        if key is None:
            log.warning("artefact %s: %s", folder.name, integrity)
        arrays = load_checked_arrays(arrays_path, manifest.get("sha256"), "re-save the recommender")
        missing = {"user_ids", "item_ids", "user_factors", "item_factors", "seen_indptr",
                   "seen_indices"} - set(arrays)  # fmt: skip
        if missing:
            raise ArtefactError(f"{folder.name} lacks the array(s) {sorted(missing)}.")
        _check_arrays(manifest, arrays, folder)
        n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
        seen = sp.csr_matrix(
            (np.ones(len(arrays["seen_indices"]), dtype=bool), arrays["seen_indices"],
             arrays["seen_indptr"]),
            shape=(n_users, n_items),
        )  # fmt: skip
        recommender = cls(
            arrays["user_ids"],
            arrays["item_ids"],
            arrays["user_factors"],
            arrays["item_factors"],
            seen,
            item_embeddings=arrays.get("item_embeddings"),
            item_names=arrays.get("item_names"),
        )
        recommender.integrity = integrity
        return recommender


def _plain(value: object) -> object:
    """numpy scalars to Python values so dictionary lookups match."""
    return value.item() if isinstance(value, np.generic) else value


def latency_percentiles(
    seconds: np.ndarray, percentiles: Iterable[float] = (50, 95, 99)
) -> dict[str, float]:
    """Request latencies (seconds, (n,)) -> {"p50_ms": ..., "p95_ms": ..., "p99_ms": ...}."""
    seconds = check_array("seconds", seconds, low=0, hint="latencies are seconds >= 0")
    if seconds.size == 0:
        raise ValueError("no latencies given; time at least one request.")
    percentiles = list(percentiles)
    check_array("percentiles", percentiles, low=0, high=100)
    return {f"p{p}_ms": float(np.percentile(seconds, p) * 1e3) for p in percentiles}


def time_requests(
    fn: Callable[[Any], Any], arguments: Sequence[Any], *, warmup: int = 100
) -> np.ndarray:
    """Call ``fn(a)`` for each a in ``arguments``; return each call's wall time (seconds, (n,)).

    The first ``warmup`` arguments are also called once beforehand, untimed (caches, lazy
    set-up).
    """
    import time

    check_params("time_requests", {"warmup": (NON_NEGATIVE_INT, warmup)})
    arguments = list(arguments)
    for a in arguments[:warmup]:
        fn(a)
    out = np.empty(len(arguments), dtype=np.float64)
    clock = time.perf_counter
    for i, a in enumerate(arguments):
        start = clock()
        fn(a)
        out[i] = clock() - start
    return out
