"""The course machinery, not recommender code: the notebook runner and its regression bands,
validated choices shared between chapters, the quick-start pipeline, plots, the static site and
its browser check.

Modules: bands, choices, notebooks, pipeline, plots, site, sitecheck.
"""

__all__ = ["bands", "choices", "notebooks", "pipeline", "plots", "site", "sitecheck"]
