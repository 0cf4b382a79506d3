"""Matrix factorisation and linear models behind one contract: PureSVD, ALS, BPR, EASE.

All follow :class:`recsys_lib.models.base.Model`: ``fit(Interactions)`` on a users x items matrix,
``score``/``recommend`` for user rows. ALS and BPR wrap ``implicit`` (GPU when
``implicit.gpu.HAS_CUDA``, CPU otherwise); PureSVD uses ``scipy.sparse.linalg.svds``; EASE is
the closed form of Steck (2019).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from recsys_lib.data.interactions import Interactions
from recsys_lib.models.base import FactorScorer, Model
from recsys_lib.validation import (
    BOOL,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    PENALTY_HINT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Interval,
    Options,
    validate_params,
)

GPU = [BOOL, Options({"auto"})]

logger = logging.getLogger(__name__)


def _implicit_gpu(use_gpu: bool | str) -> bool:
    import implicit.gpu

    if use_gpu == "auto":
        return bool(implicit.gpu.HAS_CUDA)
    if use_gpu and not implicit.gpu.HAS_CUDA:
        raise RuntimeError("use_gpu=True but implicit was built without CUDA; use 'auto'.")
    return bool(use_gpu)


def _single_threaded_blas() -> Any:
    """implicit parallelises over users itself; a multi-threaded BLAS underneath only
    oversubscribes the cores (implicit warns about it), so pin BLAS to one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


def _to_numpy(factors: Any) -> np.ndarray:
    return np.asarray(factors.to_numpy() if hasattr(factors, "to_numpy") else factors, np.float32)


class PureSVD(FactorScorer):
    """Truncated SVD of the binary interaction matrix, X ~= U S V^T (Cremonesi et al. 2010).

    ``scaling="sqrt"`` returns user_factors = U sqrt(S), item_factors = V sqrt(S);
    ``scaling="full"`` returns U S and V. Both give the same scores U S V^T.
    ``normalize="item"`` divides each column by sqrt(item count) first, damping popularity.
    Note U^T U = I and V^T V = I hold for SVD's singular vectors — not for ALS factors.
    """

    name = "puresvd"

    @validate_params({"factors": POSITIVE_INT, "scaling": Options({"sqrt", "full"}),
                      "normalize": [None, Options({"item"})], "seed": SEED})  # fmt: skip
    def __init__(
        self, factors: int = 64, scaling: str = "sqrt", normalize: str | None = None, seed: int = 0
    ) -> None:
        super().__init__()
        self.factors, self.scaling, self.normalize, self.seed = factors, scaling, normalize, seed

    def _fit(self, train: Interactions) -> None:
        from scipy.sparse.linalg import svds

        x = train.binary().matrix.astype(np.float64)
        if self.normalize == "item":
            counts = np.asarray(x.sum(0)).ravel()
            x = x @ sp.diags(1.0 / np.sqrt(np.maximum(counts, 1)))
        k = min(self.factors, min(x.shape) - 1)
        v0 = np.random.default_rng(self.seed).random(min(x.shape))
        u, s, vt = svds(x, k=k, v0=v0)
        order = np.argsort(-s)  # svds returns ascending singular values
        u, s, vt = u[:, order], s[order], vt[order]
        self.singular_values_ = s
        self.u_, self.v_ = u, vt.T
        root = np.sqrt(s) if self.scaling == "sqrt" else s
        self.user_factors = (u * root).astype(np.float32)
        item = vt.T * (np.sqrt(s) if self.scaling == "sqrt" else 1.0)
        self.item_factors = item.astype(np.float32)


