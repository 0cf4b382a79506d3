"""Data and the evaluation protocol"s inputs: MovieLens 100K (verified download and cache), your own
interactions (validated CSV/Parquet), the sparse user x item matrix with its id maps, and the
benchmark splits.

Modules: interactions, movielens, owndata, sequences, splits.
"""

__all__ = ["interactions", "movielens", "owndata", "sequences", "splits"]
