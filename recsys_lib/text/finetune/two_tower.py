"""The two-tower retriever: in-batch negatives with a popularity correction, user-unique batches,
training, ranking metrics and text factors for the model contract.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_lib.linalg import normalize_rows, positions
from recsys_lib.runtime import resolve_device, to_device

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike
    from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

    from recsys_lib.data.interactions import Catalogue, Interactions
from recsys_lib.text.finetune.cross_encoder import _frozen_trunk, _upper_layers
from recsys_lib.text.finetune.fit_cache import cached_training, tokenizer_key
from recsys_lib.text.finetune.training import (
    TrainConfig,
    TrainHistory,
    _as_index,
    count_parameters,
    encoder_layers,
    freeze_lower_layers,
    train_loop,
)


# ----------------------------------------------------------------------------- two-tower
def multiple_negatives_loss(user_emb: torch.Tensor, item_emb: torch.Tensor,
                            temperature: float = 0.05, mask: torch.Tensor | None = None,
                            symmetric: bool = False,
                            log_q: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """InfoNCE with in-batch negatives (the "multiple negatives ranking" loss).

    user_emb, item_emb: (B, d); row b of each is a positive pair, every other item in the batch
    is a negative for user b. logits = user_emb @ item_emb.T / temperature, and the loss is
    the cross-entropy of the diagonal: mean_b [ -log softmax(logits[b])[b] ].
    mask: optional (B, B) bool, True where item c must not count as a negative for user b (it
    is one of b's positives too); the diagonal is never masked. symmetric: average with the
    item -> user direction. log_q: optional (B,) log-probability that each batch item is drawn
    as a positive; it is subtracted from that item's column (the "logQ" sampling-bias
    correction). In-batch negatives are drawn in proportion to popularity, so without it the
    model learns to push popular items down; with it the loss estimates the full softmax.
    """
    import torch
    import torch.nn.functional as F

    logits = user_emb @ item_emb.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    if mask is not None:
        mask = mask.clone()
        mask.fill_diagonal_(False)
        logits = logits.masked_fill(mask, float("-inf"))
    target = torch.arange(logits.shape[0], device=logits.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, target)) / 2
    return loss


class TwoTower:
    """A shared text encoder embedding users and items; score = cosine similarity.

    encoder: ``AutoModel`` (BERT-style); ``n_trainable``: top layers to fine-tune (None: all).
    With ``cache_trunk=True`` and ``n_trainable`` below the depth, the frozen lower part is run
    once per distinct text (:meth:`cache`) and training runs only the top layers. Pooling is
    the mean of the real tokens, then L2-normalisation (as all-MiniLM-L6-v2 was trained).
    """

    def __init__(self, encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *,
                 n_trainable: int | None = 2, max_length: int = 64, cache_trunk: bool = True,
                 pooling: str = "mean", device: str = "auto") -> None:  # fmt: skip
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.pooling = pooling
        self.device = resolve_device(device)
        to_device(self.encoder, self.device)
        freeze_lower_layers(encoder, n_trainable)
        pooler = getattr(encoder, "pooler", None)
        if pooler is not None:  # the [CLS] pooler is not used by mean pooling: keep it out
            for p in pooler.parameters():
                p.requires_grad_(False)
        self.params = count_parameters(encoder)
        _, layers = encoder_layers(encoder)
        self.n_layers = len(layers)
        self.n_frozen = 0 if n_trainable is None else self.n_layers - n_trainable
        self.cache_trunk = bool(cache_trunk) and self.n_frozen > 0
        self._cache: dict[
            str, tuple[Any, ...]
        ] = {}  # name -> (trunk hidden states, attention mask)
        self._texts: dict[str, list[str]] = {}  # name -> the cached texts
        self._lookup: dict[str, dict[str, int]] = {}  # name -> {text: row}

    # -- internals --------------------------------------------------------------------
    def _tokenize(self, texts: list[str]) -> BatchEncoding:
        enc: BatchEncoding = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                              padding="longest", return_tensors="pt").to(self.device)  # fmt: skip
        return enc

    def _trunk(self, enc: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings + frozen layers: (hidden (B, L, H), attention_mask (B, L))."""
        return _frozen_trunk(self.encoder, enc, self.n_frozen), enc["attention_mask"]

    def _top(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Trainable layers + pooling + normalisation: (B, H)."""
        from recsys_lib.text.embeddings import pool

        hidden = _upper_layers(self.encoder, hidden, attention_mask, self.n_frozen)
        unit: torch.Tensor = normalize_rows(pool(hidden, attention_mask, self.pooling))
        return unit

    def cache(self, name: str, texts: list[str], batch_size: int = 128) -> None:
        """Run the frozen trunk once over ``texts`` and keep (hidden, mask) under ``name``.

        Hidden states are padded to the longest text (<= max_length): (n, L, H) float32.
        Caching the same texts under the same name again does nothing. Later :meth:`encode`
        calls whose texts are all in one cache run only the top layers.
        """
        import torch

        texts = list(texts)
        if self._texts.get(name) == texts and (name in self._cache or not self.cache_trunk):
            return  # already cached
        self._texts[name] = texts
        self._lookup.pop(name, None)
        if not self.cache_trunk:  # nothing frozen to cache: embed_batch reads the texts
            return
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                             padding="longest", return_tensors="pt")  # fmt: skip
        hidden = []
        for start in range(0, len(texts), batch_size):
            part = {k: v[start : start + batch_size].to(self.device) for k, v in enc.items()}
            hidden.append(self._trunk(part)[0])
        self._cache[name] = (torch.cat(hidden), enc["attention_mask"].to(self.device))

    def _rows_of(self, name: str, texts: list[str]) -> np.ndarray | None:
        """Rows of ``texts`` in the cache ``name``, or None when one of them is not cached."""
        if name not in self._lookup:
            self._lookup[name] = {t: i for i, t in enumerate(self._texts[name])}
        table = self._lookup[name]
        rows = [table.get(t, -1) for t in texts]
        return None if -1 in rows else np.asarray(rows, dtype=np.int64)

    def embed_batch(self, texts: list[str] | None = None, *, name: str | None = None,
                    rows: ArrayLike | None = None) -> torch.Tensor:  # fmt: skip
        """Embeddings with gradients (training): from raw ``texts``, or from rows of a cache."""
        if name is not None and not self.cache_trunk:
            texts = [self._texts[name][r] for r in np.asarray(rows)]
        elif name is not None:
            if rows is None:
                raise ValueError(f"embed_batch(name={name!r}) needs rows: positions in the cache.")
            hidden, mask = self._cache[name]
            index = _as_index(rows)
            mask = mask[index]
            width = int(mask.sum(1).max())  # dynamic padding: trim to the longest text
            return self._top(hidden[index, :width], mask[:, :width])
        if texts is None:
            raise ValueError("embed_batch needs texts, or the name of a cache and rows in it.")
        enc = self._tokenize(list(texts))
        if self.n_frozen == 0:
            from recsys_lib.text.embeddings import pool

            hidden = self.encoder(**enc).last_hidden_state
            unit: torch.Tensor = normalize_rows(pool(hidden, enc["attention_mask"], self.pooling))
            return unit
        hidden, mask = self._trunk(enc)
        return self._top(hidden, mask)

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Embeddings for inference: (n, H) float32, unit rows, in input order (eval mode).

        When every text is in one cache (:meth:`cache`), only the top layers run.
        """
        import torch

        from recsys_lib.text.embeddings import pool

        self.encoder.eval()
        texts = list(texts)
        for name in self._cache:
            rows = self._rows_of(name, texts)
            if rows is not None:  # every text is cached: run only the top layers
                with torch.inference_mode():
                    parts = [
                        self.embed_batch(name=name, rows=rows[s : s + batch_size])
                        for s in range(0, len(rows), batch_size)
                    ]
                return torch.cat(parts).float().cpu().numpy()
        lengths = np.array([len(t) for t in texts])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                enc = self._tokenize([texts[r] for r in rows])
                hidden = self.encoder(**enc).last_hidden_state.float()
                out[rows] = normalize_rows(pool(hidden, enc["attention_mask"], self.pooling)).cpu()
        return out


def positive_draw_log_q(pos_users: np.ndarray, pos_items: np.ndarray, n_items: int) -> np.ndarray:
    """log P(item i is a batch positive) under :func:`user_unique_batches`: float64 (n_items,).

    Every user is drawn once per epoch and picks one of its positives uniformly, so
    P(i) = (1 / n_users) * sum over users u with i among their positives of 1 / |pos(u)|.
    Items never drawn get log(1e-12) (they never appear as batch positives anyway).
    """
    users, inverse, counts = np.unique(pos_users, return_inverse=True, return_counts=True)
    share = np.bincount(pos_items, weights=1.0 / counts[inverse], minlength=n_items) / len(users)
    return np.log(np.maximum(share, 1e-12))


def user_unique_batches(
    pos_users: np.ndarray, pos_items: np.ndarray, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of two-tower batches: every user once, in a random order, ``batch_size``
    distinct users per batch, each with one positive drawn uniformly from its positives.

    pos_users / pos_items: integer codes of the positive pairs (any order). Yields (users, items)
    arrays of codes. Distinct users per batch mean a user's own second positive is never
    treated as its negative; :func:`in_batch_positive_mask` handles shared items.
    """
    order = np.argsort(pos_users, kind="stable")
    users_sorted, items_sorted = pos_users[order], pos_items[order]
    uniq, starts, counts = np.unique(users_sorted, return_index=True, return_counts=True)
    perm = rng.permutation(len(uniq))
    for start in range(0, len(perm), batch_size):
        chosen = perm[start : start + batch_size]
        if len(chosen) < 2:
            continue  # a batch of one has no negatives
        picks = starts[chosen] + (rng.random(len(chosen)) * counts[chosen]).astype(np.int64)
        yield uniq[chosen], items_sorted[picks]


def in_batch_positive_mask(users: np.ndarray, items: np.ndarray, positive_keys: np.ndarray,
                           n_items: int) -> np.ndarray:  # fmt: skip
    """(B, B) bool: True where batch item c is a known positive of batch user b (b != c).

    positive_keys: sorted int64 ``user_code * n_items + item_code`` of all training positives.
    """
    keys = users.astype(np.int64)[:, None] * n_items + items.astype(np.int64)[None, :]
    found = positions(positive_keys, keys) >= 0
    np.fill_diagonal(found, False)
    return found


def train_two_tower(
    tower: TwoTower,
    positives: pd.DataFrame,
    user_text: pd.Series,
    item_text: pd.Series,
    config: TrainConfig,
    *,
    temperature: float = 0.05,
    symmetric: bool = False,
    logq_correction: bool = True,
    evaluate: Callable[[TwoTower], dict[str, Any]] | None = None,
    monitor: str = "ndcg@10",
    evaluate_key: object = None,
) -> TrainHistory:
    """Fine-tune ``tower`` on positive (user_id, item_id) pairs with in-batch negatives.

    One epoch = every user once (:func:`user_unique_batches`); in-batch items that are also
    positives of the row's user are masked out of its negatives. ``logq_correction`` subtracts
    the log of each item's chance to be drawn as a batch positive (:func:`positive_draw_log_q`)
    from its logits. ``evaluate(tower)`` returns
    validation metrics (e.g. :func:`ranking_metrics`); the best ``monitor`` value wins.

    The finished training is stored in the fit cache (:mod:`~recsys_lib.text.finetune.fit_cache`)
    and read back by a later call with the same tower, data and settings. ``evaluate`` is a
    function the cache cannot look into, so with ``evaluate`` the cache is used only when
    ``evaluate_key`` names what it validates on (anything ``fit_cache.fingerprint`` hashes, e.g.
    ``(user_texts, fit, valid, k)``).
    """
    import torch

    user_ids = np.asarray(user_text.index)
    item_ids = np.asarray(item_text.index)
    u_code = positions(user_ids, positives["user_id"].to_numpy())
    i_code = positions(item_ids, positives["item_id"].to_numpy())
    if (u_code < 0).any() or (i_code < 0).any():
        raise KeyError("positives name users or items that have no description; describe them all.")
    keys = np.unique(u_code.astype(np.int64) * len(item_ids) + i_code)
    log_q_all = torch.as_tensor(positive_draw_log_q(u_code, i_code, len(item_ids)),
                                dtype=torch.float32, device=tower.device)  # fmt: skip
    tower.cache("users", user_text.tolist())
    tower.cache("items", item_text.tolist())
    n_users = len(np.unique(u_code))
    n_batches = sum(1 for s in range(0, n_users, config.batch_size) if n_users - s >= 2)

    def batches(rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield from user_unique_batches(u_code, i_code, config.batch_size, rng)

    def loss_fn(batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, int]:
        users, items = batch
        u = tower.embed_batch(name="users", rows=users)
        v = tower.embed_batch(name="items", rows=items)
        mask = torch.as_tensor(in_batch_positive_mask(users, items, keys, len(item_ids)),
                               device=u.device)  # fmt: skip
        log_q = log_q_all[_as_index(items).to(tower.device)] if logq_correction else None
        loss = multiple_negatives_loss(u.float(), v.float(), temperature, mask, symmetric, log_q)
        return loss, len(users)

    evaluate_fn = None if evaluate is None else (lambda: evaluate(tower))

    def train() -> TrainHistory:
        return train_loop(tower.encoder, batches, n_batches, loss_fn, config, evaluate_fn,
                          monitor, higher_is_better=True)  # fmt: skip

    if evaluate is not None and evaluate_key is None:
        return train()
    data = {"positives": positives[["user_id", "item_id"]], "user_text": user_text,
            "item_text": item_text, "temperature": temperature, "symmetric": symmetric,
            "logq_correction": logq_correction, "monitor": monitor, "evaluate": evaluate_key,
            "tower": [tower.max_length, tower.cache_trunk, tower.pooling, tower.n_frozen,
                      tokenizer_key(tower.tokenizer)]}  # fmt: skip
    return cached_training(tower.encoder, config, data, train)


def ranking_metrics(
    tower: TwoTower,
    user_text: pd.Series,
    item_text: pd.Series,
    train: Interactions,
    test: Interactions,
    k: int = 10,
) -> dict[str, float]:
    """Encode users and items and evaluate the cosine recommender with the chapter 0 protocol.

    train / test: :class:`~recsys_lib.data.interactions.Interactions` on one catalogue; the texts are
    indexed by raw id and reordered to the catalogue's rows / columns.
    """
    from recsys_lib.evaluation.protocol import evaluate
    from recsys_lib.models.base import FactorModel

    users, items = text_factors(tower, user_text, item_text, train.catalogue)
    return evaluate(FactorModel(users, items).fit(train), test, k)


def text_factors(
    tower: TwoTower, user_text: pd.Series, item_text: pd.Series, catalogue: Catalogue
) -> tuple[np.ndarray, np.ndarray]:
    """(user_factors (n_users, H), item_factors (n_items, H)) in the catalogue's order."""
    missing_u = np.setdiff1d(catalogue.user_ids, user_text.index.to_numpy())
    missing_i = np.setdiff1d(catalogue.item_ids, item_text.index.to_numpy())
    if missing_u.size or missing_i.size:
        raise KeyError(
            f"no description for users {missing_u[:5].tolist()} / items {missing_i[:5].tolist()} "
            "of the catalogue; describe every catalogue user and item."
        )
    users = tower.encode(user_text.reindex(catalogue.user_ids).tolist())
    items = tower.encode(item_text.reindex(catalogue.item_ids).tolist())
    return users, items


def plot_history(history: TrainHistory, metric: str, title: str = "") -> Figure:
    """Two panels: training loss per update (with a moving average) and the validation
    ``metric`` at each evaluation (update 0 = before fine-tuning)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss = np.asarray(history.loss, dtype=float)
    left.plot(history.steps, loss, alpha=0.35, label="per update")
    window = max(1, len(loss) // 10)
    if len(loss) >= window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        left.plot(history.steps[window - 1 :], smooth, label=f"mean of {window}")
    left.set(xlabel="update", ylabel="training loss", title="training loss")
    left.legend()
    frame = history.eval_frame()
    if len(frame):
        right.plot(frame["step"], frame[metric], marker="o")
        if history.best_step is not None:
            right.axvline(history.best_step, color="grey", linestyle=":", label="best (kept)")
            right.legend()
    right.set(xlabel="update", ylabel=metric, title=f"validation {metric}")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def copy_state(model: torch.nn.Module) -> dict[str, Any]:
    """A detached copy of the model's weights (to compare before/after, or to roll back)."""
    return copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
