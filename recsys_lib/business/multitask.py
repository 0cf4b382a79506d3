"""The multi-task pCTR/pCVR model (shared embeddings, two heads), its fit and predictions, and the
off-policy estimates of a policy's slates from logged data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib.business.kpis import _check_same_shape
from recsys_lib.runtime import set_torch_threads

# ----------------------------------------------------------------------------- models


@dataclass
class MultiTaskModel:
    """Fitted pCTR/pCVR model (ESMM-style). Holds a torch module; use :func:`predict_ctr_cvr`."""

    module: Any
    price: np.ndarray
    losses: list[float]


def _build_module(n_users: int, n_items: int, n_cats: int, n_brands: int, dim: int, k: int) -> Any:
    import torch
    from torch import nn

    class _Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_items, dim)
            self.cat = nn.Embedding(n_cats, dim)
            self.brand = nn.Embedding(n_brands, dim)
            self.user_ctr = nn.Embedding(n_users, dim)
            self.user_cvr = nn.Embedding(n_users, dim)
            self.user_price = nn.Embedding(n_users, 2)  # per-user price slope (ctr, cvr)
            self.item_bias = nn.Embedding(n_items, 1)
            self.pos = nn.Parameter(torch.zeros(k))
            self.lin = nn.Linear(2, 2)  # log price, is_new -> (ctr, cvr) offsets
            for e in (self.item, self.cat, self.brand, self.user_ctr, self.user_cvr):
                nn.init.normal_(e.weight, std=0.05)
            nn.init.zeros_(self.user_price.weight)
            nn.init.zeros_(self.item_bias.weight)

        def forward(  # all (B,) except x (B, 2)
            self,
            u: torch.Tensor,
            i: torch.Tensor,
            c: torch.Tensor,
            b: torch.Tensor,
            x: torch.Tensor,
            pos: torch.Tensor | None,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            v = self.item(i) + self.cat(c) + self.brand(b)
            off = self.lin(x)
            up = self.user_price(u)
            lp = x[:, 0]
            ctr_logit = (
                (self.user_ctr(u) * v).sum(-1)
                + self.item_bias(i)[:, 0]
                + off[:, 0]
                + up[:, 0] * lp
                + (self.pos[pos] if pos is not None else 0.0)
            )
            cvr_logit = (self.user_cvr(u) * v).sum(-1) + off[:, 1] + up[:, 1] * lp
            return ctr_logit, cvr_logit

    return _Net()


def _item_side(
    catalog: pd.DataFrame, ref_price: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cat_codes = pd.factorize(catalog["category"], sort=True)[0]
    brand_codes = pd.factorize(catalog["brand"], sort=True)[0]
    x = np.stack(
        [np.log(catalog["price"].to_numpy() / ref_price), catalog["is_new"].to_numpy(float)], 1
    )
    return cat_codes, brand_codes, x.astype(np.float32)


def fit_multitask(
    users: np.ndarray,
    slates: np.ndarray,
    clicks: np.ndarray,
    purchases: np.ndarray,
    catalog: pd.DataFrame,
    n_users: int,
    click_weight: np.ndarray | None = None,
    dim: int = 16,
    epochs: int = 3,
    batch_size: int = 4096,
    lr: float = 0.02,
    weight_decay: float = 1e-5,
    seed: int = 0,
    device: str = "auto",
    num_threads: int | None = 1,
) -> MultiTaskModel:
    """Train pCTR and pCVR jointly on logged impressions (ESMM: the purchase label trains
    pCTR x pCVR on all impressions, which avoids the click-only selection bias).

    users (n,); slates, clicks, purchases (n, K); catalog: DataFrame with category, brand,
    price, is_new. ``click_weight`` (n, K) re-weights the click loss per impression; default
    all ones. Weighting the *positives* by value (``w = price / ref`` where clicked, 1
    elsewhere) makes the learned odds ``value x click odds``, i.e. a value-aware click model
    ("loss re-weighting"). A weight that depends on the item alone would not change the
    per-item optimum, only how shared parameters trade items off.
    Position is a feature during training and fixed to position 0 at prediction time.
    ``num_threads``: torch CPU threads during the fit (restored afterwards); one is fastest
    for these small updates (measured: 2 threads cost twice the CPU for the same result),
    None keeps torch's setting.
    """
    import torch

    _check_same_shape(slates=slates, clicks=clicks, purchases=purchases)
    if len(users) != slates.shape[0]:
        raise ValueError(f"users has {len(users)} rows but slates has {slates.shape[0]}")
    if click_weight is not None:
        _check_same_shape(slates=slates, click_weight=click_weight)
        if (np.asarray(click_weight) < 0).any():
            raise ValueError("click_weight must be non-negative")
    from recsys_lib.runtime import resolve_device

    dev = resolve_device(device)
    torch.manual_seed(seed)
    n, k = slates.shape
    price = catalog["price"].to_numpy()
    ref = float(np.median(price))
    cat_codes, brand_codes, x_item = _item_side(catalog, ref)
    net = _build_module(
        n_users, len(catalog), cat_codes.max() + 1, brand_codes.max() + 1, dim, k
    ).to(dev)
    items = slates.ravel()

    # two row-major tables, one gather per epoch: the shuffled epoch is then read in contiguous
    # slices (ten random gathers per update from 3-million-row columns dominated the update)
    ints = np.stack(
        [
            np.repeat(users, k),
            items,
            cat_codes[items],
            brand_codes[items],
            np.tile(np.arange(k), n),
        ],
        1,
    )
    w = np.ones(n * k) if click_weight is None else np.asarray(click_weight, float).ravel()
    floats = np.column_stack(
        [x_item[items], clicks.ravel(), purchases.ravel(), w / w.mean()]
    ).astype(np.float32)  # log price, is_new, click, purchase, click weight
    t_ints = torch.as_tensor(ints, dtype=torch.long)
    t_floats = torch.as_tensor(floats)
    # foreach: one fused update over all parameters (same result as the per-tensor loop)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    bce = torch.nn.functional.binary_cross_entropy
    gen = torch.Generator(device="cpu").manual_seed(seed)
    losses = []
    previous_threads = torch.get_num_threads()
    if dev == "cpu":
        set_torch_threads(num_threads)  # a kernel-variation run may override the count
    try:
        for _ in range(epochs):
            perm = torch.randperm(n * k, generator=gen)
            # column-major after the gather: each slice below is contiguous
            e_ints = t_ints[perm].T.contiguous().to(dev)
            e_floats = t_floats[perm].T.contiguous().to(dev)
            total = 0.0
            for s in range(0, n * k, batch_size):
                bi, bf = e_ints[:, s : s + batch_size], e_floats[:, s : s + batch_size]
                lc, lv = net(bi[0], bi[1], bi[2], bi[3], bf[:2].T, bi[4])
                pc, pv = torch.sigmoid(lc), torch.sigmoid(lv)
                loss = bce(pc, bf[2], weight=bf[4]) + bce((pc * pv).clamp(1e-7, 1 - 1e-7), bf[3])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
                opt.step()
                total += float(loss.detach()) * bi.shape[1]
            losses.append(total / (n * k))
    finally:
        torch.set_num_threads(previous_threads)
    net.eval()
    return MultiTaskModel(module=net.cpu(), price=price, losses=losses)


def predict_ctr_cvr(
    model: MultiTaskModel, users: np.ndarray, items: np.ndarray, catalog: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted pCTR (at the top position) and pCVR; users (n,), items (n, C) -> 2 x (n, C)."""
    import torch

    users, items = np.asarray(users), np.asarray(items)
    if items.ndim != 2 or len(users) != items.shape[0]:
        raise ValueError(f"need users (n,) and items (n, C); got {users.shape}, {items.shape}")
    cat_codes, brand_codes, x_item = _item_side(catalog, float(np.median(model.price)))
    flat = items.ravel()
    with torch.no_grad():
        lc, lv = model.module(
            torch.as_tensor(np.repeat(users, items.shape[1]), dtype=torch.long),
            torch.as_tensor(flat, dtype=torch.long),
            torch.as_tensor(cat_codes[flat], dtype=torch.long),
            torch.as_tensor(brand_codes[flat], dtype=torch.long),
            torch.as_tensor(x_item[flat]),
            torch.zeros(flat.size, dtype=torch.long),
        )
    return (
        torch.sigmoid(lc).numpy().reshape(items.shape),
        torch.sigmoid(lv).numpy().reshape(items.shape),
    )


