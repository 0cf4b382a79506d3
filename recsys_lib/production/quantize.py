"""Making the text encoder cheaper to run: int8 on CPU, fp16 on CUDA, fewer layers.

* :func:`quantize_linear_int8` - dynamic int8 quantisation of the ``nn.Linear`` layers
  (``torch.ao.quantization.quantize_dynamic``): weights are stored as int8 with one scale per
  output channel (``per_channel=True``) or per tensor; activations are quantised on the fly
  per batch; everything else (embeddings, LayerNorm, softmax) stays fp32. CPU only.
  torch 2.13 still ships this API but marks ``torch.ao.quantization`` deprecated in favour of
  ``torchao`` (``quantize_`` with an int8 dynamic-activation config), which is not a
  dependency of this project; the deprecation warnings are silenced here and nowhere else.
* :func:`half_precision` - an fp16 copy for CUDA.
* :func:`drop_layers` - structured pruning by keeping only the first transformer layers.
* :func:`variant_encoder` - a copy of a :class:`~recsys_lib.text.embeddings.TextEncoder` that runs
  a different model (its disk cache switched off, so fp32 vectors are never mixed with the
  variant's).
* :func:`cached_variant` - a variant that does use the disk cache, under a key of its own: the
  sha256 of its model's serialised weights (:func:`model_sha256`), so a rerun reads the vectors
  the same variant wrote and no other encoder's.
* :func:`compare_encoders` - throughput (median over repeats) and agreement (cosine of each
  text's vector to the reference encoder's) in one table.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import io
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_lib.linalg import row_cosine

if TYPE_CHECKING:
    import torch

    from recsys_lib.text.embeddings import TextEncoder

#: Defaults for MiniLM found in a small sweep on 120 descriptions (cosine to fp32): per-tensor
#: int8 activations alone give ~0.97; smoothing (alpha 0.7) and keeping the first FFN output
#: layer in fp32 give ~0.996.
DEFAULT_SMOOTH_ALPHA = 0.7
#: Only the feed-forward layers' inputs have the outliers that hurt (attention inputs do not).
DEFAULT_SMOOTH_LAYERS = ("*.intermediate.dense", "*[0-9].output.dense")
#: The FFN output layer's input (the GELU output) is read by nothing else: scale it in place.
DEFAULT_INPLACE_LAYERS = ("*[0-9].output.dense",)
DEFAULT_INT8_SKIP = ("encoder.layer.0.output.dense*",)


def _first_device(model: torch.nn.Module) -> str:
    for p in model.parameters():
        return p.device.type
    return "cpu"


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """Qualified names of every ``nn.Linear`` in ``model`` (e.g. 'encoder.layer.0.output.dense')."""
    import torch

    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def quantize_linear_int8(
    model: torch.nn.Module, *, per_channel: bool = True, skip: Iterable[str] = ()
) -> torch.nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers run as dynamic int8 (CPU only).

    skip: fnmatch patterns of Linear names to keep in fp32 (e.g. ``"*.output.dense"``).
    The input model is not changed.
    """
    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    if _first_device(model) != "cpu":
        raise ValueError(
            "dynamic int8 quantisation runs on CPU only; move the model with .to('cpu') first "
            "(on CUDA use half_precision instead)."
        )
    skip = list(skip)
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    names = [n for n in linear_layer_names(model) if not any(fnmatch.fnmatch(n, p) for p in skip)]
    if not names:
        raise ValueError(f"no nn.Linear layer left to quantise (skip={skip}).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_channel.*")
        quantized: torch.nn.Module = quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {name: qconfig for name in names}, dtype=torch.qint8, inplace=False
        )
        return quantized


def activation_absmax(model: torch.nn.Module, run: Callable[[], Any]) -> dict[str, torch.Tensor]:
    """Largest |input| per input channel of every ``nn.Linear`` while ``run()`` executes.

    ``run`` is a no-argument callable that feeds calibration data through ``model`` (e.g.
    ``lambda: encoder.encode(texts)``). Returns name -> float32 tensor (in_features,).
    """
    import torch

    stats: dict[str, Any] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(
            module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: object
        ) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0).float()
            stats[name] = torch.maximum(stats[name], x) if name in stats else x

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    if not stats:
        raise ValueError("run() sent nothing through the model's Linear layers.")
    return stats


def _scaled_input_class() -> Callable[..., torch.nn.Module]:
    import torch

    class ScaledInput(torch.nn.Module):
        """``linear(x * inv_scale)``: the input side of a smoothed Linear."""

        inv_scale: torch.Tensor  # a registered buffer

        def __init__(
            self, inv_scale: torch.Tensor, linear: torch.nn.Module, inplace: bool = False
        ) -> None:
            super().__init__()
            self.register_buffer("inv_scale", inv_scale)
            self.linear = linear
            self.inplace = inplace

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y: torch.Tensor = self.linear(
                x.mul_(self.inv_scale) if self.inplace else x * self.inv_scale
            )
            return y

    return ScaledInput


