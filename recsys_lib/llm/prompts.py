"""Prompts: user histories, profile requests, pointwise questions and listwise prompts with
lettered candidates, as chat-template token ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.llm.loading import LABELS, LLM


# ------------------------------------------------------------------------------ prompts
def user_history(
    train_ratings: pd.DataFrame,
    items: pd.DataFrame,
    user_id: int | str,
    n: int = 10,
    min_rating: int = 4,
) -> pd.DataFrame:
    """The user's ``n`` most recent train films rated >= ``min_rating`` (newest first), with
    columns item_id, title, genres (a list). Never reads anything but ``train_ratings``."""
    mine = train_ratings[(train_ratings["user_id"] == user_id)
                         & (train_ratings["rating"] >= min_rating)]  # fmt: skip
    mine = mine.sort_values(["timestamp", "item_id"], ascending=[False, True]).head(n)
    meta = items.set_index("item_id").loc[mine["item_id"], ["title", "genres"]]
    return meta.reset_index()


def history_text(titles: list[str], genres: list[list[str]] | None = None) -> str:
    """The line "A viewer liked these films:" and one line per film (with its genres when given)."""
    if not titles:
        raise ValueError("the history is empty: pick users with at least one liked film.")
    tags: list[list[str]] = genres or [[] for _ in titles]
    lines = [f"- {t}" + (f" ({', '.join(g)})" if genres else "")
             for t, g in zip(titles, tags, strict=True)]  # fmt: skip
    return "A viewer liked these films:\n" + "\n".join(lines) + "\n"


def profile_prompt(titles: list[str], genres: list[list[str]] | None = None) -> str:
    """Ask for a one-sentence taste profile. With ``genres`` (retrieved from the catalogue) the
    prompt also restricts the answer to those genres: the grounding technique of chapter 7."""
    ask = "Describe this viewer's taste in films in one short sentence."
    if genres:
        allowed = sorted({g for gs in genres for g in gs})
        ask += f" Use only these genres: {', '.join(allowed)}. Do not name other films."
    return history_text(titles, genres) + ask


def pointwise_question(candidate: str) -> str:
    """The per-candidate part of the pointwise prompt (after the history)."""
    return f'Would this viewer enjoy the film "{candidate}"? Answer Yes or No.'


def listwise_prompt(history: str, candidates: list[str]) -> str:
    """History, then the candidates labelled A, B, ... and the question (LlamaRec style)."""
    if not 1 <= len(candidates) <= len(LABELS):
        raise ValueError(
            f"listwise prompts take 1 to {len(LABELS)} candidates, got {len(candidates)}."
        )
    listed = "\n".join(f"{label}. {c}" for label, c in zip(LABELS, candidates, strict=False))
    return (f"{history}Candidate films:\n{listed}\n"
            "Which candidate will the viewer enjoy most? Answer with its letter.")  # fmt: skip


def pointwise_parts(
    lm: LLM, history: str, candidates: list[str]
) -> tuple[list[int], list[list[int]]]:
    """Token ids of the shared prefix (chat head + history) and of each candidate's suffix
    (question + chat tail). The prompt of candidate i is exactly ``prefix + suffixes[i]``."""
    head, tail = lm.chat_parts()
    prefix = lm.encode(head + history)
    return prefix, [lm.encode(pointwise_question(c) + tail) for c in candidates]


def chat_ids(lm: LLM, message: str) -> list[int]:
    """Token ids of one user message in the model's chat format, ready for the answer."""
    head, tail = lm.chat_parts()
    return lm.encode(head + message + tail)


def positives_named(
    pairs: pd.DataFrame, texts: Mapping[Any, str], titles: Mapping[Any, str]
) -> np.ndarray:
    """Which pairs are positives whose film is named in their own user's text: bool (n_pairs,).

    ``pairs``: user_id, item_id, label; ``texts``: user id -> the text the model reads about
    that user (a description, a history prompt); ``titles``: item id -> title. A training
    positive named in its own text is a leak: the model can learn to find the title instead of
    the taste. Built from the profile part of a profile/target split (chapter 5), none is.
    """
    missing = {"user_id", "item_id", "label"} - set(pairs.columns)
    if missing:
        raise ValueError(f"pairs lacks the column(s) {sorted(missing)}.")
    out = np.zeros(len(pairs), dtype=bool)
    for r, (user, item, label) in enumerate(pairs[["user_id", "item_id", "label"]].itertuples(
            index=False)):  # fmt: skip
        if label == 1:
            text, title = texts.get(user), titles.get(item)
            out[r] = bool(text) and bool(title) and str(title) in str(text)
    return out


def pair_histories(
    pairs: pd.DataFrame, part: pd.DataFrame, items: pd.DataFrame, n: int = 5
) -> tuple[list[str], list[str], dict[Any, str]]:
    """The texts of a click-pair set's yes/no prompts: (history per pair, title per pair,
    history per user).

    Each user's history is :func:`history_text` of their ``n`` latest liked films in ``part``
    only (a user with none reads "(none)"), so ``part`` decides what the model may see: the
    profile part of fit for training pairs, fit for validation, train for test (chapter 5's
    leak-safe construction; check with :func:`positives_named`).
    """
    missing = {"user_id", "item_id"} - set(pairs.columns)
    if missing:
        raise ValueError(f"pairs lacks the column(s) {sorted(missing)}.")
    titles = items.set_index("item_id")["title"]
    unknown = pd.Index(pairs["item_id"].unique()).difference(titles.index)
    if len(unknown):
        raise ValueError(
            f"{len(unknown)} pair item id(s) are not in items, e.g. {list(unknown[:3])}."
        )
    by_user = {}
    for user in pairs["user_id"].unique():
        liked = user_history(part, items, user, n=n)["title"].tolist()
        by_user[user] = history_text(liked or ["(none)"])
    return ([by_user[u] for u in pairs["user_id"]], titles.loc[pairs["item_id"]].tolist(),
            by_user)  # fmt: skip