class ALS(FactorScorer):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through ``implicit``.

    Minimises sum_{u,i} c_ui (p_ui - x_u.y_i)^2 + reg (|x_u|^2 + |y_i|^2) with preference
    p_ui = 1 for observed pairs and confidence c_ui = 1 + alpha * r_ui (r_ui = 1 for binary
    data). ``implicit`` reads its input as the confidence itself, so we pass 1 + alpha * r.
    """

    name = "als"

    @validate_params({"factors": POSITIVE_INT, "regularization": NON_NEGATIVE,
                      "alpha": NON_NEGATIVE, "iterations": POSITIVE_INT, "seed": SEED,
                      "use_gpu": GPU, "binary": BOOL, "use_cg": BOOL},
                     hints={"regularization": PENALTY_HINT})  # fmt: skip
    def __init__(
        self,
        factors: int = 64,
        regularization: float = 1.0,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
        use_gpu: bool | str = "auto",
        binary: bool = True,
        use_cg: bool = True,
    ) -> None:
        super().__init__()
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.use_gpu = iterations, seed, use_gpu
        self.binary, self.use_cg = binary, use_cg

    def confidence(self, train: Interactions) -> sp.csr_matrix:
        """users x items CSR of c_ui = 1 + alpha * r_ui on the observed pairs."""
        m = (train.binary() if self.binary else train).matrix.copy()
        m.data = 1.0 + self.alpha * m.data
        return m

    def _fit(self, train: Interactions) -> None:
        from implicit.als import AlternatingLeastSquares

        gpu = _implicit_gpu(self.use_gpu)
        with _single_threaded_blas():
            kwargs = dict(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                random_state=self.seed,
                use_gpu=gpu,
            )
            if not gpu:
                kwargs["use_cg"] = self.use_cg
            model = AlternatingLeastSquares(**kwargs)
            model.fit(self.confidence(train), show_progress=False)
        self.user_factors = _to_numpy(model.user_factors)
        self.item_factors = _to_numpy(model.item_factors)


def als_history_terms(
    item_factors: np.ndarray,
    history: ArrayLike,
    confidence: ArrayLike,
    regularization: float,
) -> np.ndarray:
    """The per-history-item parts of implicit ALS's user vector: (f, h) float64.

    With item factors Y (n_items, f), the user's history H_u (item columns, (h,)) and their
    confidences c_uj (h,), ALS's user vector is the ridge solution
    x_u = W_u Y^T C_u p_u, W_u = (Y^T Y + Y^T (C_u - I) Y + reg I)^-1, so
    x_u = sum_{j in H_u} c_uj W_u y_j: column j of the result is c_uj W_u y_j and the columns
    sum to x_u. ``y_i @ result`` splits the score of item i into one term per history item.
    """
    history = np.atleast_1d(np.asarray(history, dtype=np.int64))
    conf = np.atleast_1d(np.asarray(confidence, dtype=np.float64))
    if conf.shape != history.shape:
        raise ValueError(
            f"confidence has shape {conf.shape} but history {history.shape}; give one "
            "confidence per history item."
        )
    y = np.asarray(item_factors, dtype=np.float64)
    y_h = y[history]
    a = y.T @ y + y_h.T @ ((conf - 1.0)[:, None] * y_h) + regularization * np.eye(y.shape[1])
    return np.linalg.solve(a, (conf[:, None] * y_h).T)


def als_fold_in(
    item_factors: np.ndarray, history: ArrayLike, regularization: float, alpha: float = 1.0
) -> np.ndarray:
    """ALS's user vector (f,) for a user unknown at training time, from the items they liked.

    The same closed form ALS solves for every user (:func:`als_history_terms`), with binary
    preferences on ``history`` (item columns) and confidence 1 + alpha; the item factors stay
    fixed, so the new user is scored like a trained one without refitting.
    """
    history = np.atleast_1d(np.asarray(history, dtype=np.int64))
    if history.size == 0:
        raise ValueError("history is empty; give at least one liked item column.")
    terms = als_history_terms(item_factors, history, np.full(history.shape, 1.0 + alpha),
                              regularization)  # fmt: skip
    return np.asarray(terms.sum(1))


def explain_als(
    model: ALS, user_row: int, item_cols: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Implicit ALS's exact decomposition of scores into the user's history items.

    Given the item factors Y, ALS's user vector is the ridge solution
    x_u = W_u Y^T C_u p_u with W_u = (Y^T Y + Y^T (C_u - I) Y + reg I)^-1, and p_u is 1 on the
    history H_u and 0 elsewhere, so x_u = sum_{j in H_u} c_uj W_u y_j and

        score(u, i) = y_i . x_u = sum_{j in H_u} c_uj (y_i^T W_u y_j),

    one term per history item j (Hu, Koren & Volinsky 2008, section 5; ``implicit``'s
    ``AlternatingLeastSquares.explain`` computes the same). x_u is recomputed from Y, so the
    scores can differ slightly from ``model.score`` (whose last update was the items').

    user_row: the user's row in the train catalogue; item_cols: (n,) item columns.
    Returns (history_cols (h,), contributions (n, h), scores (n,)), scores = row sums.
    """
    train = model._require_fitted()
    confidence = model.confidence(train)
    if not 0 <= user_row < confidence.shape[0]:
        raise IndexError(f"user row {user_row} out of range for {confidence.shape[0]} users.")
    start, stop = confidence.indptr[user_row], confidence.indptr[user_row + 1]
    history, conf = confidence.indices[start:stop], confidence.data[start:stop]
    _, item_factors = model._require_factors()
    weighted = als_history_terms(item_factors, history, conf, model.regularization)
    items = np.atleast_1d(np.asarray(item_cols, dtype=np.int64))
    contributions = item_factors.astype(np.float64)[items] @ weighted
    return history, contributions, contributions.sum(1)


