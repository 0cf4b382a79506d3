"""Fine-tuning a transformer on interactions: a cross-encoder click model and a two-tower retriever.

Two ways to frame recommendation for a pretrained text encoder:

* **classification** (:func:`train_cross_encoder`): ``AutoModelForSequenceClassification`` reads
  "user description [SEP] item description" and predicts click / no click. Accurate, but every
  (user, item) pair needs its own forward pass, so it only re-ranks a short list.
* **retrieval** (:class:`TwoTower`, :func:`train_two_tower`): one shared encoder embeds user
  texts and item texts separately; the score is a dot product of the (L2-normalised) vectors, so
  all items are scored with one matrix product. Trained with in-batch negatives
  (:func:`multiple_negatives_loss`).

Both trainers share one loop (:func:`_train_loop`): dynamic padding, AdamW with linear warm-up
and decay, gradient clipping, gradient accumulation, mixed precision on CUDA (bf16 where the
GPU supports it, else fp16 with loss scaling), periodic validation with early stopping (the best
weights are restored), a tqdm bar showing the loss, and a :class:`TrainHistory` of everything.

Parameter-efficient option: :func:`freeze_lower_layers` keeps only the top ``n`` transformer
layers (plus pooler / classifier head) trainable. For the two-tower model with frozen lower
layers, the frozen trunk's outputs are computed once per text and cached
(:class:`TwoTower` ``cache_trunk``), so a training step only runs the top layers: texts repeat
across pairs (943 users, 1,682 films), so this removes most of the compute.

Determinism: every random choice draws from a generator seeded by ``TrainConfig.seed``; on CPU
two runs with the same seed give the same weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_lib.linalg import normalize_rows, positions
from recsys_lib.evaluation.metrics import log_loss, roc_auc
from recsys_lib.runtime import resolve_device

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike
    from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

    from recsys_lib.data.interactions import Catalogue, Interactions

#: Class ids of the click model. (The source article swapped these two dicts.)
ID2LABEL = {0: "no_click", 1: "click"}
LABEL2ID = {"no_click": 0, "click": 1}


# ----------------------------------------------------------------------------------- loading
def default_model_path(model: str = "default") -> str:
    """Local folder of the encoder (``"default"``: the verified all-MiniLM-L6-v2 copy)."""
    from recsys_lib.text.embeddings import resolve_model_path

    return resolve_model_path(model)


def load_tokenizer(model: str = "default") -> PreTrainedTokenizerBase:
    """The model's tokenizer (fast). Remote code is never run."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_path(model), trust_remote_code=False)


def load_encoder(model: str = "default") -> PreTrainedModel:
    """``AutoModel`` (no head) for the two-tower model, in train mode."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(default_model_path(model), trust_remote_code=False)


def load_cross_encoder(model: str = "default", seed: int = 0) -> PreTrainedModel:
    """``AutoModelForSequenceClassification`` with two classes (0 = no_click, 1 = click).

    The classification head (and, for sentence-transformers checkpoints, the pooler) is new and
    initialised from ``seed``; a folder written by :func:`save_model` loads with its trained head.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, logging

    torch.manual_seed(seed)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "some weights are newly initialised" is expected here
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            default_model_path(model),
            num_labels=2,
            id2label=ID2LABEL,
            label2id=LABEL2ID,
            trust_remote_code=False,
        )
    finally:
        logging.set_verbosity(verbosity)


def save_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path
) -> Path:
    """Write weights (``model.safetensors``), config and tokenizer into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if not (folder / "model.safetensors").is_file():
        raise RuntimeError(f"save_pretrained wrote no model.safetensors into {folder}.")
    return folder


# ------------------------------------------------------------------------ parameter freezing
def count_parameters(model: torch.nn.Module) -> dict[str, float]:
    """{"trainable": n, "total": n, "share": trainable / total} over the model's parameters."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "share": trainable / total if total else 0.0}


