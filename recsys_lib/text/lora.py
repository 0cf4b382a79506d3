"""Low-rank adapters (LoRA) for BERT-style encoders, kept small on purpose.

A frozen linear layer ``y = W x + b`` gets a trainable low-rank update:

    y = W x + b + (alpha / r) * B (A x),   A: (r, d_in), B: (d_out, r)

``A`` starts random and ``B`` at zero, so the adapted model starts *exactly* as the pretrained
one and only ``r * (d_in + d_out)`` numbers per wrapped layer train. With MiniLM's 384-wide
attention and r = 8, adapting query and value in every layer trains 74k weights instead of 22.7M.
After training, :func:`merge_lora` folds ``(alpha / r) * B A`` into ``W``: serving costs nothing
extra and :func:`recsys_lib.text.finetune.save_model` writes a normal checkpoint.

Adapting only the top layers keeps the lower ones fully frozen, so the cross-encoder's trunk
cache (:class:`recsys_lib.text.finetune.PairTrunkCache`) still applies.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``rank`` update scaled by ``alpha / rank``."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRA wraps nn.Linear layers, got {type(base).__name__}.")
        if rank < 1 or rank > min(base.in_features, base.out_features):
            raise ValueError(
                f"rank must be between 1 and {min(base.in_features, base.out_features)} for a "
                f"{base.in_features} -> {base.out_features} layer, got {rank}."
            )
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank = int(rank)
        self.scale = float(alpha) / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises weights
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (self.dropout(x) @ self.lora_a.T) @ self.lora_b.T
        out: torch.Tensor = self.base(x) + self.scale * update
        return out

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function (W + scale * B A)."""
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        out = out.to(device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(base.weight + self.scale * (self.lora_b @ self.lora_a))
            if base.bias is not None:
                out.bias.copy_(base.bias)
        return out


def _wrap_named(
    root: nn.Module, targets: Collection[str], rank: int, alpha: float, dropout: float
) -> int:
    """Wrap every ``nn.Linear`` below ``root`` whose attribute name is in ``targets``; return
    how many were wrapped."""
    wrapped = 0
    for module in list(root.modules()):
        for name, child in list(module.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(module, name, LoRALinear(child, rank, alpha, dropout))
                wrapped += 1
    return wrapped


def add_lora(
    model: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    targets: tuple[str, ...] = ("query", "value"),
    n_layers: int | None = None,
    dropout: float = 0.0,
) -> dict[str, float]:
    """Freeze the encoder and wrap the ``targets`` linear layers of its top ``n_layers``
    transformer layers (None: all) with :class:`LoRALinear`, in place.

    Parameters outside the encoder (pooler, classification head) stay trainable, as with
    :func:`recsys_lib.text.finetune.freeze_lower_layers`. Returns
    :func:`recsys_lib.text.finetune.count_parameters` after wrapping.
    """
    from recsys_lib.text.finetune import count_parameters, encoder_layers

    embeddings, layers = encoder_layers(model)
    if n_layers is not None and not 1 <= n_layers <= len(layers):
        raise ValueError(f"n_layers must be between 1 and {len(layers)}, got {n_layers}.")
    for p in [*embeddings.parameters(), *layers.parameters()]:
        p.requires_grad_(False)
    chosen = layers if n_layers is None else layers[len(layers) - n_layers :]
    wrapped = sum(_wrap_named(layer, targets, rank, alpha, dropout) for layer in chosen)
    if wrapped == 0:
        raise ValueError(
            f"no nn.Linear named {list(targets)} in the chosen layers; BERT-style attention "
            "uses 'query', 'key' and 'value'."
        )
    return count_parameters(model)


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear`` (in place)
    and return the model; the merged weights stay frozen as they were."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                merged = child.merged()
                merged.requires_grad_(False)
                setattr(module, name, merged)
    return model


def _block_list(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer blocks: its longest ``nn.ModuleList``."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no nn.ModuleList of transformer blocks.")
    return max(lists, key=len)


def add_lora_by_name(
    model: nn.Module,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    last_layers: int | None = None,
) -> dict[str, float]:
    """Freeze every parameter of ``model`` and wrap each ``nn.Linear`` whose attribute name is
    in ``targets`` (any depth) with :class:`LoRALinear`, in place; for decoders such as Llama
    (``q_proj``, ``v_proj``), the layout :mod:`peft` uses. ``last_layers``: wrap only inside
    the top ``last_layers`` transformer blocks (peft's ``layers_to_transform``); the backward
    pass then stops at the lowest adapted block, which makes an update cheaper. Returns the
    parameter counts."""
    from recsys_lib.text.finetune import count_parameters

    roots: list[nn.Module] = [model]
    if last_layers is not None:
        blocks = _block_list(model)
        if not 1 <= last_layers <= len(blocks):
            raise ValueError(f"last_layers must be between 1 and {len(blocks)} (the model's "
                             f"blocks), got {last_layers}.")  # fmt: skip
        roots = list(blocks)[len(blocks) - last_layers :]
    for p in model.parameters():
        p.requires_grad_(False)
    if sum(_wrap_named(root, targets, rank, alpha, dropout) for root in roots) == 0:
        raise ValueError(f"no nn.Linear named {list(targets)} in {type(model).__name__}.")
    return count_parameters(model)
