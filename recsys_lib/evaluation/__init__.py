"""Ranking metrics (precision, recall, MAP, nDCG, beyond-accuracy), classification metrics (AUC,
log-loss) and the paired bootstrap over users.

Modules: metrics.
"""

__all__ = ["metrics"]