def _encoder_layers(model):
    base = getattr(model, "base_model", model)
    try:
        return base.embeddings, base.encoder.layer
    except AttributeError as err:
        raise TypeError(
            f"{type(model).__name__} has no .embeddings / .encoder.layer; freezing by layer "
            "supports BERT-style encoders only."
        ) from err


def freeze_lower_layers(model: PreTrainedModel, n_trainable: int | None) -> dict[str, float]:
    """Freeze the embeddings and all but the top ``n_trainable`` transformer layers.

    ``None`` trains everything. Parameters outside the encoder (pooler, classification head)
    stay trainable. Returns :func:`count_parameters` after freezing.
    """
    embeddings, layers = _encoder_layers(model)
    for p in model.parameters():
        p.requires_grad_(True)
    if n_trainable is not None:
        if not 0 <= n_trainable <= len(layers):
            raise ValueError(
                f"n_trainable must be between 0 and {len(layers)} (layers in the model), "
                f"got {n_trainable}; use None to train everything."
            )
        for p in embeddings.parameters():
            p.requires_grad_(False)
        for layer in layers[: len(layers) - n_trainable]:
            for p in layer.parameters():
                p.requires_grad_(False)
    return count_parameters(model)


# ---------------------------------------------------------------------------- training loop
@dataclass
class TrainConfig:
    """Knobs of both trainers. Steps count optimizer updates (after accumulation)."""

    epochs: int = 1  # passes over the training examples
    max_steps: int | None = None  # stop after this many updates (None: epochs decide)
    batch_size: int = 32  # examples per forward pass
    grad_accum: int = 1  # forward passes per update (effective batch = batch_size * grad_accum)
    lr: float = 5e-5
    weight_decay: float = 0.01  # AdamW decay, not applied to biases and LayerNorm weights
    head_lr_scale: float = 1.0  # lr multiplier of the layers after the encoder (pooler, head)
    warmup_ratio: float = 0.1  # share of updates with linearly rising learning rate
    max_grad_norm: float = 1.0  # gradient clipping (None or 0: off)
    max_length: int = 128  # tokens per text (pair for the cross-encoder)
    eval_every: int | None = 50  # updates between validations (None: once per epoch)
    patience: int | None = 3  # validations without improvement before stopping (None: never)
    amp: bool = True  # mixed precision, used on CUDA only
    seed: int = 0
    device: str = "auto"
    progress: bool = True  # tqdm bar with the running loss


@dataclass
class TrainHistory:
    """What happened during training; ``evals`` holds one dict per validation."""

    steps: list[int] = field(default_factory=list)  # update number of each loss value
    loss: list[float] = field(default_factory=list)  # mean training loss of each update
    lr: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # loop seconds at each update (no eval)
    evals: list[dict] = field(default_factory=list)  # {"step": s, metric: value, ...}
    best_step: int | None = None
    best_score: float | None = None
    stopped_early: bool = False
    examples: int = 0  # training examples processed (forward + backward)
    seconds: float = 0.0  # wall time of the loop, validation excluded
    eval_seconds: float = 0.0
    setup_seconds: float = 0.0  # one-off work before the loop (e.g. caching a frozen trunk)
    device: str = "cpu"

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("nan")

    def eval_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.evals)

    def to_dict(self) -> dict:
        return {**asdict(self), "examples_per_second": self.examples_per_second}


