"""fp32 vs int8 (vs fewer layers, vs fp16 on CUDA) text encoder: throughput and agreement.

    .venv/bin/python benchmarks/bench_quantize.py [--n 512] [--repeats 3] [--threads 2]
        [--model default] [--ndcg]

Texts: MovieLens item descriptions and train-user descriptions, shuffled together; the first
``--n`` are timed, 64 others calibrate the smoothed int8 variant. Each encoder encodes the same
texts ``--repeats`` times with the cache off (after a warm-up); the table gives the median
texts/s, the speed-up over fp32, and the mean and minimum cosine of each text's vector to its
fp32 vector. ``--ndcg`` also encodes every user and item and reports nDCG@10 of the text
recommender (user-description vs item-description cosine, train items excluded) per encoder.

Variants: int8 per-tensor (plain ``quantize_dynamic``), int8 per-channel, int8 per-channel with
input smoothing and the first FFN output kept in fp32 (the chapter's choice), the first 3 of 6
layers (pruning), and fp16 on CUDA when a GPU is present.

Target (printed, never enforced): int8 >= 1.5x fp32 CPU throughput with mean cosine >= 0.99.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table  # noqa: E402

TARGET_SPEEDUP, TARGET_COSINE = 1.5, 0.99


def text_ndcg(encoder, user_texts, item_texts, train, test, k: int = 10) -> float:
    """nDCG@k of ranking items by cosine of description embeddings (train items excluded)."""
    from recsys_lib.evaluation.protocol import evaluate
    from recsys_lib.models.base import FactorModel

    users = encoder.encode(
        user_texts.reindex(train.catalogue.user_ids).tolist(), show_progress=False
    )
    items = encoder.encode(
        item_texts.reindex(train.catalogue.item_ids).tolist(), show_progress=False
    )
    return evaluate(FactorModel(users, items).fit(train), test, k)[f"ndcg@{k}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="texts timed per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--model", default="default", help="TextEncoder model (name or folder)")
    parser.add_argument("--ndcg", action="store_true", help="also nDCG@10 of the text recommender")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    import torch

    from recsys_lib.data.interactions import shared_interactions
    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.data.splits import recommenders_stratified_split
    from recsys_lib.linalg import row_cosine
    from recsys_lib.production import quantize
    from recsys_lib.text.descriptions import item_descriptions, user_descriptions
    from recsys_lib.text.embeddings import TextEncoder

    torch.set_num_threads(args.threads)
    ml = load_movielens_100k()
    train_df, test_df = recommenders_stratified_split(ml.ratings, seed=args.seed)
    item_texts = item_descriptions(ml.items)
    user_texts = user_descriptions(train_df, ml.items)
    pool = np.array(item_texts.tolist() + user_texts.tolist(), dtype=object)
    np.random.default_rng(args.seed).shuffle(pool)
    texts, calibration = pool[: args.n].tolist(), pool[-64:].tolist()

    fp32 = TextEncoder(args.model, device="cpu", use_cache=False)
    fp32.model = fp32.model.float()  # a folder may hold fp16 weights; the baseline is fp32
    encoders = {
        "fp32": fp32,
        "int8 per-tensor": quantize.int8_encoder(fp32, per_channel=False),
        "int8 per-channel": quantize.int8_encoder(fp32),
        "int8 smoothed (chapter)": quantize.int8_encoder(
            fp32,
            smooth_alpha=quantize.DEFAULT_SMOOTH_ALPHA,
            calibration_texts=calibration,
            skip=quantize.DEFAULT_INT8_SKIP,
        ),  # fmt: skip
        "fp32, 3 of 6 layers": quantize.variant_encoder(fp32, quantize.drop_layers(fp32.model, 3)),
    }
    table, embeddings = quantize.compare_encoders(encoders, texts, repeats=args.repeats)
    if torch.cuda.is_available():
        half = quantize.fp16_encoder(fp32, "cuda")
        gpu_table, gpu_emb = quantize.compare_encoders(
            {"fp16 CUDA": half}, texts, repeats=args.repeats
        )
        cos = row_cosine(gpu_emb["fp16 CUDA"], embeddings["fp32"])
        gpu_table.loc["fp16 CUDA", "speedup"] = (
            gpu_table.loc["fp16 CUDA", "texts_per_s"] / table.loc["fp32", "texts_per_s"]
        )
        gpu_table.loc["fp16 CUDA", ["mean_cosine", "min_cosine"]] = [cos.mean(), cos.min()]
        table = pd.concat([table, gpu_table])
    if args.ndcg:
        train, test = shared_interactions(train_df, test_df)
        table["ndcg@10"] = [
            text_ndcg(quantize.variant_encoder(enc, enc.model), user_texts, item_texts, train, test)
            for enc in [*encoders.values(), *([half] if torch.cuda.is_available() else [])]
        ]
    rows = [{"encoder": name, **row.to_dict()} for name, row in table.iterrows()]
    print(f"{args.n} texts x {args.repeats} repeats, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, quantized engine {torch.backends.quantized.engine}")  # fmt: skip
    print_table("Encoders (medians over repeats; speed-up vs fp32 on CPU)", rows)
    chapter = table.loc["int8 smoothed (chapter)"]
    ok = chapter["speedup"] >= TARGET_SPEEDUP and chapter["mean_cosine"] >= TARGET_COSINE
    print(f"\ntarget: int8 >= {TARGET_SPEEDUP}x and mean cosine >= {TARGET_COSINE} -> "
          f"{chapter['speedup']:.2f}x, {chapter['mean_cosine']:.4f} ({'met' if ok else 'NOT met'}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
