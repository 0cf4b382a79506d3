"""Every recommender of the course side by side, each list with its faithful reasons: the
explorer artefact behind the service's page (:mod:`recsys_lib.production.explorer`).

    folder = build_artefact("build/artefacts/als")        # ALS, plus folder / "explorer"
    show = Showcase.load(folder / "explorer", Recommender.load(folder))
    show.user_view(196)              # history, each model's top 10 with reasons, hits, nDCG@10
    show.cold_user([50, 181])        # text and hybrid lists for someone no model has seen
    show.cold_film("Moon Rescue (2026)", ["Sci-Fi"], "A crew ...")   # who would be shown it

Models: popularity, ALS (the served :class:`~recsys_lib.production.serving.Recommender`),
EASE, text (the mean of the history's sentence embeddings, ranked by dot product, as the quick
start's text model), the hybrid (1 - w) z(ALS) + w z(text) of
:func:`recsys_lib.models.hybrid.blend`, and, when built with ``sequence=True``, chapter 6's
SASRec trained on each user's train items in time order (listed as absent otherwise).

**Faithful reasons.** Each personal model's score is an exact sum of one term per history item
h, and the reasons are the largest terms (chapter 9, "plausible is not faithful"):

- ALS: score(u, i) = sum_h c_uh y_i^T W_u y_h (:func:`recsys_lib.models.mf.als_history_terms`);
  the terms sum to ALS's user vector recomputed from the item factors, which can differ
  slightly from the served one (its last update was the items').
- EASE: score(u, i) = sum_h B[h, i].
- text: score(u, i) = sum_h cos(e_h, e_i) / |H_u| (unit embeddings e).
- hybrid: the z-score is affine in the raw scores, so
  z(u, i) = sum_h (c_hi - mean_j c_hj) / std, and the hybrid's term for h is
  (1 - w) of ALS's centred term / ALS's std plus w of text's / text's std.

Popularity is not personal: its "reason" is the item's train count. SASRec's score is no sum
over the history, so its reasons are measured instead: the items (among the latest
``max_length`` it reads) whose removal from the sequence lowers the score most.

The artefact is one ``arrays.npz`` and a ``manifest.json`` holding the SHA-256 of the arrays and
of the ALS artefact it was built beside; :meth:`Showcase.load` refuses a copy that matches
neither. No pickle anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.course.choices import HYBRID_WEIGHTS
from recsys_lib.data.movielens import file_digest
from recsys_lib.evaluation.metrics import ndcg_at_k
from recsys_lib.linalg import normalize_rows
from recsys_lib.models.hybrid import normalize_scores
from recsys_lib.models.mf import als_fold_in, als_history_terms
from recsys_lib.production.serving import (
    ARRAYS_FILE,
    MANIFEST_FILE,
    ArtefactError,
    Recommender,
    _as_plain_array,
    load_checked_arrays,
)
from recsys_lib.retrieval.topk import check_k, top_k

if TYPE_CHECKING:
    from recsys_lib.data.interactions import Catalogue, Interactions
    from recsys_lib.data.movielens import MovieLens
    from recsys_lib.data.splits import BenchmarkData
    from recsys_lib.models.mf import ALS

FORMAT_NAME = "recsys-lib-explorer"
FORMAT_VERSION = 1
#: The explorer part lives in this sub-folder of the ALS artefact.
EXPLORER_FOLDER = "explorer"
#: The hybrid's text-weight grid, chapter 4's (:data:`recsys_lib.course.choices.HYBRID_WEIGHTS`).
BLEND_WEIGHTS = tuple(HYBRID_WEIGHTS["full"])
#: Chapter 4's grid for the ridge penalty of the text -> factors map.
RIDGE_ALPHAS = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0)
#: The choices-file key of a recorded hybrid text weight (read when present).
HYBRID_CHOICE = "hybrid_weight"
GENRE_SEPARATOR = "|"
SEQUENCE_PREFIX = "sequence__"
#: Held while the text encoder or the sequence network is first built: both import
#: transformers, whose lazy imports fail when two threads run them at once.
_BUILD_LOCK = threading.Lock()
MAX_LIKED = 100
MAX_QUERY = 100

MODEL_LABELS = {
    "popularity": "Popularity",
    "als": "ALS",
    "ease": "EASE",
    "text": "Text",
    "hybrid": "Hybrid",
    "sequence": "SASRec",
}
REASON_RULES = {
    "popularity": "not personal: ranked by how many users interacted with the item in train",
    "als": "the history items with the largest terms of ALS's exact split of the score, "
    "score = sum over history items h of c·yᵢᵀ·Wᵤ·yₕ (chapter 9); the terms add up to the "
    "user vector recomputed from the item factors, a little off the served score",
    "ease": "the history items h with the largest EASE weights B[h, i]; the score is their sum",
    "text": "the history items whose text is closest to the item; the score is the mean of "
    "those cosines",
    "hybrid": "the history items with the largest terms of (1 − w)·z(ALS) + w·z(text): each "
    "model's term, centred and divided by the spread of this user's scores",
    "sequence": "a transformer's score is no sum over the history, so its reasons are measured: "
    "the items (among the latest it reads) whose removal from the sequence lowers the score "
    "most; the terms are those drops and need not add up to the score",
}
SHORT_RULES = {
    "popularity": "not personal: how many users had it in train",
    "als": "reasons: the largest terms of ALS's exact score split",
    "ease": "reasons: the largest EASE weights B[h, i] (score = their sum)",
    "text": "reasons: the closest history texts (score = mean cosine)",
    "hybrid": "reasons: the largest terms of (1 − w)·z(ALS) + w·z(text)",
    "sequence": "reasons: the items whose removal lowers the score most",
}
#: Chapter 6's SASRec settings (full run), used when the explorer is built with a sequence model.
SEQUENCE_SETTINGS = {"dim": 64, "layers": 2, "heads": 2, "dropout": 0.2, "max_length": 50,
                     "epochs": 20, "batch_size": 128, "lr": 0.003}  # fmt: skip


# ----------------------------------------------------------------------------- building
def _items_table(data: MovieLens, item_ids: np.ndarray) -> pd.DataFrame:
    items = data.items.set_index("item_id").reindex(item_ids)
    items.index.name = "item_id"
    items = items.reset_index()
    items["title"] = items["title"].fillna(pd.Series(item_ids.astype(str))).astype(str)
    items["genres"] = [g if isinstance(g, (list, tuple)) else [] for g in items["genres"]]
    if "description" not in items:
        items["description"] = ""
    if "year" not in items:
        items["year"] = np.nan
    return items


def _history_arrays(train_df: pd.DataFrame, train: Interactions) -> tuple[np.ndarray, ...]:
    """Each user's train items sorted by time (oldest first; ties in row order, as
    :func:`recsys_lib.models.sequential.order_interactions`): indptr, item columns, times."""
    catalogue = train.catalogue
    rows = catalogue.user_index(train_df["user_id"].to_numpy())
    cols = catalogue.item_index(train_df["item_id"].to_numpy())
    times = train_df["timestamp"].to_numpy(dtype=np.int64)
    order = np.lexsort((np.arange(len(rows)), times, rows))  # as Sequences.from_frame orders
    indptr = np.zeros(catalogue.n_users + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    return np.cumsum(indptr), cols[order].astype(np.int64), times[order]


def _hybrid_weight(
    als: ALS,
    data: BenchmarkData,
    item_text: np.ndarray,
    als_params: dict[str, Any],
    *,
    seed: int,
    key: str,
) -> tuple[float, str]:
    """(weight, where it came from): a recorded choice, else the quick start's validation pick."""
    from recsys_lib.course.choices import read_choice

    stored = read_choice(HYBRID_CHOICE, smoke=False, seed=seed, dataset=key)
    if stored is not None:
        return float(stored["value"]), f"recsys_lib.course.choices ({stored.get('chapter', '?')})"
    from recsys_lib.models.base import FactorModel
    from recsys_lib.models.hybrid import blend_weight_curve
    from recsys_lib.models.mf import ALS
    from recsys_lib.retrieval.similarity import user_profiles

    als_fit = ALS(seed=seed, **als_params).fit(data.fit)
    text_fit = FactorModel(user_profiles(data.fit, item_text), item_text).fit(data.fit)
    curve = blend_weight_curve(als_fit, text_fit, data.valid, BLEND_WEIGHTS)
    weight = float(curve.loc[curve["ndcg@10"].idxmax(), "weight"])
    return weight, (
        f"none recorded in recsys_lib.course.choices: chosen on validation (fit/valid carved "
        f"from train) over chapter 4's grid {list(BLEND_WEIGHTS)}, as build_quickstart does"
    )


