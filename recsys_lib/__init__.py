"""recsys_lib: the small tested library behind the recsys-llm-notebooks course."""

__version__ = "0.1.0"
