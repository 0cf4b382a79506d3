"""Scoring with next-token logits: pointwise and listwise scores, shared-prefix key/value caching,
profiles with a grounding check, per-user ranking loops and the LoRA yes/no click model.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch

    from recsys_lib.text.finetune import TrainConfig, TrainHistory
from recsys_lib.llm.cache import CacheStats, cached_rows
from recsys_lib.llm.loading import GENRE_WORDS, LABELS, LLM
from recsys_lib.llm.prompts import chat_ids, listwise_prompt, pointwise_parts


# ------------------------------------------------------------------------------ scoring
def _right_padded(chunk: list[list[int]], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (batch, longest) long, lengths (batch,)): sequences padded with 0 on the right."""
    import torch

    lengths = torch.tensor([len(q) for q in chunk], device=device)
    ids = torch.zeros((len(chunk), int(lengths.max())), dtype=torch.long, device=device)
    for r, q in enumerate(chunk):
        ids[r, : len(q)] = torch.tensor(q, device=device)
    return ids, lengths


def last_token_logits(model: torch.nn.Module, sequences: list[list[int]], token_ids: list[int],
                      batch_size: int = 16, device: str = "cpu") -> np.ndarray:  # fmt: skip
    """Logits of ``token_ids`` after the last token of each sequence: float64
    (n_sequences, len(token_ids)). Sequences are right-padded per batch; causal attention means
    the padding after a sequence never changes its logits."""
    import torch

    out = np.empty((len(sequences), len(token_ids)))
    with torch.inference_mode():
        for s in range(0, len(sequences), batch_size):
            chunk = sequences[s : s + batch_size]
            ids, lengths = _right_padded([list(s) for s in chunk], device)
            logits = token_logits_at(model, lengths - 1, token_ids, input_ids=ids)
            out[s : s + len(chunk)] = logits.double().cpu().numpy()
    return out