def numpy_als(
    confidence: sp.csr_matrix,
    user_init: np.ndarray,
    item_init: np.ndarray,
    regularization: float,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Implicit ALS in plain numpy: the closed-form updates, for teaching and for checking.

    confidence: users x items CSR of c_ui (> 0 where observed; unobserved pairs have c = 1,
    p = 0). Each half-step solves, for every user u,
        (Y^T Y + Y^T (C_u - I) Y + reg I) x_u = Y^T C_u p_u
    and then the same for items with the roles swapped.
    """
    x, y = user_init.astype(np.float64), item_init.astype(np.float64)
    c_ui, c_iu = confidence.tocsr(), confidence.T.tocsr()

    def half_step(c: sp.csr_matrix, fixed: np.ndarray, n_rows: int) -> np.ndarray:
        gram = fixed.T @ fixed + regularization * np.eye(fixed.shape[1])
        solved = np.zeros((n_rows, fixed.shape[1]))
        for row in range(n_rows):
            cols = c.indices[c.indptr[row] : c.indptr[row + 1]]
            conf = c.data[c.indptr[row] : c.indptr[row + 1]]
            f = fixed[cols]
            a = gram + f.T @ ((conf - 1.0)[:, None] * f)
            solved[row] = np.linalg.solve(a, f.T @ conf)
        return solved

    for _ in range(iterations):
        x = half_step(c_ui, y, c_ui.shape[0])
        y = half_step(c_iu, x, c_iu.shape[0])
    return x, y


class ExplicitALS(FactorScorer):
    """Rating regression by ALS with weighted-lambda regularisation (Zhou et al. 2008), the
    objective of Spark's ``ALS(implicitPrefs=False)`` (recommenders' published "ALS" row):

        min_{X, Y} sum_{(u,i) observed} (r_ui - x_u.y_i)^2
                   + reg (sum_u n_u |x_u|^2 + sum_i n_i |y_i|^2),

    n_u / n_i = ratings of user u / item i. Only observed cells enter the loss, so it predicts
    *ratings*; ranking by predicted rating is what the published row does. Fit on an
    :class:`Interactions` holding ratings (``value_col="rating"``). Each half-step solves every
    row's ridge system at once (``np.linalg.solve`` on a stack of f x f matrices).
    """

    name = "explicit_als"

    @validate_params({"factors": POSITIVE_INT, "regularization": NON_NEGATIVE,
                      "iterations": POSITIVE_INT, "seed": SEED},
                     hints={"regularization": PENALTY_HINT})  # fmt: skip
    def __init__(
        self, factors: int = 10, regularization: float = 0.05, iterations: int = 20, seed: int = 0
    ) -> None:
        super().__init__()
        self.factors, self.regularization = factors, regularization
        self.iterations, self.seed = iterations, seed

    @staticmethod
    def _half_step(r: sp.csr_matrix, fixed: np.ndarray, reg: float) -> np.ndarray:
        """Solve (sum_{i in row} y_i y_i^T + reg n_row I) x_row = sum_i r_i y_i for every row."""
        n, f = r.shape[0], fixed.shape[1]
        a = np.empty((n, f, f))
        b = np.empty((n, f))
        for row in range(n):  # one small BLAS product per row; the solves are batched below
            span = slice(r.indptr[row], r.indptr[row + 1])
            block = fixed[r.indices[span]]
            a[row] = block.T @ block
            b[row] = r.data[span] @ block
        a += reg * np.maximum(np.diff(r.indptr), 1)[:, None, None] * np.eye(f)
        return np.linalg.solve(a, b[..., None])[..., 0]

    def _fit(self, train: Interactions) -> None:
        r = train.matrix.astype(np.float64).tocsr()
        if r.nnz and r.data.min() == r.data.max():
            logger.warning(
                "ExplicitALS got a matrix whose values are all %s: pass ratings "
                "(Interactions.from_frame(..., value_col='rating')), not binary interactions.",
                r.data[0],
            )
        rng = np.random.default_rng(self.seed)
        y = rng.normal(0.0, 0.1, (r.shape[1], self.factors))
        rt = r.T.tocsr()
        for _ in range(self.iterations):
            x = self._half_step(r, y, self.regularization)
            y = self._half_step(rt, x, self.regularization)
        self.user_factors = x.astype(np.float32)
        self.item_factors = y.astype(np.float32)


class BPR(FactorScorer):
    """Bayesian Personalised Ranking (Rendle et al. 2009) through ``implicit``: maximises
    sum ln sigma(x_u.y_i - x_u.y_j) over (user, seen i, unseen j) triples, minus L2.

    ``num_threads``: implicit's CPU threads (0 = all cores). Its SGD updates shared factors
    from several threads at once, so only ``num_threads=1`` repeats exactly under a seed."""

    name = "bpr"

    @validate_params({"factors": POSITIVE_INT, "learning_rate": POSITIVE,
                      "regularization": NON_NEGATIVE, "iterations": POSITIVE_INT, "seed": SEED,
                      "use_gpu": GPU, "num_threads": NON_NEGATIVE_INT},
                     hints={"regularization": PENALTY_HINT})  # fmt: skip
    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
        use_gpu: bool | str = "auto",
        num_threads: int = 0,
    ) -> None:
        super().__init__()
        self.factors, self.learning_rate = factors, learning_rate
        self.regularization, self.iterations = regularization, iterations
        self.seed, self.use_gpu, self.num_threads = seed, use_gpu, num_threads

    def _fit(self, train: Interactions) -> None:
        from implicit.bpr import BayesianPersonalizedRanking

        with _single_threaded_blas():
            model = BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                iterations=self.iterations,
                random_state=self.seed,
                use_gpu=_implicit_gpu(self.use_gpu),
                **({} if _implicit_gpu(self.use_gpu) else {"num_threads": self.num_threads}),
            )
            model.fit(train.binary().matrix, show_progress=False)
        # implicit appends an item-bias column (user side holds 1s there).
        self.user_factors = _to_numpy(model.user_factors)
        self.item_factors = _to_numpy(model.item_factors)


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else physical memory via sysconf."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class EASE(Model):
    """EASE (Steck 2019): item-item weights B = I - P / diag(P), P = (X^T X + lambda I)^-1,
    so diag(B) = 0; score(u) = x_u B. Dense items x items: O(n_items^2) memory."""

    name = "ease"

    @validate_params({"regularization": NON_NEGATIVE,
                      "dtype": Options({np.float32, np.float64}),
                      "memory_fraction": Interval(float, 0, 1, closed="right")},
                     hints={"regularization": PENALTY_HINT})  # fmt: skip
    def __init__(
        self,
        regularization: float = 250.0,
        dtype: type[np.floating] = np.float32,
        memory_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        self.regularization, self.dtype, self.memory_fraction = (
            regularization,
            dtype,
            memory_fraction,
        )

    def required_bytes(self, n_items: int) -> int:
        """About three dense items x items matrices live at once (Gram, inverse, B)."""
        return 3 * n_items * n_items * np.dtype(self.dtype).itemsize

    def _fit(self, train: Interactions) -> None:
        n_items = train.shape[1]
        need, have = self.required_bytes(n_items), available_memory_bytes()
        if need > self.memory_fraction * have:
            raise MemoryError(
                f"EASE needs about {need / 2**30:.1f} GiB for {n_items:,} items (dense items x "
                f"items), more than {self.memory_fraction:.0%} of the {have / 2**30:.1f} GiB "
                "available. Keep the most popular items only, or use ALS."
            )
        x = train.binary().matrix.astype(self.dtype)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n_items)] += self.regularization
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices(n_items)] = 0.0
        self.weights_ = b.astype(self.dtype)

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._require_fitted().binary().matrix[user_rows] @ self.weights_)
