"""Is torchao's int8 a faster replacement for torch.ao.quantization on this CPU?

    pip install torchao          # not a dependency of the course; a pure-Python wheel
    .venv/bin/python benchmarks/torchao_int8_cpu.py [--n 256] [--repeats 3] [--threads 2]

torch marks ``torch.ao.quantization`` (the eager ``quantize_dynamic`` behind chapter 9's int8
encoder) deprecated in favour of the separate ``torchao`` package. This script quantises the
course's sentence encoder both ways -- torch.ao's dynamic int8 (fbgemm kernels, the chapter's
per-channel variant) and torchao's ``Int8DynamicActivationInt8WeightConfig`` applied with
``quantize_`` -- and times them against fp32 on the same texts (eager mode, no torch.compile,
as the chapter runs). It prints texts/s, the speed-up over fp32 and the mean cosine to the fp32
vectors. Chapter 9 keeps torch.ao as long as torchao's eager int8 is not faster than fp32 on CPU.
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=256, help="texts timed per encoder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    try:
        import torchao
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        print("torchao is not installed: pip install torchao (then rerun)")
        return
    from recsys_lib.data.movielens import load_movielens_100k
    from recsys_lib.production import quantize
    from recsys_lib.text.descriptions import item_descriptions
    from recsys_lib.text.embeddings import TextEncoder

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*quantize_per.*")
    texts = item_descriptions(load_movielens_100k().items).tolist()[: args.n]
    encoder = TextEncoder("default", device="cpu")
    torchao_model = copy.deepcopy(encoder.model).eval()
    quantize_(torchao_model, Int8DynamicActivationInt8WeightConfig())
    variants = {
        "fp32": encoder,
        "torch.ao int8 per-channel": quantize.int8_encoder(encoder),
        f"torchao {torchao.__version__} int8": quantize.variant_encoder(encoder, torchao_model),
    }
    table, _ = quantize.compare_encoders(variants, texts, repeats=args.repeats)
    print(f"torch {torch.__version__}, {args.threads} threads, {len(texts)} texts")
    print(table[["texts_per_s", "speedup", "mean_cosine"]].round(3).to_string())


if __name__ == "__main__":
    main()
