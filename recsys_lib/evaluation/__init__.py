"""Ranking metrics (precision, recall, MAP, nDCG, beyond-accuracy), classification metrics (AUC,
log-loss) and the paired bootstrap over users.

Modules: metrics, protocol (evaluate a fitted model on test data), tuning (grid search on
validation data and stored searches).
"""

__all__ = ["metrics", "protocol", "tuning"]
