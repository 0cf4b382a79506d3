"""Loading encoders and cross-encoders, freezing lower layers, and the one training loop (warm-up,
mixed precision, validation, early stopping) every fine-tuned model here uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_lib.runtime import resolve_device
from recsys_lib.validation import (
    BOOL,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    SEED,
    InstanceOf,
    Interval,
    check_params,
)

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


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

    encoder: PreTrainedModel = AutoModel.from_pretrained(
        default_model_path(model), trust_remote_code=False
    )
    return encoder


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
        loaded: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
            default_model_path(model),
            num_labels=2,
            id2label=ID2LABEL,
            label2id=LABEL2ID,
            trust_remote_code=False,
        )
        return loaded
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


def encoder_layers(model: Any) -> tuple[Any, Any]:
    """(embeddings module, list of transformer layers) of a BERT-style model, LoRA-wrapped or not."""
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
    embeddings, layers = encoder_layers(model)
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

    def __post_init__(self) -> None:
        """Refuse settings that would divide by zero deep in the loop or silently not train."""
        check_params("TrainConfig", {
            "epochs": (NON_NEGATIVE_INT, self.epochs),
            "max_steps": ([None, POSITIVE_INT], self.max_steps),
            "batch_size": (POSITIVE_INT, self.batch_size),
            "grad_accum": (POSITIVE_INT, self.grad_accum),
            "lr": (NON_NEGATIVE, self.lr),
            "weight_decay": (NON_NEGATIVE, self.weight_decay),
            "head_lr_scale": (NON_NEGATIVE, self.head_lr_scale),
            "warmup_ratio": (Interval(float, 0, 1, closed="left"), self.warmup_ratio),
            "max_grad_norm": ([None, NON_NEGATIVE], self.max_grad_norm),
            "max_length": (POSITIVE_INT, self.max_length),
            "eval_every": ([None, POSITIVE_INT], self.eval_every),
            "patience": ([None, POSITIVE_INT], self.patience),
            "amp": (BOOL, self.amp),
            "seed": (SEED, self.seed),
            "device": (InstanceOf(str), self.device),
            "progress": (BOOL, self.progress),
        }, hints={"batch_size": "e.g. batch_size=32", "grad_accum": "1 = no accumulation"})  # fmt: skip
        if self.epochs == 0 and self.max_steps is None:
            check_params("TrainConfig", {"epochs": (POSITIVE_INT, self.epochs)}, hints={
                "epochs": "epochs=0 trains nothing; give epochs >= 1, or max_steps to count "
                "updates instead"})  # fmt: skip


@dataclass
class TrainHistory:
    """What happened during training; ``evals`` holds one dict per validation."""

    steps: list[int] = field(default_factory=list)  # update number of each loss value
    loss: list[float] = field(default_factory=list)  # mean training loss of each update
    lr: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # loop seconds at each update (no eval)
    evals: list[dict[str, Any]] = field(default_factory=list)  # {"step": s, metric: value, ...}
    best_step: int | None = None
    best_score: float | None = None
    stopped_early: bool = False
    examples: int = 0  # training examples processed (forward + backward)
    seconds: float = 0.0  # wall time of the loop, validation excluded
    eval_seconds: float = 0.0
    setup_seconds: float = 0.0  # one-off work before the loop (e.g. caching a frozen trunk)
    device: str = "cpu"
    from_cache: bool = False  # read back by fit_cache.cached_training (seconds: the stored run's)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("nan")

    def eval_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.evals)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "examples_per_second": self.examples_per_second}


def _optimizer_and_schedule(
    model: torch.nn.Module, config: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (decay on weight matrices only) and a linear warm-up / linear decay schedule."""
    import torch

    try:
        embeddings, layers = encoder_layers(model)  # the rest (pooler, head) counts as "head"
        encoder_ids = {id(p) for p in [*embeddings.parameters(), *layers.parameters()]}
    except TypeError:  # not BERT-shaped (sequential models, recsys_lib.llm decoders): one group
        encoder_ids = {id(p) for p in model.parameters()}
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decays = not (p.ndim < 2 or "LayerNorm" in name or "norm" in name)
        groups.setdefault((decays, id(p) not in encoder_ids), []).append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters; check freeze_lower_layers().")
    param_groups = [
        {
            "params": params,
            "weight_decay": config.weight_decay if decays else 0.0,
            "lr": config.lr * (config.head_lr_scale if head else 1.0),
        }
        for (decays, head), params in sorted(groups.items())
    ]
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr)
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


def train_loop(
    model: torch.nn.Module,
    batches: Callable[[np.random.Generator], Iterator[Any]],
    n_batches_per_epoch: int,
    loss_fn: Callable[[Any], tuple[torch.Tensor, int]],
    config: TrainConfig,
    evaluate: Callable[[], dict[str, Any]] | None,
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
        assert evaluate is not None  # called only when there is an evaluate function
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
            scaler.scale(loss / config.grad_accum).backward()  # type: ignore[no-untyped-call]
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


def _as_index(rows: ArrayLike) -> torch.Tensor:
    import torch

    return torch.as_tensor(np.asarray(rows), dtype=torch.long)


def _call_layer(layer: Any, hidden: torch.Tensor, mask4: torch.Tensor | None) -> torch.Tensor:
    out = layer(hidden, mask4)
    result: torch.Tensor = out[0] if isinstance(out, tuple) else out
    return result
