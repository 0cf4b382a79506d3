"""Fine-tuning a transformer on interactions: a cross-encoder click model and a two-tower retriever.

Two ways to frame recommendation for a pretrained text encoder:

* **classification** (:func:`train_cross_encoder`): ``AutoModelForSequenceClassification`` reads
  "user description [SEP] item description" and predicts click / no click. Accurate, but every
  (user, item) pair needs its own forward pass, so it only re-ranks a short list.
* **retrieval** (:class:`TwoTower`, :func:`train_two_tower`): one shared encoder embeds user
  texts and item texts separately; the score is a dot product of the (L2-normalised) vectors, so
  all items are scored with one matrix product. Trained with in-batch negatives
  (:func:`multiple_negatives_loss`).

Both trainers share one loop (:func:`train_loop`): dynamic padding, AdamW with linear warm-up
and decay, gradient clipping, gradient accumulation, mixed precision on CUDA (bf16 where the
GPU supports it, else fp16 with loss scaling), periodic validation with early stopping (the best
weights are restored), a tqdm bar showing the loss, and a :class:`TrainHistory` of everything.

Parameter-efficient option: :func:`freeze_lower_layers` keeps only the top ``n`` transformer
layers (plus pooler / classifier head) trainable. For the two-tower model with frozen lower
layers, the frozen trunk's outputs are computed once per text and cached
(:class:`TwoTower` ``cache_trunk``), so a training step only runs the top layers: texts repeat
across pairs (943 users, 1,682 films), so this removes most of the compute.

Finished trainings are cached on disk (:mod:`~recsys_lib.text.finetune.fit_cache`): a second run
with the same starting weights, data, settings and library code reads the trained weights back.

Determinism: every random choice draws from a generator seeded by ``TrainConfig.seed``; on CPU
two runs with the same seed give the same weights.
"""

from recsys_lib.text.finetune.cross_encoder import (  # noqa: F401
    PairTrunkCache,
    click_metrics,
    frozen_depth,
    pair_texts,
    predict_click_proba,
    tokenize_pairs,
    train_cross_encoder,
)
from recsys_lib.text.finetune.fit_cache import (  # noqa: F401
    cached_training,
    default_fit_cache_dir,
    fingerprint,
    state_fingerprint,
)
from recsys_lib.text.finetune.training import (  # noqa: F401
    ID2LABEL,
    LABEL2ID,
    TrainConfig,
    TrainHistory,
    count_parameters,
    default_model_path,
    encoder_layers,
    freeze_lower_layers,
    linear_warmup_factor,
    load_cross_encoder,
    load_encoder,
    load_tokenizer,
    save_model,
    train_loop,
)
from recsys_lib.text.finetune.two_tower import (  # noqa: F401
    TwoTower,
    copy_state,
    in_batch_positive_mask,
    multiple_negatives_loss,
    plot_history,
    positive_draw_log_q,
    ranking_metrics,
    text_factors,
    train_two_tower,
    user_unique_batches,
)

__all__ = [
    "train_loop",
    "pair_texts",
    "encoder_layers",
    "ID2LABEL",
    "LABEL2ID",
    "PairTrunkCache",
    "TrainConfig",
    "TrainHistory",
    "TwoTower",
    "click_metrics",
    "copy_state",
    "count_parameters",
    "default_model_path",
    "freeze_lower_layers",
    "frozen_depth",
    "in_batch_positive_mask",
    "linear_warmup_factor",
    "load_cross_encoder",
    "load_encoder",
    "load_tokenizer",
    "multiple_negatives_loss",
    "plot_history",
    "positive_draw_log_q",
    "predict_click_proba",
    "ranking_metrics",
    "save_model",
    "text_factors",
    "tokenize_pairs",
    "train_cross_encoder",
    "train_two_tower",
    "user_unique_batches",
]