def build_showcase(
    als_folder: str | os.PathLike[str],
    data: MovieLens,
    split: BenchmarkData,
    als: ALS,
    *,
    seed: int = 42,
    dataset: str = "movielens-100k",
    als_params: dict[str, Any] | None = None,
    encoder: Any = None,
    sequence: bool | dict[str, Any] = False,
) -> Path:
    """Fit what the explorer page shows beside a saved ALS artefact; write ``als_folder/explorer``.

    ``data``: the dataset (MovieLens or own data); ``split``: its benchmark split; ``als``: the
    ALS model the artefact in ``als_folder`` was saved from (fitted on ``split.train``);
    ``als_params``: its parameters, reused to choose the hybrid weight on validation;
    ``encoder``: a :class:`~recsys_lib.text.embeddings.TextEncoder` (default: the course's
    MiniLM on CPU, through the embedding cache); ``sequence``: also fit SASRec on the train
    sequences (True: chapter 6's settings, :data:`SEQUENCE_SETTINGS`; a dict overrides some of
    them). Returns the explorer folder.
    """
    import recsys_lib
    from recsys_lib.course.choices import read_choice
    from recsys_lib.data.owndata import dataset_key, is_movielens, item_template
    from recsys_lib.models.base import Popularity
    from recsys_lib.models.coldstart import RidgeMapping, select_ridge_alpha, warm_item_columns
    from recsys_lib.models.mf import EASE
    from recsys_lib.text.descriptions import item_descriptions

    als_folder = Path(als_folder)
    als_manifest = json.loads((als_folder / MANIFEST_FILE).read_text())
    train = split.train
    catalogue = train.catalogue
    if als._require_fitted().shape != train.shape:
        raise ValueError("als must be fitted on split.train (the catalogues differ).")
    key = dataset_key(data)
    items = _items_table(data, catalogue.item_ids)
    template = item_template(data)
    if encoder is None:
        from recsys_lib.text.embeddings import TextEncoder

        encoder = TextEncoder("default", device="cpu")
    texts = item_descriptions(items, template).tolist()
    item_text = normalize_rows(encoder.encode(texts, show_progress=False))
    params = dict(als_params or {})
    arrays: dict[str, np.ndarray] = {
        "item_ids": _as_plain_array(catalogue.item_ids),  # text ids as unicode, never objects
        "titles": items["title"].to_numpy().astype(str),
        "genres": np.array([GENRE_SEPARATOR.join(map(str, g)) for g in items["genres"]], dtype=str),
        "popularity": Popularity().fit(train).counts_.astype(np.float32),
        "item_text": item_text.astype(np.float32),
    }
    hist_indptr, hist_items, hist_times = _history_arrays(split.train_df, train)
    arrays |= {"history_indptr": hist_indptr, "history_items": hist_items,
               "history_times": hist_times}  # fmt: skip
    test = split.test.matrix.tocsr()
    arrays |= {"test_indptr": test.indptr.astype(np.int64),
               "test_items": test.indices.astype(np.int64)}  # fmt: skip
    stored = read_choice("ease", smoke=False, seed=seed, dataset=key)
    ease_reg = float(stored["value"]["regularization"]) if stored else EASE().regularization
    ease_source = (f"recsys_lib.course.choices ({stored.get('chapter', '?')})" if stored
                   else "library default (no choice recorded for this dataset)")  # fmt: skip
    try:
        arrays["ease_weights"] = EASE(ease_reg).fit(train).weights_.astype(np.float32)
        ease_note = None
    except MemoryError as err:
        ease_note = f"EASE skipped: {err}"
    weight, weight_source = _hybrid_weight(als, split, item_text, params, seed=seed, key=key)
    warm = warm_item_columns(train)
    item_factors = als.item_factors
    assert item_factors is not None  # set by fit
    alphas = select_ridge_alpha(item_text[warm], item_factors[warm], RIDGE_ALPHAS, seed=seed)
    ridge_alpha = float(alphas["alpha"].iloc[0])
    mapping = RidgeMapping(ridge_alpha).fit(item_text[warm], item_factors[warm])
    arrays |= {"ridge_coef": mapping.coef_.astype(np.float32),
               "ridge_x_mean": mapping.x_mean_.astype(np.float32),
               "ridge_y_mean": mapping.y_mean_.astype(np.float32)}  # fmt: skip
    sequence_entry = None
    if sequence:
        overrides = sequence if isinstance(sequence, dict) else {}
        state, sequence_entry = _fit_sequence(split.train_df, catalogue, overrides, seed)
        arrays |= {f"{SEQUENCE_PREFIX}{name}": value for name, value in state.items()}
    times = split.train_df["timestamp"]
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "als_sha256": als_manifest["sha256"],
        "provenance": {
            "dataset": str(dataset),
            "dataset_key": key,
            "movielens": is_movielens(data),
            "split": f"recommenders' stratified split, 75% of each user's interactions to train, "
            f"seed {seed}; the other 25% are the held-out test items",
            "n_users": int(catalogue.n_users),
            "n_items": int(catalogue.n_items),
            "n_train": int(train.nnz),
            "n_test": int(split.test.nnz),
            "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "library_version": recsys_lib.__version__,
            "times_are_unix_seconds": bool(times.min() >= 10**8),
        },
        "models": {
            "popularity": {"label": "Popularity"},
            "als": {
                "label": "ALS",
                "params": {
                    **params,
                    "regularization": als.regularization,
                    "alpha": als.alpha,
                    "factors": als.factors,
                },
                "params_source": "chapter 3's full-run choice on MovieLens "
                "(recsys_lib.course.pipeline.DEFAULT_ALS_PARAMS), as make serve's ALS",
            },
            "ease": {
                "label": "EASE",
                "params": {"regularization": ease_reg},
                "params_source": ease_source,
                "note": ease_note,
            },
            "text": {
                "label": "Text",
                "encoder": getattr(encoder, "model_name", "default"),
                "encoder_sha256": getattr(encoder, "weights_hash", None),
                "template": template,
            },
            "hybrid": {
                "label": "Hybrid",
                "params": {"weight": weight, "normalization": "zscore"},
                "params_source": weight_source,
            },
            "cold_film": {
                "ridge_alpha": ridge_alpha,
                "params_source": f"chosen on held-out warm items over chapter 4's "
                f"grid {list(RIDGE_ALPHAS)} (select_ridge_alpha)",
            },
        },  # fmt: skip
        "absent": {}
        if sequence_entry
        else {
            "sequence": "not built: `build-artefact --sequence` also fits chapter 6's SASRec "
            "on the train sequences",
        },
    }
    if sequence_entry:
        manifest["models"]["sequence"] = sequence_entry
    return _save(als_folder / EXPLORER_FOLDER, arrays, manifest)