def smooth_linear_inputs(
    model: torch.nn.Module, absmax: dict[str, torch.Tensor], alpha: float = 0.7,
    include: Iterable[str] = ("*",), inplace: Iterable[str] = (),
) -> torch.nn.Module:  # fmt: skip
    """SmoothQuant-style rescaling (Xiao et al. 2023): a copy with outliers moved to weights.

    For each Linear y = W x with calibrated input maxima a_j, pick
    s_j = a_j^alpha / max_i |W_ij|^(1 - alpha) and compute y = (W diag(s)) (x / s): the
    same function in exact arithmetic, but the activations the int8 kernel quantises (one
    scale per tensor) no longer have a few huge channels, while the weights (one scale per
    output channel) absorb them easily. Each Linear whose name matches an ``include``
    pattern (fnmatch) becomes ``ScaledInput(1/s, Linear)``; the others are left alone (each
    wrapper costs one element-wise multiply per call). For names matching an ``inplace``
    pattern the multiply overwrites the input tensor (no new allocation): only safe where
    nothing else reads that tensor, as for the GELU output a BERT FFN output layer receives.
    """
    import torch

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    scaled_input = _scaled_input_class()
    smoothed = copy.deepcopy(model)
    for name, module in list(smoothed.named_modules()):
        if not isinstance(module, torch.nn.Linear) or name not in absmax:
            continue
        if not any(fnmatch.fnmatch(name, pattern) for pattern in include):
            continue
        act = absmax[name].to(module.weight.device).clamp(min=1e-5)
        wmax = module.weight.detach().abs().amax(0).clamp(min=1e-5)
        scale = (act**alpha / wmax ** (1.0 - alpha)).clamp(min=1e-5)
        with torch.no_grad():
            module.weight.mul_(scale[None, :])
        parent_name, _, child = name.rpartition(".")
        parent = smoothed.get_submodule(parent_name) if parent_name else smoothed
        in_place = any(fnmatch.fnmatch(name, pattern) for pattern in inplace)
        setattr(parent, child, scaled_input(1.0 / scale, module, in_place))
    return smoothed


def half_precision(model: torch.nn.Module, device: str = "cuda") -> torch.nn.Module:
    """An fp16 copy of ``model`` on a CUDA ``device`` (fp16 matmuls are slow or absent on CPU)."""
    from recsys_lib.runtime import resolve_device

    device = resolve_device(device)
    if not device.startswith("cuda"):
        raise ValueError(f"half_precision targets CUDA; got device {device!r}. Use int8 on CPU.")
    return copy.deepcopy(model).half().to(device).eval()


def drop_layers(model: torch.nn.Module, keep: int) -> torch.nn.Module:
    """A copy of a BERT-style encoder with only its first ``keep`` transformer layers.

    The simplest structured pruning: compute falls roughly in proportion to the layers
    kept; the embeddings no longer match the full model's, so quality has to be measured.
    """
    bert: Any = model  # a BERT-style encoder: .encoder.layer and .config
    try:
        n_layers = len(bert.encoder.layer)
    except AttributeError as err:
        raise TypeError(
            f"{type(model).__name__} has no .encoder.layer list; drop_layers supports "
            "BERT-style encoders only."
        ) from err
    if not 1 <= keep <= n_layers:
        raise ValueError(
            f"keep must be between 1 and {n_layers} (layers in the model), got {keep}."
        )
    import torch

    pruned = copy.deepcopy(model)
    pruned_bert: Any = pruned
    pruned_bert.encoder.layer = torch.nn.ModuleList(list(pruned_bert.encoder.layer)[:keep])
    pruned_bert.config.num_hidden_layers = keep
    return pruned


