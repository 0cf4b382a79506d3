"""A deterministic, seeded shop simulator: the embedded default data set of chapter 8.

The world has a catalogue (category, brand, attributes, a text description, price, margin,
a "new item" flag and a latent embedding) and users with latent tastes and a personal price
sensitivity. Ground truth is fully known, which lets us check estimators against the truth:

* click probability (with position bias ``b_k = 1 / log2(k + 2)`` for 0-based position ``k``)::

    P(click | u, i, k) = b_k * sigmoid(click_bias + click_affinity * a_ui + q_i
                                       - click_price_effect * s_u * log(price_i / ref_price))

* purchase probability given a click::

    P(buy | click, u, i) = sigmoid(buy_bias + buy_affinity * a_ui
                                   - s_u * log(price_i / ref_price))

  where ``a_ui = affinity_scale * cos(taste_u, emb_i)``, ``q_i`` is item quality/popularity and
  ``s_u`` is the user's price sensitivity (log-normal around ``price_sensitivity``).

Prices are log-normal: ``log price = category level + N(0, price_log_sigma^2)``.

A request is one user visit with ``n_candidates`` candidate items (uniform retrieval); a policy
shows a slate of ``slate_size`` items. An *impression* is one (request, position) row.
The logging policy is an epsilon-greedy production ranker: with probability ``1 - epsilon`` it
shows the production ranking (a noisy popularity-plus-affinity score), otherwise a uniformly
random ordered ``slate_size``-subset of the candidates. Its exact propensity of putting item
``i`` at position ``k`` is ``(1 - eps) * 1[production puts i at k] + eps / n_candidates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_lib.linalg import normalize_rows, sigmoid
from recsys_lib.retrieval.topk import top_k_candidates
from recsys_lib.validation import POSITIVE_INT, check_params

CATEGORY_NAMES = (
    "shoes", "jackets", "t-shirts", "jeans", "watches", "bags", "headphones", "lamps",
    "mugs", "backpacks", "sunglasses", "kettles", "chairs", "notebooks", "perfume", "scarves",
)  # fmt: skip
ATTRIBUTE_VOCAB = (
    "black", "white", "red", "blue", "green", "leather", "cotton", "wool", "steel", "wooden",
    "vintage", "minimalist", "sporty", "premium", "compact", "waterproof", "handmade", "eco",
)  # fmt: skip


@dataclass(frozen=True)
class ShopConfig:
    """Documented default parameters of the shop simulator.

    These defaults were fixed before any policy was tuned; chapter 8 varies
    ``price_sensitivity`` to show how the CTR/revenue trade-off depends on it.
    """

    n_items: int = 1000  # catalogue size
    n_users: int = 2000  # user population
    n_categories: int = 12  # product categories (<= 16)
    n_brands: int = 40  # brands
    dim: int = 16  # latent taste / item embedding dimension
    slate_size: int = 10  # items shown per request (K)
    n_candidates: int = 50  # candidates per request from retrieval (C)
    new_item_frac: float = 0.1  # share of catalogue flagged as new
    price_log_mean: float = 3.5  # mean log price (about 33 currency units)
    price_log_sigma: float = 0.8  # within-category sd of log price
    category_price_sd: float = 0.5  # sd of category mean log price
    margin_low: float = 0.05  # margin rate is U(margin_low, margin_high) of price
    margin_high: float = 0.45
    price_sensitivity: float = 0.7  # median per-user price sensitivity s_u
    sensitivity_spread: float = 0.5  # sd of log s_u
    affinity_scale: float = 3.0  # a_ui = affinity_scale * cos(taste, emb)
    click_bias: float = -2.5
    click_affinity: float = 1.0
    click_price_effect: float = 0.2  # fraction of s_u that also lowers clicks on pricey items
    quality_sd: float = 0.5  # sd of item quality q_i
    new_item_quality_shift: float = -0.3  # new items have fewer reviews: lower q_i
    buy_bias: float = -2.0
    buy_affinity: float = 0.8
    logging_epsilon: float = 0.3  # exploration rate of the logging policy
    production_noise: float = 1.0  # sd of noise in the production ranker's score

    def validate(self) -> None:
        """Raise ValueError naming any out-of-range field."""
        if not 1 <= self.n_categories <= len(CATEGORY_NAMES):
            raise ValueError(
                f"n_categories={self.n_categories} must be in [1, {len(CATEGORY_NAMES)}]"
            )
        if not 1 <= self.slate_size <= self.n_candidates <= self.n_items:
            raise ValueError(
                "need 1 <= slate_size <= n_candidates <= n_items, got "
                f"{self.slate_size}, {self.n_candidates}, {self.n_items}"
            )
        if not 0.0 < self.logging_epsilon <= 1.0:
            raise ValueError(
                f"logging_epsilon={self.logging_epsilon} must be in (0, 1] so that every "
                "candidate has a positive propensity (needed for IPS)"
            )
        if self.price_sensitivity < 0:
            raise ValueError(f"price_sensitivity={self.price_sensitivity} must be >= 0")


@dataclass(frozen=True)
class Shop:
    """A generated shop world. Arrays are indexed by item id / user id.

    Attributes:
        config: the parameters used.
        catalog: DataFrame (n_items rows): item_id, category, brand, attributes, description,
            price, margin, is_new, quality.
        item_emb: (n_items, dim) unit-norm latent item vectors.
        user_taste: (n_users, dim) unit-norm latent tastes.
        user_sensitivity: (n_users,) price sensitivity s_u >= 0.
        ref_price: reference price (catalogue median).
    """

    config: ShopConfig
    catalog: pd.DataFrame
    item_emb: np.ndarray
    user_taste: np.ndarray
    user_sensitivity: np.ndarray
    ref_price: float
    price: np.ndarray = field(repr=False)
    margin: np.ndarray = field(repr=False)
    is_new: np.ndarray = field(repr=False)
    quality: np.ndarray = field(repr=False)
    category: np.ndarray = field(repr=False)

    @property
    def n_items(self) -> int:
        return self.config.n_items

    @property
    def n_users(self) -> int:
        return self.config.n_users


def make_shop(config: ShopConfig | None = None, seed: int = 0) -> Shop:
    """Generate the catalogue and user population deterministically from ``seed``."""
    cfg = config or ShopConfig()
    cfg.validate()
    rng = np.random.default_rng(seed)
    n, d = cfg.n_items, cfg.dim
    cat_centres = normalize_rows(rng.normal(size=(cfg.n_categories, d)), dtype=np.float64)
    brand_offsets = rng.normal(scale=0.5, size=(cfg.n_brands, d))
    category = rng.integers(0, cfg.n_categories, size=n)
    brand = rng.integers(0, cfg.n_brands, size=n)
    item_emb = normalize_rows(
        cat_centres[category]
        + 0.5 * normalize_rows(brand_offsets[brand], dtype=np.float64)
        + 0.4 * rng.normal(size=(n, d)),
        dtype=np.float64,
    )
    cat_level = cfg.price_log_mean + cfg.category_price_sd * rng.normal(size=cfg.n_categories)
    price = np.exp(cat_level[category] + cfg.price_log_sigma * rng.normal(size=n))
    price = np.round(price, 2).clip(0.99, None)
    margin = price * rng.uniform(cfg.margin_low, cfg.margin_high, size=n)
    is_new = np.zeros(n, dtype=bool)
    is_new[rng.choice(n, size=int(round(cfg.new_item_frac * n)), replace=False)] = True
    quality = cfg.quality_sd * rng.normal(size=n) + cfg.new_item_quality_shift * is_new
    attrs = rng.integers(0, len(ATTRIBUTE_VOCAB), size=(n, 2))
    attributes = [f"{ATTRIBUTE_VOCAB[a]}, {ATTRIBUTE_VOCAB[b]}" for a, b in attrs]
    descriptions = [
        f"{'New: ' if nw else ''}{CATEGORY_NAMES[c]} by brand_{b:02d} ({at}), {p:.2f} EUR"
        for c, b, at, p, nw in zip(category, brand, attributes, price, is_new, strict=True)
    ]
    catalog = pd.DataFrame(
        {
            "item_id": np.arange(n),
            "category": [CATEGORY_NAMES[c] for c in category],
            "brand": [f"brand_{b:02d}" for b in brand],
            "attributes": attributes,
            "description": descriptions,
            "price": price,
            "margin": margin,
            "is_new": is_new,
            "quality": quality,
        }
    )
    # users: a favourite category or two plus idiosyncratic noise
    fav = rng.integers(0, cfg.n_categories, size=(cfg.n_users, 2))
    taste = normalize_rows(
        cat_centres[fav[:, 0]]
        + 0.5 * cat_centres[fav[:, 1]]
        + 0.6 * rng.normal(size=(cfg.n_users, d)),
        dtype=np.float64,
    )
    sens = cfg.price_sensitivity * np.exp(
        cfg.sensitivity_spread * rng.normal(size=cfg.n_users) - cfg.sensitivity_spread**2 / 2
    )
    return Shop(
        config=cfg,
        catalog=catalog,
        item_emb=item_emb,
        user_taste=taste,
        user_sensitivity=sens,
        ref_price=float(np.median(price)),
        price=price,
        margin=margin,
        is_new=is_new,
        quality=quality,
        category=category,
    )


def stage_seeds(seed: int, stages: list[str] | tuple[str, ...]) -> dict[str, int]:
    """One independent integer seed per named stage, spawned from ``seed``.

    ``np.random.SeedSequence(seed).spawn(len(stages))`` gives statistically independent
    streams, so a change in one stage (say, a pilot that plans another sample size and so
    draws more visits) cannot reshuffle any other stage's draws. The seed of a stage depends on
    its position in ``stages``: append new stages at the end to keep the others.
    """
    if len(set(stages)) != len(stages) or not stages:
        raise ValueError(f"stages must be distinct names, got {list(stages)}")
    children = np.random.SeedSequence(seed).spawn(len(stages))
    return {
        name: int(child.generate_state(1)[0]) for name, child in zip(stages, children, strict=True)
    }


def position_bias(n_positions: int) -> np.ndarray:
    """Examination probability per 0-based position, shape (n_positions,): 1/log2(k+2)."""
    check_params("position_bias", {"n_positions": (POSITIVE_INT, n_positions)})
    return np.asarray(1.0 / np.log2(np.arange(n_positions) + 2.0))


def affinity(shop: Shop, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """True affinity ``a_ui``; users (n,), items (n, m) -> (n, m)."""
    u = shop.user_taste[users]
    return np.asarray(shop.config.affinity_scale * np.einsum("nd,nmd->nm", u, shop.item_emb[items]))


def click_prob(
    shop: Shop, users: np.ndarray, items: np.ndarray, positions: np.ndarray | None = None
) -> np.ndarray:
    """True P(click); users (n,), items (n, m), positions (m,) or (n, m) 0-based -> (n, m).

    ``positions=None`` gives the position-free attractiveness (as if examined for sure).
    """
    cfg = shop.config
    users = np.asarray(users)
    items = np.asarray(items)
    a = affinity(shop, users, items)
    log_rel_price = np.log(shop.price[items] / shop.ref_price)
    s = shop.user_sensitivity[users][:, None]
    logit = (
        cfg.click_bias
        + cfg.click_affinity * a
        + shop.quality[items]
        - cfg.click_price_effect * s * log_rel_price
    )
    p = sigmoid(logit)
    if positions is not None:
        bias = position_bias(int(np.max(positions)) + 1)
        p = p * bias[np.asarray(positions)]
    return p


def purchase_prob(shop: Shop, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """True P(purchase | click); users (n,), items (n, m) -> (n, m)."""
    cfg = shop.config
    users = np.asarray(users)
    items = np.asarray(items)
    a = affinity(shop, users, items)
    s = shop.user_sensitivity[users][:, None]
    logit = cfg.buy_bias + cfg.buy_affinity * a - s * np.log(shop.price[items] / shop.ref_price)
    return sigmoid(logit)


@dataclass(frozen=True)
class Requests:
    """User visits. users (n,), candidates (n, C) item ids (distinct within a row)."""

    users: np.ndarray
    candidates: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


def sample_requests(shop: Shop, n_requests: int, seed: int | np.random.SeedSequence) -> Requests:
    """Draw ``n_requests`` visits: uniform users and ``n_candidates`` distinct uniform items."""
    if n_requests < 1:
        raise ValueError(f"n_requests={n_requests} must be >= 1")
    cfg = shop.config
    rng = np.random.default_rng(seed)
    users = rng.integers(0, cfg.n_users, size=n_requests).astype(np.int32)
    # distinct candidates per row: argpartition of random keys (fast, vectorised)
    cands = np.empty((n_requests, cfg.n_candidates), dtype=np.int32)
    chunk = max(1, 2_000_000 // cfg.n_items)
    for s in range(0, n_requests, chunk):
        keys = rng.random((min(chunk, n_requests - s), cfg.n_items), dtype=np.float32)
        cands[s : s + len(keys)] = np.argpartition(keys, cfg.n_candidates, axis=1)[
            :, : cfg.n_candidates
        ]
    return Requests(users=users, candidates=cands)


def production_scores(
    shop: Shop, requests: Requests, seed: int | np.random.SeedSequence
) -> np.ndarray:
    """Noisy production ranker score per candidate, shape (n, C)."""
    rng = np.random.default_rng(seed)
    a = affinity(shop, requests.users, requests.candidates)
    noise = rng.normal(scale=shop.config.production_noise, size=a.shape)
    return np.asarray(shop.quality[requests.candidates] + 0.5 * a + noise)


@dataclass(frozen=True)
class ImpressionLog:
    """Logged interactions of the logging policy.

    Per-request arrays have shape (n_requests, K); ``to_frame`` flattens to one row per
    impression. ``production`` is the slate the production ranker would have shown; with it
    the exact propensity of any (item, position) under the logging policy can be computed.
    """

    requests: Requests
    slates: np.ndarray  # (n, K) shown item ids
    production: np.ndarray  # (n, K) production ranker's slate
    propensity: np.ndarray  # (n, K) P_log(shown item at this position)
    clicks: np.ndarray  # (n, K) bool
    purchases: np.ndarray  # (n, K) bool (implies click)
    epsilon: float
    n_candidates: int

    @property
    def n_impressions(self) -> int:
        return int(self.slates.size)

    @property
    def explored(self) -> np.ndarray:
        """(n,) bool: visits that got the random exploration slate instead of production's."""
        return np.asarray((self.slates != self.production).any(axis=1))

    def to_frame(self, shop: Shop) -> pd.DataFrame:
        """One row per impression: request, user_id, item_id, position, propensity, click,
        purchase, price, revenue, margin."""
        n, k = self.slates.shape
        items = self.slates.ravel()
        purch = self.purchases.ravel()
        return pd.DataFrame(
            {
                "request": np.repeat(np.arange(n), k),
                "user_id": np.repeat(self.requests.users, k),
                "item_id": items,
                "position": np.tile(np.arange(k, dtype=np.int8), n),
                "propensity": self.propensity.ravel(),
                "click": self.clicks.ravel(),
                "purchase": purch,
                "price": shop.price[items],
                "revenue": shop.price[items] * purch,
                "margin": shop.margin[items] * purch,
            }
        )