def _fit_sequence(
    train_df: pd.DataFrame, catalogue: Catalogue, overrides: dict[str, Any], seed: int
) -> tuple[Any, ...]:
    """SASRec fitted on the train sequences; (its weights as numpy arrays, manifest entry)."""
    from recsys_lib.data.sequences import Sequences
    from recsys_lib.models.sequential import SASRec
    from recsys_lib.text.finetune import TrainConfig

    unknown = set(overrides) - set(SEQUENCE_SETTINGS)
    if unknown:
        raise ValueError(f"sequence settings {sorted(unknown)} are unknown; use "
                         f"{sorted(SEQUENCE_SETTINGS)}.")  # fmt: skip
    st = {**SEQUENCE_SETTINGS, **overrides}
    config = TrainConfig(epochs=st["epochs"], batch_size=st["batch_size"], lr=st["lr"],
                         warmup_ratio=0.0, max_length=st["max_length"], eval_every=None,
                         patience=None, seed=seed, device="cpu", progress=False)  # fmt: skip
    model = SASRec(dim=st["dim"], layers=st["layers"], heads=st["heads"], dropout=st["dropout"],
                   config=config).fit(Sequences.from_frame(train_df, catalogue))  # fmt: skip
    state = {k: v.detach().cpu().numpy() for k, v in model.net_.state_dict().items()}
    assert model.fit_seconds_ is not None  # set by fit
    entry = {"label": "SASRec", "params": st, "fit_seconds": round(model.fit_seconds_, 1),
             "params_source": "chapter 6's settings, trained for a fixed number of epochs on "
             "each user's train interactions in time order (no early stopping)"}  # fmt: skip
    return state, entry


