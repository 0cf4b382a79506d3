"""Vectors to ranked lists: row normalisation, cosine similarity, user profiles and the one top-k
with the library"s tie rule.

Modules: similarity, topk.
"""

__all__ = ["similarity", "topk"]
