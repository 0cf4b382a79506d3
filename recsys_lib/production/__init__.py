"""From notebook to service: the serving Recommender and its artefact, the HTTP service and its
load test, the explorer page (every model side by side, with faithful reasons), quantisation,
privacy and drift monitoring.

Modules: explorer, loadtest, monitoring, privacy, quantize, service, serving, showcase.
"""

__all__ = ["explorer", "loadtest", "monitoring", "privacy", "quantize", "service", "serving",
           "showcase"]  # fmt: skip