def _plain_output_head(model: Any) -> torch.nn.Linear | None:
    """The output projection when logits are exactly ``hidden @ W.T (+ b)`` (no soft-capping or
    scaling in the model's config), else None."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = getattr(model, "config", None)
    scaled = any(getattr(config, name, None) not in (None, 1.0)
                 for name in ("final_logit_softcapping", "logit_scale", "logits_scaling"))  # fmt: skip
    return head if isinstance(head, torch.nn.Linear) and not scaled else None


def token_logits_at(
    model: Any, positions: torch.Tensor, token_ids: list[int], **inputs: Any
) -> torch.Tensor:
    """Logits of ``token_ids`` at one position per row: tensor (batch, len(token_ids)).

    ``positions``: (batch,) long tensor; ``inputs``: the model's forward arguments. Only the
    needed rows and columns of the vocabulary projection are computed (the transformer body
    runs as usual), which is the same arithmetic as slicing the full logits: a causal LM's
    output head is a plain linear map of each position's last hidden state, so this spares
    (positions x vocabulary) work that scoring never reads (SmolLM2-135M's 49,152-word head
    holds about a fifth of its weights; measured on chapter 7's prompts this cuts the CPU time
    of scoring by 13-26%). Models whose head is not a plain linear map fall back to the full
    logits.
    """
    import torch

    rows = torch.arange(len(positions), device=positions.device)
    cols = torch.as_tensor(token_ids, device=positions.device)
    head = _plain_output_head(model)
    if head is None:
        full: torch.Tensor = model(**inputs).logits[rows, positions][:, cols]
        return full
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    for key in ("cache", "past_key_values"):  # the keyword changed across transformers versions
        if key in inputs and key != _cache_keyword(body):
            inputs[_cache_keyword(body)] = inputs.pop(key)
    last: torch.Tensor = body(**inputs).last_hidden_state[rows, positions]
    logits = last @ head.weight[cols].T
    return logits if head.bias is None else logits + head.bias[cols]


def pointwise_scores(lm: LLM, prefix: list[int], suffixes: list[list[int]], *,
                     shared_prefix: bool = True, batch_size: int = 32) -> np.ndarray:  # fmt: skip
    """logit("Yes") - logit("No") per candidate: float64 (n_candidates,); sigmoid of it is
    P(Yes | Yes or No). ``shared_prefix=False`` is the naive loop (one full prompt each)."""
    yes_no = [lm.answer_token("Yes"), lm.answer_token("No")]
    if not shared_prefix:
        logits = np.vstack([last_token_logits(lm.model, [prefix + s], yes_no, 1, lm.device)
                            for s in suffixes])  # fmt: skip
        return np.asarray(logits[:, 0] - logits[:, 1])
    logits = _prefix_cached_logits(lm.model, prefix, suffixes, yes_no, batch_size, lm.device)
    return np.asarray(logits[:, 0] - logits[:, 1])


def _prefix_cached_logits(
    model: Any,
    prefix: list[int],
    suffixes: list[list[int]],
    token_ids: list[int],
    batch_size: int,
    device: str,
) -> np.ndarray:
    """Run ``prefix`` once, then every suffix from a copy of its key/value cache."""

    def read(lengths: Any, **inputs: Any) -> Any:
        return token_logits_at(model, lengths - 1, token_ids, **inputs)

    return _prefix_cached(model, prefix, suffixes, read, batch_size, device)


def _prefix_cached(
    model: Any,
    prefix: Sequence[int],
    suffixes: Sequence[Sequence[int]],
    read: Callable[..., Any],
    batch_size: int,
    device: str,
) -> np.ndarray:
    """``read(lengths, **forward_inputs)`` for each batch of suffixes run after ``prefix``,
    which runs once (its key/value cache is copied per batch); the rows stacked as float64."""
    import torch

    rows = []
    body = model.get_decoder() if _plain_output_head(model) is not None else model
    with torch.inference_mode():  # the prefix's logits are never read: run the body only
        first = body(input_ids=torch.tensor([prefix], device=device), use_cache=True)
        cached = getattr(first, "cache", None)
        cached = first.past_key_values if cached is None else cached
        start = len(prefix)
        for s in range(0, len(suffixes), batch_size):
            chunk = suffixes[s : s + batch_size]
            ids, lengths = _right_padded([list(s) for s in chunk], device)
            past = copy.deepcopy(cached)
            past.batch_repeat_interleave(len(chunk))
            positions = torch.arange(start, start + ids.shape[1], device=device).expand_as(ids)
            mask = torch.ones((len(chunk), start + ids.shape[1]), dtype=torch.long, device=device)
            picked = read(lengths, input_ids=ids, position_ids=positions, attention_mask=mask,
                          use_cache=True, **{_cache_keyword(model): past})  # fmt: skip
            rows.append(picked.double().cpu().numpy())
    return np.concatenate(rows)


def pointwise_hidden(lm: LLM, prefix: list[int], suffixes: list[list[int]],
                     batch_size: int = 32) -> np.ndarray:  # fmt: skip
    """The last layer's hidden state at the answer position of each pointwise prompt
    ``prefix + suffixes[i]`` (where logit("Yes") - logit("No") is read): float64
    (n_candidates, hidden size). The prefix runs once; a frozen LLM as a feature extractor."""
    import torch

    model = lm.model
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model

    def read(lengths: Any, **inputs: Any) -> Any:
        for key in ("cache", "past_key_values"):
            if key in inputs and key != _cache_keyword(body):
                inputs[_cache_keyword(body)] = inputs.pop(key)
        hidden = body(**inputs).last_hidden_state
        return hidden[torch.arange(len(lengths), device=hidden.device), lengths - 1]

    return _prefix_cached(body, prefix, suffixes, read, batch_size, lm.device)


def _cache_keyword(model: Any) -> str:
    """``cache`` in newer transformers, ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def listwise_scores(lm: LLM, prompt_ids: list[int], n_candidates: int) -> np.ndarray:
    """Verbaliser scores: the next-token logits of the labels A, B, ... (one per candidate)
    after a :func:`listwise_prompt`: float64 (n_candidates,). Higher = ranked earlier."""
    labels = [lm.answer_token(label) for label in LABELS[:n_candidates]]
    if len(set(labels)) != n_candidates:
        raise ValueError(
            "the tokenizer maps two labels to one token; the verbaliser needs one each."
        )
    return np.asarray(last_token_logits(lm.model, [prompt_ids], labels, 1, lm.device)[0])


