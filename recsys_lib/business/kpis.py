"""Business KPIs of shown slates: CTR, CVR, revenue and margin per impression, exposure shares,
catalogue coverage and one-hot helpers (diversity and novelty are :mod:`recsys_lib.evaluation.metrics`'s).
"""

from __future__ import annotations

import numpy as np

from recsys_lib.evaluation import metrics as _metrics
from recsys_lib.validation import check_array, short_repr

# ----------------------------------------------------------------------------- metrics


def _check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"arrays must have the same shape, got {shapes}")
    for name, value in arrays.items():
        if name != "slates":
            check_array(name, value)


def _per_item(name: str, values: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """A (n_items,) finite array that every slate entry indexes (no wrap-around of -1)."""
    values = check_array(name, values, ndim=1)
    slates = np.asarray(slates)
    if slates.size and (slates.dtype.kind not in "iu" or slates.min() < 0
                        or slates.max() >= len(values)):  # fmt: skip
        raise ValueError(f"slates must hold item indices in 0..{len(values) - 1} (the length of "
                         f"{name}); got values from {slates.min()} to {slates.max()}")  # fmt: skip
    return values


def ctr(clicks: np.ndarray) -> float:
    """Click-through rate: clicks per impression; clicks (n, K) bool/0-1."""
    clicks = check_array("clicks", clicks, low=0, high=1)
    if clicks.size == 0:
        raise ValueError("ctr of an empty array is undefined; pass at least one impression")
    return float(clicks.mean())


def cvr(clicks: np.ndarray, purchases: np.ndarray) -> float:
    """Conversion rate: purchases per click; both (n, K). NaN when there are no clicks."""
    _check_same_shape(clicks=clicks, purchases=purchases)
    n_clicks = np.asarray(clicks).sum()
    return float(np.asarray(purchases).sum() / n_clicks) if n_clicks else float("nan")


def revenue_per_impression(purchases: np.ndarray, slates: np.ndarray, price: np.ndarray) -> float:
    """Revenue per impression; purchases (n, K), slates (n, K) item ids, price (n_items,)."""
    _check_same_shape(purchases=purchases, slates=slates)
    price = _per_item("price", price, slates)
    return float((np.asarray(purchases) * price[slates]).mean())


def margin_per_impression(purchases: np.ndarray, slates: np.ndarray, margin: np.ndarray) -> float:
    """Margin (profit) per impression; same shapes as :func:`revenue_per_impression`."""
    return revenue_per_impression(purchases, slates, margin)


# One definition each, shared with the ranking chapters (see recsys_lib.evaluation.metrics for sources):
# coverage = distinct shown items / n_items; novelty = mean -log2(share of users with the item).
catalog_coverage = _metrics.catalogue_coverage
novelty = _metrics.novelty
intra_list_diversity = _metrics.intra_list_diversity  # slates (n, K), item_features (n_items, d)


def exposure_share(
    slates: np.ndarray, item_mask: np.ndarray, position_weights: np.ndarray | None = None
) -> float:
    """Share of (position-weighted) exposure that goes to items with ``item_mask`` True.

    slates (n, K); item_mask (n_items,) bool (e.g. new or long-tail items);
    position_weights (K,) examination weights, default uniform.
    """
    slates = np.asarray(slates)
    w = (np.ones(slates.shape[1]) if position_weights is None
         else check_array("position_weights", position_weights, low=0))  # fmt: skip
    _per_item("item_mask", np.asarray(item_mask, dtype=float), slates)
    if w.shape != (slates.shape[1],):
        raise ValueError(f"position_weights shape {w.shape} must be ({slates.shape[1]},)")
    return float((np.asarray(item_mask)[slates] * w).sum() / (w.sum() * slates.shape[0]))


def one_hot(labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """(n,) int labels -> (n, n_classes) float one-hot matrix."""
    labels = np.asarray(labels)
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0):
        raise ValueError(f"labels must be integers >= 0, got {short_repr(labels.tolist())}")
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"label {labels.max()} needs n_classes > {labels.max()}, got {n_classes}")
    out = np.zeros((labels.size, n_classes))
    out[np.arange(labels.size), labels] = 1.0
    return out
