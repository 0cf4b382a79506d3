"""Listwise scores that do not depend on the order the candidates are shown in.

A small model asked "which of A..T will the viewer enjoy most?" puts much of its answer on the
first labels whatever they name (position bias). Showing each user's candidates in several
random orders and averaging the scores each candidate gets (a permutation-averaged verbaliser,
as in Hou et al. 2023's re-ranking over shuffled orders) removes the part that follows the
position; subtracting the mean score of each displayed position first (the *position prior*,
estimated on the shuffled runs, no labels) removes it faster.

    runs = listwise_orders(lm, histories, candidates, n_orders=4, seed=0)
    prior = position_prior(runs.scores, runs.shown)
    averaged = permutation_average(runs.scores, runs.shown, prior)   # (n_users, c)
    order_stability(runs.scores, runs.shown, prior)                  # split-half rank correlation
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from recsys_lib.llm.cache import CacheStats, cached_rows, score_cache
from recsys_lib.llm.loading import LABELS, LLM
from recsys_lib.llm.prompts import chat_ids, listwise_prompt
from recsys_lib.llm.scoring import last_token_logits


@dataclass
class ListwiseRuns:
    """Listwise scores of the same candidates under several presentation orders.

    scores: float64 (n_orders, n_users, c), in the candidates' own order; shown: int
    (n_orders, n_users, c), the displayed position (0 = label A) each candidate had."""

    scores: np.ndarray
    shown: np.ndarray


def presentation_orders(n_users: int, c: int, n_orders: int, seed: int,
                        first_as_given: bool = False) -> np.ndarray:  # fmt: skip
    """Displayed position of each candidate: int (n_orders, n_users, c), every row a
    permutation of 0..c-1 drawn with ``seed``; with ``first_as_given`` order 0 is the given one
    (candidate j shown at position j)."""
    if n_orders < 1:
        raise ValueError(f"n_orders must be at least 1, got {n_orders}.")
    rng = np.random.default_rng(seed)
    shown = np.argsort(rng.random((n_orders, n_users, c)), axis=2)
    if first_as_given:
        shown[0] = np.arange(c)
    return shown


def listwise_orders(lm: LLM, histories: list[str], candidates: list[list[str]], n_orders: int,
                    seed: int, *, first_as_given: bool = False, cache: str | None = "default",
                    stats: CacheStats | None = None, batch_size: int = 8) -> ListwiseRuns:  # fmt: skip
    """Verbaliser scores of every user's candidates shown in ``n_orders`` orders
    (:func:`presentation_orders`), mapped back to the candidates' own order.

    ``cache``: ``"default"`` stores each prompt's label logits on disk under the model file's
    sha256 and the prompt (:func:`recsys_lib.llm.cache.score_cache`), None never does.
    """
    c = len(candidates[0])
    if not 1 <= c <= len(LABELS) or any(len(row) != c for row in candidates):
        raise ValueError(f"every user needs the same number of candidates, 1 to {len(LABELS)}.")
    shown = presentation_orders(len(histories), c, n_orders, seed, first_as_given)
    labels = [lm.answer_token(label) for label in LABELS[:c]]
    if len(set(labels)) != c:
        raise ValueError(
            "the tokenizer maps two labels to one token; the verbaliser needs one each."
        )
    prompts = []
    for o in range(n_orders):
        for u, (history, cands) in enumerate(zip(histories, candidates, strict=True)):
            at = np.argsort(shown[o, u])  # at[p] = candidate displayed at position p
            prompts.append(chat_ids(lm, listwise_prompt(history, [cands[j] for j in at])))
    store = score_cache(lm, "listwise", labels, c, root=cache)

    def compute(rows: Iterable[int]) -> np.ndarray:
        return last_token_logits(
            lm.model, [prompts[r] for r in rows], labels, batch_size, lm.device
        )

    by_position = cached_rows(store, prompts, compute, stats).reshape(n_orders, len(histories), c)
    scores = np.take_along_axis(by_position, shown, axis=2)  # candidate j read at shown[j]
    return ListwiseRuns(scores, shown)


def position_prior(scores: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Mean score at each displayed position over all users and orders: float64 (c,). On
    shuffled orders every film visits every position equally often, so what is left is bias."""
    scores, shown = np.asarray(scores, dtype=np.float64), np.asarray(shown)
    if scores.shape != shown.shape:
        raise ValueError(f"scores {scores.shape} and shown {shown.shape} differ.")
    c = scores.shape[-1]
    total = np.bincount(shown.ravel(), weights=scores.ravel(), minlength=c)
    return total / np.maximum(np.bincount(shown.ravel(), minlength=c), 1)


def permutation_average(scores: np.ndarray, shown: np.ndarray,
                        prior: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Each candidate's score averaged over the orders: float64 (n_users, c); with ``prior``
    (:func:`position_prior`) its displayed position's mean is subtracted first."""
    scores = np.asarray(scores, dtype=np.float64)
    if prior is not None:
        scores = scores - np.asarray(prior)[np.asarray(shown)]
    return np.asarray(scores.mean(axis=0))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of the Spearman correlation between ``a`` and ``b`` (n_rows, c); rows
    where either side is constant are left out (nan when all are)."""
    from scipy.stats import rankdata

    a, b = (
        np.atleast_2d(np.asarray(a, dtype=np.float64)),
        np.atleast_2d(np.asarray(b, dtype=np.float64)),
    )
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} differ.")
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    ok = den > 0
    return float(np.mean((ra * rb).sum(1)[ok] / den[ok])) if ok.any() else float("nan")


def order_stability(scores: np.ndarray, shown: np.ndarray,
                    prior: np.ndarray | None = None) -> dict[str, float]:  # fmt: skip
    """How much the ranking depends on the order shown, from runs of >= 2 orders.

    ``single``: rank correlation between the (calibrated) scores of two different orders,
    averaged over consecutive pairs; ``split_half``: between the averages of the even and the
    odd orders (needs >= 2 orders); ``averaged``: the Spearman-Brown projection of
    ``split_half`` to the average of all orders, i.e. the expected rank correlation between two
    independent runs of :func:`permutation_average` with this many orders (``split_half``
    itself when it is <= 0: averaging cannot make unrelated halves agree).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if n < 2:
        raise ValueError(f"order stability needs at least 2 orders, got {n}.")
    calibrated = scores if prior is None else scores - np.asarray(prior)[np.asarray(shown)]
    single = np.mean([rank_correlation(calibrated[o], calibrated[o + 1]) for o in range(n - 1)])
    half = rank_correlation(calibrated[0::2].mean(0), calibrated[1::2].mean(0))
    projected = 2 * half / (1 + half) if half > 0 else half  # no projection below 0
    return {"single": float(single), "split_half": float(half), "averaged": float(projected)}


def position_correlation(scores: np.ndarray, shown: np.ndarray) -> float:
    """Rank correlation between how early a candidate was shown and its score, averaged over
    the orders: > 0 when earlier labels get higher scores (position bias), about 0 without."""
    scores, shown = np.asarray(scores, dtype=np.float64), np.asarray(shown)
    return float(np.mean([rank_correlation(scores[o], -shown[o]) for o in range(len(scores))]))