def logging_propensity(
    slates: np.ndarray, production: np.ndarray, epsilon: float, n_candidates: int
) -> np.ndarray:
    """P_log(item at position) for each entry of ``slates`` (n, K) -> (n, K)."""
    return np.asarray((1.0 - epsilon) * (slates == production) + epsilon / n_candidates)


def simulate_outcomes(
    shop: Shop, users: np.ndarray, slates: np.ndarray, seed: int | np.random.SeedSequence
) -> tuple[np.ndarray, np.ndarray]:
    """Sample clicks and purchases for shown slates; users (n,), slates (n, K) -> 2 x (n, K)."""
    rng = np.random.default_rng(seed)
    k = slates.shape[1]
    pc = click_prob(shop, users, slates, np.arange(k))
    pb = purchase_prob(shop, users, slates)
    clicks = rng.random(pc.shape, dtype=np.float32) < pc
    purchases = clicks & (rng.random(pb.shape, dtype=np.float32) < pb)
    return clicks, purchases


def visit_outcomes(
    shop: Shop, users: np.ndarray, slates: np.ndarray, seed: int | np.random.SeedSequence
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One experiment's outcomes: the (n, K) clicks and purchases of :func:`simulate_outcomes`
    for the shown ``slates``, and the per-visit values an A/B test compares (one per visit, the
    randomisation unit): ``revenue_per_visit`` (price of the purchases), ``clicks_per_visit``
    and ``margin_per_visit``."""
    clicks, purchases = simulate_outcomes(shop, users, slates, seed)
    per_visit = {
        "revenue_per_visit": (purchases * shop.price[slates]).sum(1),
        "clicks_per_visit": clicks.sum(1),
        "margin_per_visit": (purchases * shop.margin[slates]).sum(1),
    }
    return clicks, purchases, per_visit


def simulate_logs(
    shop: Shop, n_impressions: int, seed: int, chunk_requests: int = 20_000
) -> ImpressionLog:
    """Run the logging policy for ``n_impressions`` impressions (a multiple of the slate size).

    Deterministic in ``seed``. Work is chunked so 1e7 impressions fit in memory.
    """
    cfg = shop.config
    k = cfg.slate_size
    if n_impressions < k or n_impressions % k:
        raise ValueError(
            f"n_impressions={n_impressions} must be a positive multiple of slate_size={k}; "
            f"try {max(k, n_impressions // k * k)}"
        )
    n_req = n_impressions // k
    seeds = np.random.SeedSequence(seed).spawn(4)
    req = sample_requests(shop, n_req, seed=seeds[0])
    slates = np.empty((n_req, k), dtype=np.int32)
    prod = np.empty((n_req, k), dtype=np.int32)
    rng_explore = np.random.default_rng(seeds[1])
    noise_seeds = seeds[2].spawn((n_req + chunk_requests - 1) // chunk_requests)
    for j, s in enumerate(range(0, n_req, chunk_requests)):
        sub = Requests(req.users[s : s + chunk_requests], req.candidates[s : s + chunk_requests])
        prod[s : s + len(sub)] = top_k_candidates(
            production_scores(shop, sub, seed=noise_seeds[j]), sub.candidates, k
        )
    slates[:] = prod
    explore = rng_explore.random(n_req) < cfg.logging_epsilon
    n_exp = int(explore.sum())
    if n_exp:
        # random ordered K-subset of the candidates: first K of a random permutation
        keys = rng_explore.random((n_exp, cfg.n_candidates), dtype=np.float32)
        pick = np.argsort(keys, axis=1)[:, :k]
        slates[explore] = np.take_along_axis(req.candidates[explore], pick, axis=1)
    prop = logging_propensity(slates, prod, cfg.logging_epsilon, cfg.n_candidates)
    clicks = np.empty((n_req, k), dtype=bool)
    purchases = np.empty((n_req, k), dtype=bool)
    out_seeds = seeds[3].spawn(len(noise_seeds))
    for j, s in enumerate(range(0, n_req, chunk_requests)):
        e = s + chunk_requests
        clicks[s:e], purchases[s:e] = simulate_outcomes(
            shop, req.users[s:e], slates[s:e], seed=out_seeds[j]
        )
    return ImpressionLog(
        requests=req,
        slates=slates,
        production=prod,
        propensity=prop.astype(np.float32),
        clicks=clicks,
        purchases=purchases,
        epsilon=cfg.logging_epsilon,
        n_candidates=cfg.n_candidates,
    )


def true_policy_value(
    shop: Shop, users: np.ndarray, slates: np.ndarray, chunk: int = 100_000
) -> dict[str, float]:
    """Exact expected per-impression metrics of showing ``slates`` (n, K) to ``users`` (n,).

    Returns ctr (clicks/impression), cvr (purchases/click), revenue and margin per impression,
    purchases per impression.
    """
    k = slates.shape[1]
    tot = np.zeros(4)
    for s in range(0, len(users), chunk):
        u, sl = users[s : s + chunk], slates[s : s + chunk]
        pc = click_prob(shop, u, sl, np.arange(k))
        pbuy = pc * purchase_prob(shop, u, sl)
        tot += [pc.sum(), pbuy.sum(), (pbuy * shop.price[sl]).sum(), (pbuy * shop.margin[sl]).sum()]
    n_imp = slates.size
    return {
        "ctr": tot[0] / n_imp,
        "cvr": tot[1] / tot[0],
        "purchase_rate": tot[1] / n_imp,
        "revenue_per_impression": tot[2] / n_imp,
        "margin_per_impression": tot[3] / n_imp,
    }