def rerank(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Candidates (n_users, c) re-ordered by descending score (n_users, c); ties keep the
    original order (a stable sort), so equal scores leave the first-stage order in place."""
    candidates, scores = np.asarray(candidates), np.asarray(scores, dtype=np.float64)
    if candidates.shape != scores.shape:
        raise ValueError(f"candidates {candidates.shape} and scores {scores.shape} differ.")
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


# --------------------------------------------------------------------- profiles, grounding
def generate(lm: LLM, prompts_ids: list[list[int]], max_new_tokens: int = 40,
             batch_size: int = 16) -> list[str]:  # fmt: skip
    """Greedy continuations (no sampling), left-padded batches; the new text of each prompt."""
    import torch

    pad = lm.tokenizer.pad_token_id
    pad = lm.tokenizer.eos_token_id if pad is None else pad
    texts = []
    with torch.inference_mode():
        for s in range(0, len(prompts_ids), batch_size):
            chunk = prompts_ids[s : s + batch_size]
            width = max(len(q) for q in chunk)
            ids = torch.tensor([[pad] * (width - len(q)) + q for q in chunk], device=lm.device)
            mask = torch.tensor([[0] * (width - len(q)) + [1] * len(q) for q in chunk],
                                device=lm.device)  # fmt: skip
            new = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                    max_new_tokens=max_new_tokens, pad_token_id=pad)[:, width:]  # fmt: skip
            texts += lm.tokenizer.batch_decode(new, skip_special_tokens=True)
    return [t.strip() for t in texts]


def _mentions(text: str, names: list[str]) -> set[str]:
    low = text.lower()
    return {n for n in names if re.search(r"\b" + re.escape(n.lower()) + r"\b", low)}


def short_title(title: str) -> str:
    """A title without its year and trailing article: "Usual Suspects, The (1995)" ->
    "Usual Suspects"; what a writer would quote."""
    return re.sub(r"\s*\(\d{4}\)\s*$", "", title).split(", The")[0].split(", A")[0].strip()


def grounding_check(profile: str, history_titles: list[str], history_genres: list[list[str]],
                    catalogue_titles: list[str], all_genres: list[str],
                    forbidden: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """Which films and genres a profile names, and whether they are grounded.

    A genre is *ungrounded* when it is a catalogue genre that none of the history's films
    has; a film is ungrounded when the profile names a catalogue title (short form, >= 2
    words to avoid common words) that is not in the history, or quotes a title that is not in
    the catalogue. ``forbidden``: strings that must not appear (user id, age, occupation...).
    Returns {"genres", "bad_genres", "bad_titles", "leaks", "hallucinated" (bool)}.
    """
    allowed_genres = {g for gs in history_genres for g in gs}
    genres = _mentions(profile, list(all_genres))
    genres |= {GENRE_WORDS[w] for w in _mentions(profile, list(GENRE_WORDS))} & set(all_genres)
    shorts = {short_title(t) for t in catalogue_titles}
    named = _mentions(profile, [t for t in shorts if len(t.split()) >= 2])
    quoted = {q.strip() for q in re.findall(r'"([^"]{3,80})"', profile)}
    mine = {short_title(t) for t in history_titles}
    bad_titles = {t for t in named | quoted if t not in mine and not any(t in m for m in mine)}
    leaks = {f for f in forbidden if f and re.search(r"\b" + re.escape(str(f).lower()) + r"\b",
                                                      profile.lower())}  # fmt: skip
    bad_genres = genres - allowed_genres
    return {"genres": sorted(genres), "bad_genres": sorted(bad_genres),
            "bad_titles": sorted(bad_titles), "leaks": sorted(leaks),
            "hallucinated": bool(bad_genres or bad_titles)}  # fmt: skip


# ------------------------------------------------------------------ per-user ranking loops
def pointwise_matrix(lm: LLM, histories: list[str], candidates: list[list[str]], *,
                     shared_prefix: bool = True, cache: Any = None,
                     stats: CacheStats | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Pointwise scores for every user's candidates: float64 (n_users, c), and the tokens the
    model read per user (n_users,) (the prefix once with ``shared_prefix``, else per prompt).
    ``cache``: a :func:`recsys_lib.llm.cache.score_cache` ("pointwise", yes/no ids, c) keyed by
    each user's whole prompt set, so a second run reads the scores from disk (rounded to
    float32 either way); None runs the model every time."""
    parts = [pointwise_parts(lm, h, list(c)) for h, c in zip(histories, candidates, strict=True)]
    tokens = np.array([len(p) + sum(map(len, s)) if shared_prefix
                       else len(p) * len(s) + sum(map(len, s)) for p, s in parts], dtype=np.int64)  # fmt: skip

    def compute(rows: Iterable[int]) -> np.ndarray:
        return np.stack(
            [pointwise_scores(lm, *parts[r], shared_prefix=shared_prefix) for r in rows]
        )

    if cache is None and stats is None:
        return compute(range(len(parts))), tokens
    keys = [p + [s for suffix in sfx for s in (-1, *suffix)] for p, sfx in parts]
    return cached_rows(cache, keys, compute, stats), tokens


def listwise_matrix(lm: LLM, histories: list[str], candidates: list[list[str]],
                    seed: int | None = None) -> np.ndarray:  # fmt: skip
    """Listwise verbaliser scores (n_users, c) in the candidates' own order. With ``seed`` the
    candidates are shown to the model in a random order (one permutation per user) and the
    scores mapped back, which measures position bias."""
    rng = None if seed is None else np.random.default_rng(seed)
    out = np.empty((len(histories), len(candidates[0])))
    for u, (history, cands) in enumerate(zip(histories, candidates, strict=True)):
        order = np.arange(len(cands)) if rng is None else rng.permutation(len(cands))
        shown = [cands[i] for i in order]
        scores = listwise_scores(lm, chat_ids(lm, listwise_prompt(history, shown)), len(shown))
        out[u, order] = scores
    return out


# ------------------------------------------------------------- yes/no click model (TALLRec)
def yes_no_prompts(lm: LLM, histories: list[str], candidates: list[str]) -> list[list[int]]:
    """Full pointwise prompts (token ids), one per (history, candidate) pair."""
    return [prefix + suffixes[0] for prefix, suffixes in
            (pointwise_parts(lm, h, [c]) for h, c in zip(histories, candidates, strict=True))]  # fmt: skip


def yes_no_margin(lm: LLM, prompts: list[list[int]], batch_size: int = 16, *, cache: Any = None,
                  stats: CacheStats | None = None) -> np.ndarray:  # fmt: skip
    """logit("Yes") - logit("No") after each prompt: float64 (n,); a click score. ``cache``: a
    :func:`recsys_lib.llm.cache.score_cache` ("yes-no", the two ids, 1) to read and store them
    (only for the model it was made for: adapters change its key)."""
    ids = [lm.answer_token("Yes"), lm.answer_token("No")]

    def compute(rows: Iterable[int]) -> np.ndarray:
        picked = [prompts[r] for r in rows]
        return np.asarray(
            last_token_logits(lm.model, picked, ids, batch_size, lm.device) @ [1.0, -1.0]
        )

    if cache is None and stats is None:
        return compute(range(len(prompts)))
    return cached_rows(cache, prompts, compute, stats)[:, 0]


def pair_features(lm: LLM, histories: list[str], candidates: list[str], *, cache: Any = None,
                  stats: CacheStats | None = None, batch_size: int = 32) -> np.ndarray:  # fmt: skip
    """The frozen LLM as a feature extractor: the last layer's hidden state at the answer
    position of each (history, candidate) pair's yes/no prompt (where :func:`pointwise_hidden`
    reads it), float64 (n_pairs, hidden size). Pairs are run as full prompts in right-padded
    batches (click pairs have few candidates per user, so a shared prefix saves little).
    ``cache``: a ``score_cache(lm, "hidden", "last-layer", hidden size)``."""
    import torch

    prompts = yes_no_prompts(lm, histories, candidates)
    model = lm.model
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model

    def compute(rows: Iterable[int]) -> np.ndarray:
        out = []
        order = sorted(rows, key=lambda r: len(prompts[r]))  # similar lengths, less padding
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                ids, lengths = _right_padded([prompts[r] for r in order[s : s + batch_size]],
                                             lm.device)  # fmt: skip
                hidden = body(input_ids=ids).last_hidden_state
                out.append(hidden[torch.arange(len(lengths)), lengths - 1].double().cpu().numpy())
        by_row = dict(zip(order, np.concatenate(out), strict=True))
        return np.stack([by_row[r] for r in rows])

    return cached_rows(cache, prompts, compute, stats)


def train_yes_no(lm: LLM, prompts: list[list[int]], labels: np.ndarray, config: TrainConfig,
                 evaluate: Callable[[], dict[str, Any]] | None = None,
                 monitor: str = "auc") -> TrainHistory:  # fmt: skip
    """Fine-tune ``lm.model`` (e.g. after :func:`recsys_lib.text.lora.add_lora_by_name`) so that
    sigmoid(logit(Yes) - logit(No)) predicts ``labels`` (n,) in {0, 1}: binary cross-entropy
    on the answer token, the TALLRec recipe. ``config``: :class:`recsys_lib.text.finetune.TrainConfig`;
    the loop, schedule and best-checkpoint logic are chapter 5's. Returns its TrainHistory."""
    import torch

    from recsys_lib.text.finetune import train_loop

    targets = torch.tensor(np.asarray(labels, dtype=np.float32))
    yes, no = lm.answer_token("Yes"), lm.answer_token("No")
    n, device = len(prompts), lm.device

    def batches(rng: np.random.Generator) -> Iterator[np.ndarray]:
        order = rng.permutation(n)
        for s in range(0, n, config.batch_size):
            yield order[s : s + config.batch_size]

    def loss_fn(rows: np.ndarray) -> tuple[torch.Tensor, int]:
        chunk = [prompts[r] for r in rows]
        ids, lengths = _right_padded(chunk, device)
        last = token_logits_at(lm.model, lengths - 1, [yes, no], input_ids=ids)
        margin = (last[:, 0] - last[:, 1]).float()
        target = targets[torch.as_tensor(rows)].to(device)
        return torch.nn.functional.binary_cross_entropy_with_logits(margin, target), len(rows)

    return train_loop(lm.model, batches, -(-n // config.batch_size), loss_fn, config, evaluate,
                       monitor, higher_is_better=True)  # fmt: skip