def _save(target: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> Path:
    """arrays.npz + manifest.json (with the arrays' SHA-256), written to a sibling then renamed."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with open(staging / ARRAYS_FILE, "wb") as handle:
            np.savez(handle, **cast("dict[str, Any]", arrays))
        manifest = {**manifest, "sha256": file_digest(staging / ARRAYS_FILE, "sha256"),
                    "arrays": {n: {"dtype": str(a.dtype), "shape": list(a.shape)}
                               for n, a in arrays.items()}}  # fmt: skip
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# ----------------------------------------------------------------------------- serving
def _default_encoder(model: str, sha256: str | None) -> Any:
    """The encoder the artefact was built with, on CPU; refuses other weights."""
    from recsys_lib.text.embeddings import TextEncoder

    encoder = TextEncoder(model, device="cpu")
    if sha256 and encoder.weights_hash != sha256:
        raise ArtefactError(
            f"the text encoder {model!r} has weights {encoder.weights_hash[:12]}..., but the "
            f"explorer artefact was built with {sha256[:12]}...; rebuild the artefact."
        )
    return encoder


class Showcase:
    """The explorer artefact, loaded and verified: answers the page's questions.

    Build with :func:`build_showcase`, open with :meth:`load`. ``encoder_factory(model, sha256)``
    makes the text encoder used for new films (default: the course's MiniLM, loaded on first
    use in a background-safe way).
    """

    def __init__(
        self,
        recommender: Recommender,
        arrays: dict[str, np.ndarray],
        manifest: dict[str, Any],
        encoder_factory: Callable[[str, str | None], Any] | None = None,
    ) -> None:
        self.rec = recommender
        self.manifest = manifest
        self.item_ids = arrays["item_ids"]
        if not np.array_equal(self.item_ids, recommender.item_ids):
            raise ArtefactError("the explorer artefact's items differ from the ALS artefact's.")
        self.titles = arrays["titles"]
        self.genres = [g.split(GENRE_SEPARATOR) if g else [] for g in arrays["genres"].tolist()]
        self.popularity = arrays["popularity"].astype(np.float64)
        self.item_text = arrays["item_text"].astype(np.float32)
        self.ease = arrays.get("ease_weights")
        n_users, n_items = recommender.n_users, recommender.n_items
        self.history = sp.csr_matrix(
            (arrays["history_times"], arrays["history_items"], arrays["history_indptr"]),
            shape=(n_users, n_items),
        )  # data = timestamps; indices in time order (not sorted by column)
        self.test = sp.csr_matrix(
            (np.ones(len(arrays["test_items"]), dtype=np.float32), arrays["test_items"],
             arrays["test_indptr"]), shape=(n_users, n_items),
        )  # fmt: skip
        self.ridge = (arrays["ridge_coef"].astype(np.float64),
                      arrays["ridge_x_mean"].astype(np.float64),
                      arrays["ridge_y_mean"].astype(np.float64))  # fmt: skip
        models = manifest["models"]
        self.weight = float(models["hybrid"]["params"]["weight"])
        self.als_reg = float(models["als"]["params"]["regularization"])
        self.als_alpha = float(models["als"]["params"]["alpha"])
        self.models = [m for m in MODEL_LABELS if m != "ease" or self.ease is not None]
        self._sequence_state = {name[len(SEQUENCE_PREFIX) :]: value for name, value in arrays.items()
                                if name.startswith(SEQUENCE_PREFIX)}  # fmt: skip
        if "sequence" not in models or not self._sequence_state:
            self.models.remove("sequence")
        self._sequence_net = None
        self._sequence_lock = threading.Lock()
        self._encoder_factory = encoder_factory or _default_encoder
        self._encoder = None
        self._encoder_lock = threading.Lock()
        self._user_str = recommender.user_ids.astype(str)
        self._user_order = np.argsort(self._user_str, kind="stable")
        self._titles_lower = np.char.lower(self.titles.astype(str))
        self._text64 = self.item_text.astype(np.float64)  # float64 copies: exact sums of terms
        self._y64 = recommender.item_factors.astype(np.float64)

    # ----------------------------------------------------------------- persistence
    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        recommender: Recommender,
        als_sha256: str | None = None,
        encoder_factory: Callable[[str, str | None], Any] | None = None,
    ) -> Showcase:
        """Read and verify ``folder`` (format, version, checksum, and, when ``als_sha256`` is
        given, that it was built beside that ALS artefact); raises ArtefactError."""
        folder = Path(folder)
        manifest_path, arrays_path = folder / MANIFEST_FILE, folder / ARRAYS_FILE
        if not manifest_path.is_file() or not arrays_path.is_file():
            raise ArtefactError(
                f"{folder} holds no explorer artefact; rebuild the artefact with "
                "`python -m recsys_lib.production.service build-artefact DIR`."
            )
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ArtefactError(f"{manifest_path} is not valid JSON ({err}); rebuild it.") from err
        if (
            manifest.get("format") != FORMAT_NAME
            or manifest.get("format_version") != FORMAT_VERSION
        ):
            raise ArtefactError(
                f"{manifest_path} is not a {FORMAT_NAME} manifest of version {FORMAT_VERSION}; "
                "rebuild the artefact with this recsys_lib version."
            )
        if als_sha256 is not None and manifest.get("als_sha256") != als_sha256:
            raise ArtefactError(
                f"{folder} was built beside another ALS artefact (sha256 "
                f"{str(manifest.get('als_sha256'))[:12]}..., served {als_sha256[:12]}...); "
                "rebuild both with build-artefact."
            )
        arrays = load_checked_arrays(arrays_path, manifest.get("sha256"), "rebuild the artefact")
        return cls(recommender, arrays, manifest, encoder_factory)

    # ----------------------------------------------------------------- helpers
    def _item(self, col: int) -> dict[str, Any]:
        return {"item_id": self.item_ids[col].item(), "title": str(self.titles[col]),
                "genres": self.genres[col]}  # fmt: skip

    def _history_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.history.indptr[row], self.history.indptr[row + 1]
        return self.history.indices[start:stop], self.history.data[start:stop]

    def _user_row(self, user_id: Any) -> int:
        return self.rec._user_row(user_id)

    def _liked_cols(self, item_ids: Sequence[Any]) -> np.ndarray:
        if isinstance(item_ids, (str, bytes)) or not isinstance(item_ids, Sequence):
            raise TypeError(f"item_ids must be a list of item ids, got {type(item_ids).__name__}.")
        if not 1 <= len(item_ids) <= MAX_LIKED:
            raise ValueError(
                f"item_ids must hold 1 to {MAX_LIKED} liked items, got {len(item_ids)}."
            )
        kind = self.item_ids.dtype.kind
        parsed: list[Any] = []
        for raw in item_ids:
            if kind in "iu":
                try:
                    parsed.append(int(str(raw).strip()))
                except ValueError:
                    raise ValueError(
                        f"item_ids must be integers for this artefact, got {raw!r}."
                    ) from None
            else:
                parsed.append(str(raw))
        cols = self.rec._item_rows(parsed)
        return np.unique(cols)  # a film liked twice counts once

    # ----------------------------------------------------------------- the models
    def _raw_scores(self, model: str, cols: np.ndarray, user_vec: np.ndarray | None) -> np.ndarray:
        """One user's raw scores over every item; ``cols``: history columns; ``user_vec``:
        ALS's user vector (served, or folded in for a new user)."""
        if model == "popularity":
            return self.popularity.copy()
        if model == "als":  # float32, exactly as Recommender.recommend computes it
            assert user_vec is not None  # the callers fold one in for ALS
            return (self.rec.item_factors @ user_vec.astype(np.float32)).astype(np.float64)
        if model == "ease":
            assert self.ease is not None  # "ease" is only offered when its weights were saved
            return np.asarray(self.ease[cols].astype(np.float64).sum(0))
        if model == "text":
            if cols.size == 0:
                return np.zeros(len(self.item_ids))
            return np.asarray(self._text64 @ self._text64[cols].mean(0))
        if model == "sequence":
            return np.asarray(self._sequence_logits([cols])[0])
        if model == "hybrid":
            als = normalize_scores(self._raw_scores("als", cols, user_vec)[None])[0]
            text = normalize_scores(self._raw_scores("text", cols, user_vec)[None])[0]
            return np.asarray((1.0 - self.weight) * als + self.weight * text)
        raise ValueError(f"model must be one of {self.models}, got {model!r}.")

    def _terms(self, model: str, cols: np.ndarray, items: np.ndarray, conf: float) -> np.ndarray:
        """(len(items), len(cols)): each history item's term in each item's score; rows sum to
        the score (ALS: the score of the user vector recomputed from the item factors)."""
        if model == "ease":
            assert self.ease is not None  # "ease" is only offered when its weights were saved
            return np.asarray(self.ease[np.ix_(cols, items)].T.astype(np.float64))
        if model == "sequence":  # leave-one-out over the items the transformer reads
            length = int(self.manifest["models"]["sequence"]["params"]["max_length"])
            window = np.arange(max(0, len(cols) - length), len(cols))
            full = self._sequence_logits([cols])[0]
            without = self._sequence_logits([np.delete(cols, j) for j in window])
            out = np.zeros((len(items), len(cols)))
            out[:, window] = (full[items][None, :] - without[:, items]).T
            return out
        text, y = self._text64, self._y64
        if model == "text":
            return np.asarray(text[items] @ text[cols].T / max(len(cols), 1))
        parts = als_history_terms(y, cols, np.full(len(cols), conf), self.als_reg)  # (f, h)
        if model == "als":
            return np.asarray(y[items] @ parts)
        if model == "hybrid":
            # z(s_i) = (s_i - mean_j s_j) / std_j s_j and s_i = sum_h c_hi, so the term of h is
            # (c_hi - mean_j c_hj) / std; the means over all items are one product each
            als_spread = max(float((y @ parts.sum(1)).std()), 1e-12)
            als = (y[items] - y.mean(0)) @ parts / als_spread
            history = text[cols]
            text_spread = max(float((text @ history.mean(0)).std()), 1e-12)
            cosines = (text[items] - text.mean(0)) @ history.T / len(cols) / text_spread
            return np.asarray((1.0 - self.weight) * als + self.weight * cosines)
        raise ValueError(f"model {model!r} has no history decomposition.")

    def _sequence_logits(self, sequences: list[np.ndarray]) -> np.ndarray:
        """SASRec's next-item scores (len(sequences), n_items) after each item-column sequence
        (oldest first); the network is rebuilt from the saved weights on first use."""
        import torch

        from recsys_lib.models.sequential import _Net, pad_sequences

        params = self.manifest["models"]["sequence"]["params"]
        if self._sequence_net is None:  # built once; the lock only guards that
            with self._sequence_lock, _BUILD_LOCK:
                if self._sequence_net is None:
                    net = _Net.build("causal", len(self.item_ids), params["max_length"],
                                     params["dim"], params["layers"], params["heads"],
                                     params["dropout"], None)  # fmt: skip
                    net.load_state_dict({k: torch.from_numpy(np.array(v))
                                         for k, v in self._sequence_state.items()})  # fmt: skip
                    self._sequence_net = net.eval()
        tokens = torch.as_tensor(pad_sequences(sequences, params["max_length"]))
        net = self._sequence_net
        assert net is not None  # built above
        with torch.inference_mode():
            last = net.hidden(tokens)[:, -1]
            return net.item_logits(last).double().numpy()

    def _ranked(
        self, model: str, cols: np.ndarray, user_vec: np.ndarray | None, k: int, n_reasons: int,
        test_cols: np.ndarray | None, conf: float,
    ) -> dict[str, Any]:  # fmt: skip
        """One model's top-k for one user (history ``cols`` excluded), with reasons and hits."""
        scores = self._raw_scores(model, cols, user_vec)
        scores[cols] = -np.inf
        top, values = top_k(scores[None], k)
        top, values = top[0][top[0] >= 0], values[0][top[0] >= 0]
        terms = (
            None if model == "popularity" or cols.size == 0 else self._terms(model, cols, top, conf)
        )
        hits = set(test_cols.tolist()) if test_cols is not None else set()
        items = []
        for pos, col in enumerate(top.tolist()):
            entry = {"rank": pos + 1, **self._item(col), "score": float(values[pos]),
                     "hit": col in hits}  # fmt: skip
            if terms is None:
                entry["because"] = []
                entry["reason"] = f"{int(self.popularity[col])} users interacted with it in train"
            else:
                row = terms[pos]
                total = float(row.sum())
                best = np.argsort(-row, kind="stable")[:n_reasons]
                entry["because"] = [
                    {**self._item(int(cols[b])), "term": float(row[b]),
                     "share": float(row[b] / total) if total > 0 and model != "sequence"
                     else None}
                    for b in best if row[b] > 0
                ]  # fmt: skip
                entry["terms_sum"] = total
                entry["reason"] = (
                    "because you liked " + ", ".join(b["title"] for b in entry["because"])
                    if entry["because"]
                    else "no history item pushed it up"
                )
            items.append(entry)
        rule = SHORT_RULES[model] + (f", w = {self.weight:g}" if model == "hybrid" else "")
        out: dict[str, Any] = {
            "model": model,
            "label": MODEL_LABELS[model],
            "rule": rule,
            "items": items,
        }
        if test_cols is not None:
            out["hits"] = int(sum(e["hit"] for e in items))
            out["ndcg@10"] = self._ndcg(top, test_cols) if test_cols.size else None
        return out

    def _ndcg(self, top: np.ndarray, test_cols: np.ndarray) -> float:
        relevant = sp.csr_matrix(
            (np.ones(len(test_cols), dtype=np.float32), test_cols, [0, len(test_cols)]),
            shape=(1, len(self.item_ids)),
        )
        ranked = np.full((1, 10), -1, dtype=np.int64)
        ranked[0, : min(10, len(top))] = top[:10]
        return float(ndcg_at_k(ranked, relevant, 10))

    # ----------------------------------------------------------------- requests
    def search_users(self, query: str = "", limit: int = 20) -> list[dict[str, Any]]:
        """Users whose id contains ``query`` (exact match first, then prefix, then the rest,
        each by id), with their train and test counts."""
        query = _check_query(query)
        limit = check_k(limit, 200, " (users per search)")
        ids = self._user_str
        order = self._user_order
        if query:
            exact = order[ids[order] == query]
            prefix = order[np.char.startswith(ids[order], query) & (ids[order] != query)]
            rest = order[(np.char.find(ids[order], query) > 0)]
            order = np.concatenate([exact, prefix, rest])
        if self.rec.user_ids.dtype.kind in "iu" and not query:
            order = np.argsort(self.rec.user_ids, kind="stable")
        n_train, n_test = np.diff(self.history.indptr), np.diff(self.test.indptr)
        return [{"user_id": self.rec.user_ids[r].item(), "n_train": int(n_train[r]),
                 "n_test": int(n_test[r])} for r in order[:limit]]  # fmt: skip

    def search_items(self, query: str = "", limit: int = 20) -> list[dict[str, Any]]:
        """Items whose title contains ``query`` (case-insensitive; titles starting with it
        first, then by popularity), for picking liked films."""
        query = _check_query(query).lower()
        limit = check_k(limit, 200, " (items per search)")
        lower = self._titles_lower
        found = np.flatnonzero(np.char.find(lower, query) >= 0) if query else np.arange(len(lower))
        starts = np.char.startswith(lower[found], query)
        order = np.lexsort((-self.popularity[found], ~starts))
        return [{**self._item(int(c)), "n_train": int(self.popularity[c])}
                for c in found[order][:limit]]  # fmt: skip

    def user_view(
        self, user_id: Any, k: int = 10, n_reasons: int = 3, n_history: int = 50
    ) -> dict[str, Any]:
        """One user: recent train history (newest first), held-out test items, and each model's
        top-k with reasons, hits (test items in the list) and nDCG@10 against the test items."""
        k = check_k(k, 50, " (list length on the page)")
        n_reasons = check_k(n_reasons, 10, " (reasons per item)")
        row = self._user_row(user_id)
        cols, times = self._history_of(row)
        test_cols = self.test.indices[self.test.indptr[row] : self.test.indptr[row + 1]]
        conf = 1.0 + self.als_alpha
        user_vec = self.rec.user_factors[row]
        lists = [
            self._ranked(m, cols, user_vec, k, n_reasons, test_cols, conf) for m in self.models
        ]
        recent = np.argsort(-times, kind="stable")[:n_history]
        return {
            "user_id": self.rec.user_ids[row].item(),
            "n_train": int(len(cols)),
            "n_test": int(len(test_cols)),
            "history": [{**self._item(int(cols[i])), "time": int(times[i])} for i in recent],
            "test_items": [self._item(int(c)) for c in test_cols],
            "lists": lists,
        }

    def cold_user(self, item_ids: Sequence[Any], k: int = 10, n_reasons: int = 3) -> dict[str, Any]:
        """A user no model was trained on, known only by the items they liked: the text list
        (mean of the liked items' embeddings) and the hybrid (ALS folded in, blended with text),
        each with reasons. The same path serves ``POST /explorer/api/cold-user``."""
        k = check_k(k, 50, " (list length on the page)")
        cols = self._liked_cols(item_ids)
        user_vec = als_fold_in(self.rec.item_factors, cols, self.als_reg, self.als_alpha)
        conf = 1.0 + self.als_alpha
        return {
            "liked": [self._item(int(c)) for c in cols],
            "lists": [
                self._ranked(m, cols, user_vec, k, n_reasons, None, conf)
                for m in ("text", "hybrid")
            ],  # fmt: skip
        }

    def _encoder_now(self) -> Any:
        with self._encoder_lock:
            if self._encoder is None:
                text = self.manifest["models"]["text"]
                with _BUILD_LOCK:
                    self._encoder = self._encoder_factory(text["encoder"],
                                                          text.get("encoder_sha256"))  # fmt: skip
            return self._encoder

    def warm_up(self) -> None:
        """Build the sequence network and load the text encoder now (seconds on a CPU), so the
        first user and the first new film are answered quickly."""
        if "sequence" in self.models:
            self._sequence_logits([np.zeros(1, dtype=np.int64)])
        self._encoder_now()

    def _ranks_of(self, scores: np.ndarray) -> np.ndarray:
        """For each user u, the rank a new item scored ``scores[u]`` would take among the
        user's unseen items by ALS (1 = first), in blocks of 1,024 users."""
        ranks = np.empty(self.rec.n_users, dtype=np.int64)
        for start in range(0, self.rec.n_users, 1024):
            block = np.arange(start, min(start + 1024, self.rec.n_users))
            known = self.rec.user_factors[block] @ self.rec.item_factors.T
            known[self.rec.seen[block].nonzero()] = -np.inf
            ranks[block] = 1 + (known > scores[block, None].astype(np.float32)).sum(1)
        return ranks

    def describe_new_item(
        self, title: str, genres: Sequence[str], description: str
    ) -> tuple[Any, ...]:
        """The text a new item is encoded from, with the catalogue's template; and a note."""
        from recsys_lib.text.descriptions import item_descriptions

        template = self.manifest["models"]["text"]["template"]
        frame = pd.DataFrame({"item_id": [0], "title": [title], "genres": [list(genres)],
                              "description": [description], "year": [np.nan]})  # fmt: skip
        text = item_descriptions(frame, template).iloc[0]
        note = f"encoded with this catalogue's template {template!r}"
        if description and "{description}" not in template:
            text = f"{text} {description}"
            note += " plus the description (the catalogue's own texts have none)"
        return text, note

    def cold_film(
        self, title: str, genres: Sequence[str] = (), description: str = "", n_users: int = 10
    ) -> dict[str, Any]:
        """A new item: its text embedding mapped to ALS factors by chapter 4's ridge map, then
        scored against every user. Returns the encoded text, the most similar catalogue items
        by text, how many users' top 10 it would enter, and the ``n_users`` users in whose
        lists of unseen items it would rank highest (by rank, then score)."""
        title, genres, description = _check_film(title, genres, description)
        n_users = check_k(n_users, 100, " (users listed)")
        text, note = self.describe_new_item(title, genres, description)
        emb = normalize_rows(self._encoder_now().encode([text], show_progress=False))[0]
        coef, x_mean, y_mean = self.ridge
        factors = (emb.astype(np.float64) - x_mean) @ coef + y_mean
        scores = self.rec.user_factors.astype(np.float64) @ factors  # (n_users,)
        rank = self._ranks_of(scores)
        order = np.lexsort((self._user_str, -scores, rank))[:n_users]
        sims = self.item_text @ emb
        nearest = np.argsort(-sims, kind="stable")[:5]
        users = []
        for r in order.tolist():
            cols, times = self._history_of(r)
            recent = cols[np.argsort(-times, kind="stable")[:3]]
            users.append({"user_id": self.rec.user_ids[r].item(), "score": float(scores[r]),
                          "rank": int(rank[r]),
                          "recent": [str(self.titles[c]) for c in recent]})  # fmt: skip
        return {
            "text": text,
            "note": note,
            "similar_items": [{**self._item(int(c)), "cosine": float(sims[c])} for c in nearest],
            "reach": int((rank <= 10).sum()),
            "median_rank": float(np.median(rank)),
            "n_users": int(self.rec.n_users),
            "users": users,
        }

    def provenance(self) -> dict[str, Any]:
        """Where the artefact came from: dataset, split, fit time, library version, every
        model's parameters and their source, and what is absent."""
        return {
            **self.manifest["provenance"],
            "models": {m: self.manifest["models"][m] for m in self.models},
            "cold_film": self.manifest["models"]["cold_film"],
            "absent": {**self.manifest.get("absent", {}),
                       **({"ease": self.manifest["models"]["ease"]["note"]}
                          if self.ease is None else {})},
            "rules": {m: REASON_RULES[m] for m in self.models},
            "sha256": self.manifest["sha256"],
            "als_sha256": self.manifest["als_sha256"],
        }  # fmt: skip


def _check_query(query: Any) -> str:
    if not isinstance(query, str):
        raise TypeError(f"q must be text, got {type(query).__name__}.")
    if len(query) > MAX_QUERY:
        raise ValueError(f"q must be at most {MAX_QUERY} characters, got {len(query)}.")
    return query.strip()


def _check_film(title: Any, genres: Any, description: Any) -> tuple[str, list[str], str]:
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"title must be a non-empty text, got {title!r}.")
    if len(title) > 200:
        raise ValueError(f"title must be at most 200 characters, got {len(title)}.")
    if isinstance(genres, str):
        genres = [g for g in (p.strip() for p in genres.replace(",", "|").split("|")) if g]
    genres = list(genres)
    if len(genres) > 20 or any(not isinstance(g, str) or len(g) > 50 for g in genres):
        raise ValueError("genres must be at most 20 texts of at most 50 characters each.")
    if not isinstance(description, str) or len(description) > 2000:
        raise ValueError("description must be a text of at most 2000 characters.")
    return title.strip(), [g.strip() for g in genres if g.strip()], description.strip()
