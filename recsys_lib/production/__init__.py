"""From notebook to service: the serving Recommender and its artefact, the HTTP service and its
load test, quantisation, privacy and drift monitoring.

Modules: loadtest, monitoring, privacy, quantize, service, serving.
"""

__all__ = ["loadtest", "monitoring", "privacy", "quantize", "service", "serving"]
