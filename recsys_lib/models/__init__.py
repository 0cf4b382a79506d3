"""Recommenders on one contract (:class:`recsys_lib.models.base.Model`): popularity, matrix
factorisation (SVD, ALS, BPR, EASE, explicit MF), hybrids and cold start, sequences (transition,
SASRec, BERT4Rec) and semantic IDs.

Modules: base, coldstart, hybrid, mf, private, semantic_ids, sequential.
"""

__all__ = ["base", "coldstart", "hybrid", "mf", "private", "semantic_ids", "sequential"]
