"""The cross-encoder click model: (user text, item text) pairs, a cached frozen trunk, training and
click probabilities.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_lib.evaluation.metrics import log_loss, roc_auc
from recsys_lib.runtime import resolve_device, to_device

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import torch
    from numpy.typing import ArrayLike
    from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

from recsys_lib.text.finetune.fit_cache import cached_training, tokenizer_key
from recsys_lib.text.finetune.training import (
    TrainConfig,
    TrainHistory,
    _as_index,
    _call_layer,
    encoder_layers,
    train_loop,
)


# ------------------------------------------------------------------------- cross-encoder
def pair_texts(
    pairs: pd.DataFrame, user_text: pd.Series, item_text: pd.Series
) -> tuple[list[str], list[str]]:
    """(user texts, item texts) lists for a pairs frame; raises on ids without a text."""
    users = user_text.reindex(pairs["user_id"].to_numpy())
    items = item_text.reindex(pairs["item_id"].to_numpy())
    for name, series in (("user", users), ("item", items)):
        if series.isna().any():
            missing = series.index[series.isna().to_numpy()].unique()[:5].tolist()
            raise KeyError(
                f"no {name} description for {name}_id(s) {missing}; build the descriptions "
                f"for every {name} in the pairs."
            )
    return users.tolist(), items.tolist()


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase,
    user_texts: list[str],
    item_texts: list[str],
    max_length: int,
) -> BatchEncoding:
    """One batch of (user, item) pairs, padded to the longest pair in the batch (dynamic
    padding), truncating the longer text first so the item text survives."""
    enc: BatchEncoding = tokenizer(
        user_texts,
        item_texts,
        truncation="longest_first",
        max_length=max_length,
        padding="longest",
        return_tensors="pt",
    )
    return enc


def predict_click_proba(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: pd.DataFrame,
    user_text: pd.Series,
    item_text: pd.Series,
    *,
    batch_size: int = 128,
    max_length: int = 128,
    device: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """P(click) for each row of ``pairs``: float64 (n,). Softmax over the 2 logits, class 1.

    Pairs are run sorted by length (less padding) and returned in input order.
    """
    import torch
    from tqdm.auto import tqdm

    device = resolve_device(device)
    to_device(model, device).eval()
    users, items = pair_texts(pairs, user_text, item_text)
    lengths = np.array([len(u) + len(i) for u, i in zip(users, items, strict=True)])
    order = np.argsort(-lengths, kind="stable")
    out = np.empty(len(users), dtype=np.float64)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="scoring", disable=not progress):
            rows = order[start : start + batch_size]
            enc = tokenize_pairs(tokenizer, [users[r] for r in rows], [items[r] for r in rows],
                                 max_length).to(device)  # fmt: skip
            with torch.autocast("cuda", enabled=device.startswith("cuda")):
                logits = model(**enc).logits.float()
            out[rows] = torch.softmax(logits, dim=-1)[:, 1].cpu().numpy()
    return out


def frozen_depth(model: PreTrainedModel) -> int:
    """How many of the lowest transformer layers are frozen, counting only when the embeddings
    are frozen too (0 otherwise): the part of the network whose output can be cached."""
    embeddings, layers = encoder_layers(model)
    if any(p.requires_grad for p in embeddings.parameters()):
        return 0
    depth = 0
    for layer in layers:
        if any(p.requires_grad for p in layer.parameters()):
            break
        depth += 1
    return depth


class PairTrunkCache:
    """Hidden states of fixed (user, item) pairs after a cross-encoder's frozen lower layers.

    A cross-encoder reads each pair as one sequence, so nothing is shared *between* pairs; but
    over several epochs, and at every validation, the *same* pairs go through the same frozen
    layers again. This runs the embeddings and the frozen layers once per pair (no dropout,
    no gradients) and keeps the result, so training and validation run only the trainable top
    layers, the pooler and the head (:meth:`logits`). Memory: n_pairs x max_length x hidden
    floats (about 74 KB per pair for MiniLM at 48 tokens). BERT-style sequence classifiers
    (``base_model.pooler``, ``dropout``, ``classifier``) only.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 user_texts: list[str], item_texts: list[str], *, max_length: int,
                 device: str = "auto", batch_size: int = 128,
                 progress: bool = False) -> None:  # fmt: skip
        import torch
        from tqdm.auto import tqdm

        for name in ("dropout", "classifier"):
            if not hasattr(model, name):
                raise TypeError(f"{type(model).__name__} has no .{name}; PairTrunkCache supports "
                                "BERT-style sequence classifiers only.")  # fmt: skip
        self.device = resolve_device(device)
        self.n_frozen = frozen_depth(model)
        if self.n_frozen == 0:
            raise ValueError("nothing is frozen: call freeze_lower_layers(model, n) with "
                             "n < the number of layers before caching the trunk.")  # fmt: skip
        enc = tokenize_pairs(tokenizer, list(user_texts), list(item_texts), max_length)
        self.right_padded = getattr(tokenizer, "padding_side", "right") == "right"
        to_device(model, self.device)
        parts = []
        for start in tqdm(range(0, len(user_texts), batch_size), desc="caching trunk",
                          disable=not progress):  # fmt: skip
            batch = {k: v[start : start + batch_size].to(self.device) for k, v in enc.items()}
            parts.append(_frozen_trunk(model, batch, self.n_frozen))
        self.hidden = torch.cat(parts) if parts else torch.empty(0)
        self.mask = enc["attention_mask"].to(self.device)

    def __len__(self) -> int:
        return len(self.mask)

    def logits(self, model: PreTrainedModel, rows: ArrayLike) -> torch.Tensor:
        """Logits (len(rows), num_labels) of the cached pairs ``rows``; gradients flow into the
        top layers, pooler and head (use under ``torch.inference_mode`` to predict)."""
        index = _as_index(rows).to(self.device)
        mask = self.mask[index]
        hidden = self.hidden[index]
        if self.right_padded:  # dynamic padding: trim to the longest pair of this batch
            width = int(mask.sum(1).max())
            hidden, mask = hidden[:, :width], mask[:, :width]
        hidden = _upper_layers(model, hidden, mask, self.n_frozen)
        pooler = getattr(model.base_model, "pooler", None)
        pooled = pooler(hidden) if pooler is not None else hidden[:, 0]
        head: Any = model  # a sequence-classification model: dropout, then the classifier
        logits: torch.Tensor = head.classifier(head.dropout(pooled))
        return logits

    def predict_proba(self, model: PreTrainedModel, batch_size: int = 256) -> np.ndarray:
        """P(click) of every cached pair, in cache order: float64 (n,)."""
        import torch

        model.eval()
        out = np.empty(len(self), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(self), batch_size):
                rows = np.arange(start, min(start + batch_size, len(self)))
                logits = self.logits(model, rows).float()
                out[rows] = torch.softmax(logits, dim=-1)[:, 1].cpu().numpy()
        return out