def _optimizer_and_schedule(model, config: TrainConfig, total_steps: int):
    """AdamW (decay on weight matrices only) and a linear warm-up / linear decay schedule."""
    import torch

    try:
        embeddings, layers = _encoder_layers(model)  # the rest (pooler, head) counts as "head"
        encoder_ids = {id(p) for p in [*embeddings.parameters(), *layers.parameters()]}
    except TypeError:  # not BERT-shaped (sequential models, recsys_lib.llm.generative decoders): one group
        encoder_ids = {id(p) for p in model.parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decays = not (p.ndim < 2 or "LayerNorm" in name or "norm" in name)
        groups.setdefault((decays, id(p) not in encoder_ids), []).append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters; check freeze_lower_layers().")
    groups = [
        {
            "params": params,
            "weight_decay": config.weight_decay if decays else 0.0,
            "lr": config.lr * (config.head_lr_scale if head else 1.0),
        }
        for (decays, head), params in sorted(groups.items())
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    warmup = int(round(config.warmup_ratio * total_steps))

    def factor(step: int) -> float:
        return linear_warmup_factor(step, total_steps, warmup)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def linear_warmup_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """The learning-rate multiplier used by the trainers at update ``step`` (from 0).

    Rises linearly to 1 over ``warmup_steps``, then falls linearly to 0 at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def _train_loop(
    model,
    batches: Callable[[np.random.Generator], Iterator],
    n_batches_per_epoch: int,
    loss_fn: Callable[[object], tuple[object, int]],
    config: TrainConfig,
    evaluate: Callable[[], dict] | None,
    monitor: str,
    higher_is_better: bool,
) -> TrainHistory:
    """Shared loop. ``batches(rng)`` yields one epoch of batches; ``loss_fn(batch)`` returns
    (mean loss tensor, number of examples); ``evaluate()`` returns metrics incl. ``monitor``."""
    import torch
    from tqdm.auto import tqdm

    if n_batches_per_epoch < config.grad_accum:
        raise ValueError(
            f"an epoch has {n_batches_per_epoch} batch(es) but grad_accum={config.grad_accum} "
            "forward passes are needed per update, so training would never take a step; "
            "give more examples, a smaller batch_size or a smaller grad_accum."
        )
    device = resolve_device(config.device)
    history = TrainHistory(device=device)
    steps_per_epoch = max(1, n_batches_per_epoch // config.grad_accum)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps) if config.epochs else config.max_steps
    optimizer, scheduler = _optimizer_and_schedule(model, config, total)
    use_amp = config.amp and device.startswith("cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    params = [p for p in model.parameters() if p.requires_grad]
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    eval_every = config.eval_every or steps_per_epoch
    best_state, bad_evals, step = None, 0, 0

    def run_eval() -> bool:
        """Validate; keep the best weights; return True when patience ran out."""
        nonlocal best_state, bad_evals
        start = time.perf_counter()
        metrics = evaluate()
        history.eval_seconds += time.perf_counter() - start
        history.evals.append({"step": step, **metrics})
        score = metrics[monitor]
        better = history.best_score is None or (
            score > history.best_score if higher_is_better else score < history.best_score
        )
        if better:
            history.best_score, history.best_step, bad_evals = float(score), step, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_evals += 1
        return config.patience is not None and bad_evals >= config.patience

    if evaluate is not None:
        run_eval()  # the starting point, so "fine-tuning helped" is visible in the history
    bar = tqdm(total=total, desc="training", unit="step", disable=not config.progress)
    start = time.perf_counter()
    done = False
    while not done:
        model.train()
        pending, pending_loss, steps_before_epoch = 0, 0.0, step
        for batch in batches(rng):
            with torch.autocast("cuda", dtype=amp_dtype, enabled=use_amp):
                loss, n = loss_fn(batch)
            scaler.scale(loss / config.grad_accum).backward()
            pending += 1
            pending_loss += float(loss.detach()) / config.grad_accum
            history.examples += int(n)
            if pending < config.grad_accum:
                continue
            scaler.unscale_(optimizer)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            history.lr.append(float(scheduler.get_last_lr()[0]))
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            history.steps.append(step)
            history.loss.append(pending_loss)
            history.times.append(time.perf_counter() - start)
            bar.update(1)
            bar.set_postfix(loss=f"{pending_loss:.4f}")
            pending, pending_loss = 0, 0.0
            if evaluate is not None and (step % eval_every == 0 or step == total):
                paused = time.perf_counter()
                stop = run_eval()
                start += time.perf_counter() - paused
                model.train()
                if stop:
                    history.stopped_early = True
                    done = True
                    break
            if step >= total:
                done = True
                break
        optimizer.zero_grad(set_to_none=True)  # drop a trailing partial accumulation
        if not done and step == steps_before_epoch:
            raise RuntimeError(
                f"an epoch yielded fewer than grad_accum={config.grad_accum} batches, so no "
                "update was made; the batch iterator returned less than n_batches_per_epoch="
                f"{n_batches_per_epoch} promised."
            )
    history.seconds = time.perf_counter() - start
    bar.close()
    if evaluate is not None and history.evals[-1]["step"] != step:
        run_eval()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


# ------------------------------------------------------------------------- cross-encoder
def _pair_texts(pairs: pd.DataFrame, user_text: pd.Series, item_text: pd.Series):
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
    return tokenizer(
        user_texts,
        item_texts,
        truncation="longest_first",
        max_length=max_length,
        padding="longest",
        return_tensors="pt",
    )


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
    model.to(device).eval()
    users, items = _pair_texts(pairs, user_text, item_text)
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
    embeddings, layers = _encoder_layers(model)
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
        model.to(self.device)
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
        rows = _as_index(rows).to(self.device)
        mask = self.mask[rows]
        hidden = self.hidden[rows]
        if self.right_padded:  # dynamic padding: trim to the longest pair of this batch
            width = int(mask.sum(1).max())
            hidden, mask = hidden[:, :width], mask[:, :width]
        hidden = _upper_layers(model, hidden, mask, self.n_frozen)
        pooler = getattr(model.base_model, "pooler", None)
        pooled = pooler(hidden) if pooler is not None else hidden[:, 0]
        return model.classifier(model.dropout(pooled))

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


def _frozen_trunk(model, enc, n_frozen: int):
    """Embeddings + the lowest ``n_frozen`` layers of a BERT-style model, in eval mode and
    without gradients: hidden states (B, L, H) for a tokenised batch ``enc``."""
    import torch

    embeddings, layers = _encoder_layers(model)
    with torch.no_grad():
        embeddings.eval()
        hidden = embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
        mask4 = _bidirectional_mask(model.config, hidden, enc["attention_mask"])
        for layer in layers[:n_frozen]:
            layer.eval()
            hidden = _call_layer(layer, hidden, mask4)
    return hidden


def _upper_layers(model, hidden, attention_mask, n_frozen: int):
    """The layers above the frozen ``n_frozen`` (with gradients): hidden states (B, L, H)."""
    _, layers = _encoder_layers(model)
    mask4 = _bidirectional_mask(model.config, hidden, attention_mask)
    for layer in layers[n_frozen:]:
        hidden = _call_layer(layer, hidden, mask4)
    return hidden


def _bidirectional_mask(config, hidden, attention_mask):
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(
        config=config, inputs_embeds=hidden, attention_mask=attention_mask
    )


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

    ``cache_trunk`` (default): when the embeddings and some lower layers are frozen
    (:func:`freeze_lower_layers`), the training and validation pairs go through the frozen part
    once (:class:`PairTrunkCache`, timed in ``TrainHistory.setup_seconds``) and every update
    runs only the top layers. The frozen layers then run without dropout, the one difference
    from the uncached loop.
    """
    import torch

    device = resolve_device(config.device)
    model.to(device)
    users, items = _pair_texts(train_pairs, user_text, item_text)
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

    def batches(rng):
        order = rng.permutation(n)
        for start in range(0, n, config.batch_size):
            yield order[start : start + config.batch_size]

    def loss_fn(rows):
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
            val_trunk = PairTrunkCache(model, tokenizer, *_pair_texts(val_pairs, vtext, item_text),
                                       max_length=config.max_length, device=device)  # fmt: skip

        def evaluate():
            if val_trunk is not None:
                probs = val_trunk.predict_proba(model)
            else:
                probs = predict_click_proba(model, tokenizer, val_pairs, vtext, item_text,
                                            max_length=config.max_length, device=device)  # fmt: skip
            return click_metrics(val_labels, probs)

    setup_seconds = time.perf_counter() - setup
    history = _train_loop(
        model, batches, n_batches, loss_fn, config, evaluate, monitor,
        higher_is_better=(monitor != "log_loss"),
    )  # fmt: skip
    history.setup_seconds = setup_seconds
    return history


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
        self.encoder.to(self.device)
        freeze_lower_layers(encoder, n_trainable)
        pooler = getattr(encoder, "pooler", None)
        if pooler is not None:  # the [CLS] pooler is not used by mean pooling: keep it out
            for p in pooler.parameters():
                p.requires_grad_(False)
        self.params = count_parameters(encoder)
        _, layers = _encoder_layers(encoder)
        self.n_layers = len(layers)
        self.n_frozen = 0 if n_trainable is None else self.n_layers - n_trainable
        self.cache_trunk = bool(cache_trunk) and self.n_frozen > 0
        self._cache: dict[str, tuple] = {}  # name -> (trunk hidden states, attention mask)
        self._texts: dict[str, list[str]] = {}  # name -> the cached texts
        self._lookup: dict[str, dict[str, int]] = {}  # name -> {text: row}

    # -- internals --------------------------------------------------------------------
    def _tokenize(self, texts: list[str]):
        return self.tokenizer(texts, truncation=True, max_length=self.max_length,
                              padding="longest", return_tensors="pt").to(self.device)  # fmt: skip

    def _trunk(self, enc):
        """Embeddings + frozen layers: (hidden (B, L, H), attention_mask (B, L))."""
        return _frozen_trunk(self.encoder, enc, self.n_frozen), enc["attention_mask"]

    def _top(self, hidden, attention_mask):
        """Trainable layers + pooling + normalisation: (B, H)."""
        from recsys_lib.text.embeddings import pool

        hidden = _upper_layers(self.encoder, hidden, attention_mask, self.n_frozen)
        return normalize_rows(pool(hidden, attention_mask, self.pooling))

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
            hidden, mask = self._cache[name]
            rows = _as_index(rows)
            mask = mask[rows]
            width = int(mask.sum(1).max())  # dynamic padding: trim to the longest text
            return self._top(hidden[rows, :width], mask[:, :width])
        enc = self._tokenize(list(texts))
        if self.n_frozen == 0:
            from recsys_lib.text.embeddings import pool

            hidden = self.encoder(**enc).last_hidden_state
            return normalize_rows(pool(hidden, enc["attention_mask"], self.pooling))
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


def _as_index(rows):
    import torch

    return torch.as_tensor(np.asarray(rows), dtype=torch.long)


def _call_layer(layer, hidden, mask4):
    out = layer(hidden, mask4)
    return out[0] if isinstance(out, tuple) else out


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
    evaluate: Callable[[TwoTower], dict] | None = None,
    monitor: str = "ndcg@10",
) -> TrainHistory:
    """Fine-tune ``tower`` on positive (user_id, item_id) pairs with in-batch negatives.

    One epoch = every user once (:func:`user_unique_batches`); in-batch items that are also
    positives of the row's user are masked out of its negatives. ``logq_correction`` subtracts
    the log of each item's chance to be drawn as a batch positive (:func:`positive_draw_log_q`)
    from its logits. ``evaluate(tower)`` returns
    validation metrics (e.g. :func:`ranking_metrics`); the best ``monitor`` value wins.
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

    def batches(rng):
        yield from user_unique_batches(u_code, i_code, config.batch_size, rng)

    def loss_fn(batch):
        users, items = batch
        u = tower.embed_batch(name="users", rows=users)
        v = tower.embed_batch(name="items", rows=items)
        mask = torch.as_tensor(in_batch_positive_mask(users, items, keys, len(item_ids)),
                               device=u.device)  # fmt: skip
        log_q = log_q_all[_as_index(items).to(tower.device)] if logq_correction else None
        loss = multiple_negatives_loss(u.float(), v.float(), temperature, mask, symmetric, log_q)
        return loss, len(users)

    evaluate_fn = None if evaluate is None else (lambda: evaluate(tower))
    return _train_loop(tower.encoder, batches, n_batches, loss_fn, config, evaluate_fn, monitor,
                       higher_is_better=True)  # fmt: skip


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
    from recsys_lib.models.base import FactorModel, evaluate

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
