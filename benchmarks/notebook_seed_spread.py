"""Spread of a notebook's smoke metrics over seeds: the evidence behind its expected bands.

    python benchmarks/notebook_seed_spread.py 08_business_objectives --seeds 20 \
        --out build/seed_spread_06.json [--param PERTURB_WEIGHTS=1e-6]

Runs the notebook's smoke configuration once per ``SEED`` (0, 1, ..., n-1) through papermill
and writes, per numeric metric, the seeds run, min, max, mean and standard deviation (boolean
metrics count as 0/1, so ``mean`` is the share of seeds where they held). A stochastic band in
``tests/expected/<stem>.json`` must be at least as wide as this spread; a property band (such
as "the interval covers the truth") must hold on the seeds measured here.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np


def spread(runs: list[dict]) -> dict:
    """Per metric over runs (one metrics dict each): seeds, min, max, mean, std (ddof=1)."""
    out = {}
    for name in sorted({k for run in runs for k in run}):
        values = [run[name] for run in runs if name in run]
        if not all(isinstance(v, bool | int | float) for v in values):
            continue
        x = np.asarray(values, dtype=float)
        if not np.isfinite(x).all():
            continue
        out[name] = {"seeds": len(x), "min": float(x.min()), "max": float(x.max()),
                     "mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0}  # fmt: skip
    return out


def main(argv=None) -> None:
    from recsys_lib.notebooks import execute_notebook, list_notebooks

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", help="a notebook stem or a unique part of it")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE (JSON value)")
    args = parser.parse_args(argv)
    (notebook,) = list_notebooks(only=args.notebook)
    extra = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    runs, per_seed = [], {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            result = execute_notebook(notebook, Path(tmp) / notebook.name, smoke=True,
                                      parameters={"SEED": seed, **extra})  # fmt: skip
        if result.error:
            print(f"seed {seed}: FAILED {result.error}", flush=True)
            continue
        runs.append(result.metrics)
        per_seed[seed] = result.metrics
        print(f"seed {seed}: ok ({result.seconds:.0f} s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"notebook": notebook.stem, "parameters": extra,
                                        "spread": spread(runs), "runs": per_seed}, indent=1,
                                       default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))  # fmt: skip
    for name, s in spread(runs).items():
        print(
            f"{name:>36}: n={s['seeds']} min={s['min']:.4g} max={s['max']:.4g} std={s['std']:.3g}"
        )


if __name__ == "__main__":
    main()
