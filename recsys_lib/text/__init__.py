"""Language for recommendation: natural-language descriptions of users and items, the BERT-style
encoder and its cache, training pairs, and fine-tuning (cross-encoder, two-tower, LoRA).

Modules: descriptions, embeddings, finetune, lora, pairs.
"""

__all__ = ["descriptions", "embeddings", "finetune", "lora", "pairs"]
