"""Recommenders whose training data is protected by differential privacy.

:class:`DPPopularity` ranks items by epsilon-DP item counts; the mechanism (contribution
bounding and Laplace noise) and the utility-versus-epsilon study live in
:mod:`recsys_lib.production.privacy`.
"""

from __future__ import annotations

import numpy as np

from recsys_lib.data.interactions import Interactions
from recsys_lib.models.base import Model
from recsys_lib.production.privacy import dp_item_counts, laplace_scale
from recsys_lib.validation import POSITIVE, POSITIVE_INT, SEED, Options, validate_params


class DPPopularity(Model):
    """Popularity ranked by epsilon-DP item counts (see :func:`recsys_lib.production.privacy.dp_item_counts`).

    ``epsilon=np.inf`` gives the capped counts without noise.
    """

    name = "dp_popularity"

    @validate_params({"epsilon": [POSITIVE, Options({np.inf})],
                      "max_items_per_user": POSITIVE_INT, "seed": SEED},
                     hints={"epsilon": "smaller epsilon = more private; np.inf = no noise"})  # fmt: skip
    def __init__(self, epsilon: float, max_items_per_user: int = 50, seed: int = 0) -> None:
        super().__init__()
        laplace_scale(max_items_per_user, epsilon)  # validate early
        self.epsilon, self.max_items_per_user, self.seed = epsilon, max_items_per_user, seed

    def _fit(self, train: Interactions) -> None:
        self.counts_, self.scale_ = dp_item_counts(
            train, self.epsilon, self.max_items_per_user, self.seed
        )

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        counts = self.counts_.astype(np.float32)
        return np.broadcast_to(counts, (len(user_rows), len(counts))).copy()