def expected_value(pctr: np.ndarray, pcvr: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Expected value per impression ``pCTR * pCVR * value`` (value = price or margin), (n, C)."""
    _check_same_shape(pctr=pctr, pcvr=pcvr, value=value)
    product: np.ndarray = np.asarray(pctr) * np.asarray(pcvr) * np.asarray(value)
    return product


def slate_predictions(
    model: MultiTaskModel, users: np.ndarray, slates: np.ndarray, catalog: pd.DataFrame
) -> dict[str, np.ndarray]:
    """The model's expected click and revenue of each shown item *at the top slot*, the direct
    method of :func:`offline_estimates`: users (n,), slates (n, K) -> {"ctr": pCTR,
    "revenue_per_impression": pCTR * pCVR * price}, each (n, K)."""
    pctr, pcvr = predict_ctr_cvr(model, users, slates, catalog)
    return {
        "ctr": pctr,
        "revenue_per_impression": pctr * pcvr * catalog["price"].to_numpy()[slates],
    }


def candidate_positions(
    candidates: np.ndarray, slates: np.ndarray, chunk: int = 20_000
) -> np.ndarray:
    """Column of each slate item in its row of ``candidates``; (n, C), (n, K) -> (n, K).

    Candidates must be distinct within a row and every slate item one of them (as for any
    slate ranked from those candidates); raises otherwise.
    """
    candidates, slates = np.asarray(candidates), np.asarray(slates)
    if candidates.ndim != 2 or slates.ndim != 2 or len(candidates) != len(slates):
        raise ValueError(
            f"need candidates (n, C) and slates (n, K); got {candidates.shape}, {slates.shape}"
        )
    pos = np.empty(slates.shape, dtype=np.int64)
    for s in range(0, len(slates), chunk):  # (chunk, K, C) comparisons at a time
        equal = candidates[s : s + chunk, None, :] == slates[s : s + chunk, :, None]
        if not equal.any(2).all():
            raise ValueError("a slate item is not among its row's candidates")
        pos[s : s + chunk] = equal.argmax(2)
    return pos


def slate_predictions_from(
    pctr: np.ndarray, pcvr: np.ndarray, candidates: np.ndarray, slates: np.ndarray,
    price: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """:func:`slate_predictions` read from predictions already made for every candidate
    (pctr, pcvr, candidates: (n, C); slates (n, K); price (n_items,)) instead of running the
    model again: the same values, without a forward pass per evaluated policy."""
    pos = candidate_positions(candidates, slates)
    ctr = np.take_along_axis(np.asarray(pctr), pos, 1)
    cvr = np.take_along_axis(np.asarray(pcvr), pos, 1)
    return {"ctr": ctr, "revenue_per_impression": ctr * cvr * np.asarray(price)[slates]}


def offline_values(
    log: Any,
    target_slates: np.ndarray,
    price: np.ndarray,
    position_bias: np.ndarray,
    predicted_logged: Mapping[str, np.ndarray],
    predicted_target: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Per-visit position-based doubly robust values (n,) of a slate policy's CTR and revenue
    per impression on logged data (:func:`recsys_lib.business.ope.pbm_values`); their means are
    the PBM-DR estimates of :func:`offline_estimates` (same arguments). Two policies' values, or
    a policy's and :func:`logged_values`, pair visit by visit
    (:func:`recsys_lib.business.ope.paired_difference`)."""
    from recsys_lib.business import ope

    b = np.asarray(position_bias, dtype=float)
    rewards = _logged_rewards(log, price)
    return {
        m: ope.pbm_values(
            y,
            log.slates,
            target_slates,
            log.propensity,
            b,
            predicted_logged[m],
            predicted_target[m],
        )  # fmt: skip
        for m, y in rewards.items()
    }


def logged_values(log: Any, price: np.ndarray) -> dict[str, np.ndarray]:
    """What the logging policy itself achieved on each logged visit (n,): clicks and revenue
    per impression, observed, with no model and no weights (its on-policy value)."""
    return {m: y.mean(axis=1) for m, y in _logged_rewards(log, price).items()}


def _logged_rewards(log: Any, price: np.ndarray) -> dict[str, np.ndarray]:
    """Each logged slot's observed reward (n, K) per metric: clicks, and revenue (a purchase
    times the item's price); the one definition the off-policy values and estimates share."""
    return {
        "ctr": log.clicks,
        "revenue_per_impression": log.purchases * np.asarray(price)[log.slates],
    }


def offline_estimates(
    log: Any,
    target_slates: np.ndarray,
    price: np.ndarray,
    position_bias: np.ndarray,
    predicted_logged: Mapping[str, np.ndarray],
    predicted_target: Mapping[str, np.ndarray],
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Off-policy estimates of a deterministic slate policy's CTR and revenue per impression
    from logged data: what a team can compute before any A/B test (no simulator truth).

    log: :class:`recsys_lib.business.shop.ImpressionLog` of the logging policy (n visits, K slots);
    target_slates (n, K): what the policy would show on those visits; price (n_items,);
    position_bias (K,): examination probability per slot relative to the top, e.g.
    :func:`recsys_lib.business.ope.position_bias_from_exploration`. predicted_logged / predicted_target:
    the reward model's top-slot predictions (n, K) per metric for the logged and the target
    slates, from :func:`slate_predictions` (at slot k they are scaled by ``position_bias[k]``).
    Returns ``{metric: {"IPS", "SNIPS", "DR", "PBM-DR": ope.Estimate}}``: item-position IPS,
    self-normalised IPS, item-position doubly robust, and the position-based doubly robust
    estimate (:func:`recsys_lib.business.ope.pbm_estimate`, the lowest variance of the four).
    """
    from recsys_lib.business import ope

    b = np.asarray(position_bias, dtype=float)
    match = ope.item_position_match(target_slates, log.slates)
    rewards = _logged_rewards(log, price)
    out = {}
    for metric, y in rewards.items():
        q_log, q_tgt = predicted_logged[metric], predicted_target[metric]
        out[metric] = {
            "IPS": ope.ips_estimate(y, match, log.propensity, alpha),
            "SNIPS": ope.snips_estimate(y, match, log.propensity, alpha),
            "DR": ope.dr_estimate(y, match, log.propensity, b * q_log, b * q_tgt, alpha),
            "PBM-DR": ope.pbm_estimate(y, log.slates, target_slates, log.propensity, b, q_log,
                                       q_tgt, alpha),
        }  # fmt: skip
    return out