def _frozen_trunk(
    model: PreTrainedModel, enc: Mapping[str, torch.Tensor], n_frozen: int
) -> torch.Tensor:
    """Embeddings + the lowest ``n_frozen`` layers of a BERT-style model, in eval mode and
    without gradients: hidden states (B, L, H) for a tokenised batch ``enc``."""
    import torch

    embeddings, layers = encoder_layers(model)
    with torch.no_grad():
        embeddings.eval()
        hidden: torch.Tensor = embeddings(
            input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids")
        )
        mask4 = _bidirectional_mask(model.config, hidden, enc["attention_mask"])
        for layer in layers[:n_frozen]:
            layer.eval()
            hidden = _call_layer(layer, hidden, mask4)
    return hidden


def _upper_layers(
    model: PreTrainedModel, hidden: torch.Tensor, attention_mask: torch.Tensor, n_frozen: int
) -> torch.Tensor:
    """The layers above the frozen ``n_frozen`` (with gradients): hidden states (B, L, H)."""
    _, layers = encoder_layers(model)
    mask4 = _bidirectional_mask(model.config, hidden, attention_mask)
    for layer in layers[n_frozen:]:
        hidden = _call_layer(layer, hidden, mask4)
    return hidden


def _bidirectional_mask(
    config: Any, hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor | None:
    from transformers.masking_utils import create_bidirectional_mask

    mask: torch.Tensor | None = create_bidirectional_mask(
        config=config, inputs_embeds=hidden, attention_mask=attention_mask
    )
    return mask


def click_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """{"auc": ROC AUC, "log_loss": mean binary cross-entropy} of click probabilities."""
    return {"auc": roc_auc(labels, probs), "log_loss": log_loss(labels, probs)}


def train_cross_encoder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_pairs: pd.DataFrame,
    user_text: pd.Series,
    item_text: pd.Series,
    config: TrainConfig,
    *,
    val_pairs: pd.DataFrame | None = None,
    val_user_text: pd.Series | None = None,
    monitor: str = "auc",
    cache_trunk: bool = True,
) -> TrainHistory:
    """Fine-tune a sequence classifier on labelled (user, item) pairs.

    train_pairs / val_pairs: (user_id, item_id, label) frames (see :mod:`recsys_lib.text.pairs`).
    user_text / item_text: descriptions indexed by id; ``val_user_text`` (default
    ``user_text``) describes the users for validation. Validation reports ``auc`` and
    ``log_loss``; ``monitor`` picks the early-stopping metric (AUC: higher is better).
    Pairs are shuffled each epoch from ``config.seed``; the model is left on the training device.

    The finished training is stored in the fit cache (:mod:`~recsys_lib.text.finetune.fit_cache`)
    and read back by a later call with the same model, data and settings.

    ``cache_trunk`` (default): when the embeddings and some lower layers are frozen
    (:func:`freeze_lower_layers`), the training and validation pairs go through the frozen part
    once (:class:`PairTrunkCache`, timed in ``TrainHistory.setup_seconds``) and every update
    runs only the top layers. The frozen layers then run without dropout, the one difference
    from the uncached loop.
    """
    device = resolve_device(config.device)
    to_device(model, device)
    data = {"train_pairs": train_pairs[["user_id", "item_id", "label"]], "user_text": user_text,
            "item_text": item_text, "val_pairs": val_pairs, "val_user_text": val_user_text,
            "monitor": monitor, "cache_trunk": cache_trunk, "tokenizer": tokenizer_key(tokenizer)}  # fmt: skip

    def train() -> TrainHistory:  # the loop proper, run on a fit-cache miss
        import torch

        users, items = pair_texts(train_pairs, user_text, item_text)
        labels = torch.tensor(train_pairs["label"].to_numpy().copy(), dtype=torch.long)
        n = len(users)
        if n == 0:
            raise ValueError("train_pairs is empty.")
        n_batches = math.ceil(n / config.batch_size)
        setup = time.perf_counter()
        use_cache = cache_trunk and frozen_depth(model) > 0
        trunk = (PairTrunkCache(model, tokenizer, users, items, max_length=config.max_length,
                                device=device, progress=config.progress)
                 if use_cache else None)  # fmt: skip

        def batches(rng: np.random.Generator) -> Iterator[np.ndarray]:
            order = rng.permutation(n)
            for start in range(0, n, config.batch_size):
                yield order[start : start + config.batch_size]

        def loss_fn(rows: np.ndarray) -> tuple[torch.Tensor, int]:
            target = labels[rows].to(device)
            if trunk is not None:
                logits = trunk.logits(model, rows)
                return torch.nn.functional.cross_entropy(logits.float(), target), len(rows)
            enc = tokenize_pairs(tokenizer, [users[r] for r in rows], [items[r] for r in rows],
                                 config.max_length).to(device)  # fmt: skip
            out = model(**enc, labels=target)
            return out.loss, len(rows)

        evaluate = None
        if val_pairs is not None:
            val_labels = val_pairs["label"].to_numpy()
            vtext = user_text if val_user_text is None else val_user_text
            val_trunk = None
            if use_cache:
                val_trunk = PairTrunkCache(model, tokenizer, *pair_texts(val_pairs, vtext, item_text),
                                           max_length=config.max_length, device=device)  # fmt: skip

            def evaluate() -> dict[str, float]:
                if val_trunk is not None:
                    probs = val_trunk.predict_proba(model)
                else:
                    probs = predict_click_proba(model, tokenizer, val_pairs, vtext, item_text,
                                                max_length=config.max_length, device=device)  # fmt: skip
                return click_metrics(val_labels, probs)

        setup_seconds = time.perf_counter() - setup
        history = train_loop(
            model, batches, n_batches, loss_fn, config, evaluate, monitor,
            higher_is_better=(monitor != "log_loss"),
        )  # fmt: skip
        history.setup_seconds = setup_seconds
        return history

    return cached_training(model, config, data, train)