def serialized_megabytes(model: torch.nn.Module) -> float:
    """Size of ``torch.save(model.state_dict())`` in MB (10^6 bytes): what a deploy ships."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6


def variant_encoder(
    encoder: TextEncoder, model: torch.nn.Module, device: str | None = None
) -> TextEncoder:
    """A shallow copy of ``encoder`` (a TextEncoder) that runs ``model`` instead.

    The copy shares the tokenizer and settings, runs on ``device`` (default: the encoder's)
    and never reads or writes the embedding cache.
    """
    clone = copy.copy(encoder)
    clone.model = model.eval()
    clone.use_cache = False
    if device is not None:
        clone.device = device
    return clone


def model_sha256(model: torch.nn.Module) -> str:
    """sha256 of ``model``'s serialised state dict (int8 weights, scales and zero points included).

    Two models with this hash equal hold the same weights; with the same architecture and
    kernels they give the same vectors, so the hash can key an embedding cache.
    """
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buffer)
    return hashlib.sha256(buffer.getbuffer()).hexdigest()


def cached_variant(variant: TextEncoder) -> TextEncoder:
    """A copy of ``variant`` (from :func:`variant_encoder` and friends) that uses the disk cache.

    Its cache key replaces the fp32 weights' hash by ``"variant:" + model_sha256(model)`` (the
    other key fields, pooling, max length, tokenizer, stay), so its vectors are never mixed
    with the fp32 ones nor with another variant's, and a rerun with the same variant reads them
    back instead of running the model. Timing with :func:`time_encode` still bypasses the cache.
    """
    if not hasattr(variant, "weights_hash"):
        raise TypeError(
            f"cached_variant needs a TextEncoder variant with a cache key, got {type(variant).__name__}."
        )
    clone = copy.copy(variant)
    clone.weights_hash = f"variant:{model_sha256(variant.model)}"
    clone.use_cache = True
    return clone


def int8_encoder(
    encoder: TextEncoder, *, smooth_alpha: float | None = None,
    calibration_texts: list[str] | None = None,
    smooth_layers: Iterable[str] = DEFAULT_SMOOTH_LAYERS, **kwargs: Any,
) -> TextEncoder:  # fmt: skip
    """A CPU copy of ``encoder`` with an int8 model (kwargs go to :func:`quantize_linear_int8`).

    With ``smooth_alpha``, the inputs of the Linear layers matching ``smooth_layers`` are first
    smoothed (:func:`smooth_linear_inputs`) using maxima measured on ``calibration_texts``
    (texts the evaluation does not use).
    """
    model = encoder.model
    if _first_device(model) != "cpu":
        model = copy.deepcopy(model).cpu()
    if smooth_alpha is not None:
        if not calibration_texts:
            raise ValueError("smooth_alpha needs calibration_texts to measure activations on.")
        probe = variant_encoder(encoder, model, device="cpu")
        absmax = activation_absmax(
            model, lambda: probe.encode(list(calibration_texts), show_progress=False)
        )
        model = smooth_linear_inputs(
            model, absmax, smooth_alpha, smooth_layers, inplace=DEFAULT_INPLACE_LAYERS
        )
    return variant_encoder(encoder, quantize_linear_int8(model, **kwargs), device="cpu")


def fp16_encoder(encoder: TextEncoder, device: str = "cuda") -> TextEncoder:
    """A CUDA copy of ``encoder`` with an fp16 model."""
    half = half_precision(encoder.model, device)
    return variant_encoder(encoder, half, device=str(next(half.parameters()).device))


def time_encode(
    encoder: TextEncoder, texts: list[str], repeats: int = 3
) -> tuple[np.ndarray, list[float]]:
    """Encode ``texts`` ``repeats`` times without the cache; (embeddings, seconds per repeat)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    runner = (
        encoder
        if not getattr(encoder, "use_cache", False)
        else variant_encoder(encoder, encoder.model)
    )
    seconds, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = runner.encode(list(texts), show_progress=False)
        seconds.append(time.perf_counter() - start)
    assert out is not None  # repeats >= 1
    return out, seconds


def compare_encoders(
    encoders: dict[str, Any], texts: list[str], *, reference: str | None = None, repeats: int = 3,
    warmup: int = 16,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:  # fmt: skip
    """Throughput and agreement of several encoders on the same texts.

    encoders: name -> TextEncoder (or variant); ``reference`` (default: the first) is the one
    the others are compared with. Each encoder first encodes ``warmup`` texts untimed; then
    every repeat encodes all texts with each encoder in turn (interleaved, so drifting
    background load or clock speed hits all encoders alike). Returns (table, embeddings by name); the table has one row
    per encoder: texts_per_s (median over repeats), speedup (vs the reference's median),
    mean_cosine and min_cosine (row-wise, to the reference's vectors) and, where the encoder
    has a model, size_mb.
    """
    from tqdm.auto import tqdm

    if not encoders:
        raise ValueError("encoders is empty.")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    reference = reference or next(iter(encoders))
    if reference not in encoders:
        raise KeyError(f"reference {reference!r} is not among {list(encoders)}.")
    texts = list(texts)
    embeddings, rows = {}, {}
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    if warmup:
        for enc in encoders.values():
            time_encode(enc, texts[:warmup], repeats=1)
    for _ in tqdm(range(repeats), desc="timing rounds", unit="round"):
        for name, enc in encoders.items():
            embeddings[name], taken = time_encode(enc, texts, 1)
            seconds[name] += taken
    medians = {name: float(np.median(values)) for name, values in seconds.items()}
    for name in encoders:
        cos = row_cosine(embeddings[name], embeddings[reference])
        model = getattr(encoders[name], "model", None)
        rows[name] = {
            "texts_per_s": len(texts) / medians[name],
            "speedup": medians[reference] / medians[name],
            "mean_cosine": float(cos.mean()),
            "min_cosine": float(cos.min()),
            "size_mb": serialized_megabytes(model) if model is not None else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index"), embeddings
