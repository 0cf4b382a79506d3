"""Which numeric switches change which results on this machine: the kernel matrix's evidence.

    .venv/bin/python benchmarks/kernel_probe.py [--output benchmarks/results/kernel_probe.json]

Runs a dozen primitives the course relies on (torch matmul, linear, softmax, layer norm, GELU,
reductions, a transformer encoder layer, dynamic int8 linear, 20 Adam steps, a 10-step training
of a 2-layer transformer with batch 128; numpy dot and solve, scipy SVD, implicit's ALS) in a
fresh process per switch setting and hashes each output. A primitive whose hash differs from the
native run's is moved by that switch. The table shows, per switch, the primitives it moves; the
named configurations of :mod:`recsys_lib.course.kernels` (the last rows) combine the switches
that do move something. Nothing here is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table  # noqa: E402

PROBE = r"""
import hashlib, json, os, warnings
import numpy as np
import torch
from recsys_lib.runtime import apply_kernel_settings
apply_kernel_settings()
warnings.filterwarnings("ignore")
def h(a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    return hashlib.sha256(a.tobytes()).hexdigest()[:12]
out = {}
g = torch.Generator().manual_seed(0)
x = torch.randn(257, 384, generator=g)
w = torch.randn(384, 1536, generator=g)
out["torch matmul"] = h((x @ w).numpy())
torch.manual_seed(0)
lin = torch.nn.Linear(384, 384)
out["torch linear"] = h(lin(x).detach().numpy())
out["torch softmax"] = h(torch.softmax(x, -1).numpy())
out["torch layer norm"] = h(torch.nn.functional.layer_norm(x, (384,)).numpy())
out["torch GELU"] = h(torch.nn.functional.gelu(x).numpy())
big = torch.randn(4096, 384, generator=g)
out["torch full sum"] = h(big.sum().numpy())
torch.manual_seed(1)
enc = torch.nn.TransformerEncoderLayer(64, 2, 128, dropout=0.0, batch_first=True).eval()
with torch.no_grad():
    out["torch encoder layer"] = h(enc(torch.randn(8, 50, 64, generator=g)).numpy())
from torch.ao.quantization import quantize_dynamic
q = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(384, 384)), {torch.nn.Linear},
                     dtype=torch.qint8)
with torch.no_grad():
    out["torch int8 linear"] = h(q(x).numpy())
torch.manual_seed(2)
net = torch.nn.Sequential(torch.nn.Linear(384, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
opt = torch.optim.Adam(net.parameters(), 1e-3)
for _ in range(20):
    loss = net(x).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()
out["torch 20 Adam steps (MLP)"] = h(torch.cat([p.detach().flatten() for p in net.parameters()]))
torch.manual_seed(3)
tr = torch.nn.TransformerEncoder(
    torch.nn.TransformerEncoderLayer(64, 2, 128, dropout=0.1, batch_first=True), 2)
opt = torch.optim.Adam(tr.parameters(), 1e-3)
xx = torch.randn(128, 50, 64, generator=g)
for _ in range(10):
    loss = tr(xx).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()
out["torch 10 steps (transformer)"] = h(torch.cat([p.detach().flatten() for p in tr.parameters()]))
rng = np.random.default_rng(0)
a = rng.standard_normal((300, 200)); b = rng.standard_normal((200, 300))
out["numpy dot"] = h(a @ b)
out["numpy solve"] = h(np.linalg.solve(a[:200] @ a[:200].T + np.eye(200), a[:200, :5]))
import scipy.linalg, scipy.sparse as sp
out["scipy SVD"] = h(scipy.linalg.svd(a, compute_uv=False))
from implicit.cpu.als import AlternatingLeastSquares
m = sp.random(300, 400, density=0.05, random_state=0, format="csr", dtype=np.float32)
m.data[:] = 1.0
als = AlternatingLeastSquares(factors=16, iterations=5, random_state=0, num_threads=1)
als.fit(m, show_progress=False)
out["implicit ALS"] = h(als.item_factors)
print(json.dumps(out))
"""

#: One switch at a time (the environment variable and its value), then the named configurations.
SWITCHES = [
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("ATEN_CPU_CAPABILITY", "default"),
    ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
    ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"),
    ("MKL_CBWR", "AVX2"),
    ("MKL_CBWR", "COMPATIBLE"),
    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
    ("ONEDNN_MAX_CPU_ISA", "SSE41"),
    ("OPENBLAS_CORETYPE", "Haswell"),
    ("OPENBLAS_CORETYPE", "Zen"),
    ("OPENBLAS_CORETYPE", "Sandybridge"),
    ("RECSYS_QUANTIZED_ENGINE", "fbgemm"),
    ("RECSYS_QUANTIZED_ENGINE", "qnnpack"),
    ("RECSYS_QUANTIZED_ENGINE", "onednn"),
    ("RECSYS_TORCH_THREADS", "1"),
    ("RECSYS_TORCH_THREADS", "2"),
]


def probe(env: dict[str, str]) -> dict[str, str]:
    """The primitives' hashes in a fresh process with ``env`` added (OpenBLAS on 1 thread)."""
    full = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **env}
    for key in [k for k in full if k.startswith(("ATEN_", "MKL_C", "ONEDNN_", "OPENBLAS_CORE"))]:
        if key not in env:
            full.pop(key)
    done = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True,
                          text=True, check=True, timeout=600)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    from recsys_lib.course.kernels import CONFIGS, NATIVE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="write the findings as JSON")
    args = parser.parse_args()
    native = probe({})
    rows, findings = [], {}
    settings = [(f"{k}={v}", {k: v}) for k, v in SWITCHES]
    settings += [(f"configuration {n}", dict(c.env)) for n, c in CONFIGS.items() if n != NATIVE]
    for label, env in settings:
        got = probe(env)
        moved = [name for name in native if got[name] != native[name]]
        findings[label] = moved
        rows.append({"switch": label, "primitives it moves": ", ".join(moved) or "(none)"})
    import torch

    print(
        f"native: torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print_table("What each switch changes (hash of the output differs from the native run)", rows)
    if args.output:
        record = {"date": time.strftime("%Y-%m-%d"), "machine": os.uname().machine,
                  "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  "torch": torch.__version__, "moved_by": findings}  # fmt: skip
        args.output.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
