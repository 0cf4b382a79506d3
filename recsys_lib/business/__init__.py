"""Business metrics, multi-task pCTR/pCVR models and business-aware re-ranking.

Shapes: ``n`` requests, ``C`` candidates per request, ``K`` slate size, ``d`` feature dim.
Slates are int arrays of item ids, shape (n, K), best position first.
"""

from recsys_lib.business.kpis import (  # noqa: F401
    catalog_coverage,
    ctr,
    cvr,
    exposure_share,
    intra_list_diversity,
    margin_per_impression,
    novelty,
    one_hot,
    revenue_per_impression,
)
from recsys_lib.business.multitask import (  # noqa: F401
    MultiTaskModel,
    candidate_positions,
    expected_value,
    fit_multitask,
    logged_values,
    offline_estimates,
    offline_values,
    predict_ctr_cvr,
    slate_predictions,
    slate_predictions_from,
)
from recsys_lib.business.reranking import (  # noqa: F401
    choose_operating_point,
    evaluate_slates,
    exposure_constrained_rerank,
    mmr_rerank,
    pareto_front,
    pareto_sweep,
    scalarise,
    tradeoff_slates,
    value_weight_tradeoff,
)

__all__ = [
    "MultiTaskModel",
    "candidate_positions",
    "catalog_coverage",
    "choose_operating_point",
    "ctr",
    "cvr",
    "evaluate_slates",
    "expected_value",
    "exposure_constrained_rerank",
    "exposure_share",
    "fit_multitask",
    "intra_list_diversity",
    "logged_values",
    "margin_per_impression",
    "mmr_rerank",
    "novelty",
    "offline_estimates",
    "offline_values",
    "one_hot",
    "pareto_front",
    "pareto_sweep",
    "predict_ctr_cvr",
    "revenue_per_impression",
    "scalarise",
    "slate_predictions",
    "slate_predictions_from",
    "tradeoff_slates",
    "value_weight_tradeoff",
]
