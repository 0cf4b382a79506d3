"""Generative LLMs as rankers and profile writers (SmolLM2 GGUF or any Hugging Face causal LM).

Modules: generative.
"""

__all__ = ["generative"]
