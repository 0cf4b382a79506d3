"""Request latencies of the explorer page's endpoints, in-process (TestClient) and over loopback.

    .venv/bin/python benchmarks/bench_explorer.py [--artefact build/artefacts/als] [--requests 50]

The artefact (built with ``python -m recsys_lib.production.service build-artefact DIR`` when
``--artefact`` holds none) is served twice: by FastAPI's TestClient in this process, and by
``python -m recsys_lib.production.service`` (uvicorn) in a child process on a free 127.0.0.1
port, asked one request at a time with httpx. Each endpoint gets ``--requests`` requests with
varying inputs (users, searches, liked films, new-film titles: every new-film text is new, so
the encoder runs each time); the table gives the median and 95th percentile in ms. The first
new-film request, which loads the text encoder, is excluded and reported on its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table  # noqa: E402


def requests_for(users: list, titles: list[str], n: int, seed: int, salt: str) -> dict[str, list]:
    """Per endpoint, n (method, path, json) requests with varying inputs; ``salt`` makes the
    new-film texts differ between runs, so none is read back from the embedding cache."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(users), n)
    words = ["star", "love", "the", "man", "night", "war", "day", "life", "king", "city"]
    return {
        "GET /": [("get", "/", None)] * n,
        "GET provenance": [("get", "/explorer/api/provenance", None)] * n,
        "GET users?q=": [("get", f"/explorer/api/users?q={users[i] % 100}", None) for i in picks],
        "GET items?q=": [("get", f"/explorer/api/items?q={words[i % 10]}", None) for i in range(n)],
        "GET user (every model)": [
            ("get", f"/explorer/api/user?user_id={users[i]}", None) for i in picks
        ],
        "POST cold-user": [
            (
                "post",
                "/explorer/api/cold-user",
                {"item_ids": [titles[j][0] for j in rng.choice(len(titles), 3, replace=False)]},
            )
            for _ in range(n)
        ],  # fmt: skip
        "POST cold-film": [
            (
                "post",
                "/explorer/api/cold-film",
                {
                    "title": f"Untold story {salt} number {i} ({1990 + i % 30})",
                    "genres": ["Drama", "Sci-Fi"][: 1 + i % 2],
                    "description": f"A film about {words[i % 10]} and {words[(i * 7) % 10]}.",
                },
            )
            for i in range(n)
        ],  # fmt: skip
    }


def timed(send, plan: dict[str, list]) -> list[dict]:
    rows = []
    for name, calls in plan.items():
        send(*calls[0])  # warm-up (caches, and the encoder for cold-film)
        seconds = []
        for method, path, body in calls:
            start = time.perf_counter()
            response = send(method, path, body)
            seconds.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
        ms = np.array(seconds) * 1e3
        rows.append({"endpoint": name, "p50_ms": float(np.median(ms)),
                     "p95_ms": float(np.percentile(ms, 95)), "requests": len(ms)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artefact", type=Path, default=Path("build/artefacts/als"))
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    import httpx
    from fastapi.testclient import TestClient

    from recsys_lib.production.loadtest import ServiceProcess
    from recsys_lib.production.service import build_artefact, create_app
    from recsys_lib.production.serving import Recommender

    if not (args.artefact / "explorer" / "manifest.json").is_file():
        build_artefact(args.artefact)
    rec = Recommender.load(args.artefact)
    users = (
        [int(u) for u in rec.user_ids] if rec.user_ids.dtype.kind in "iu" else list(rec.user_ids)
    )
    titles = [(i.item(),) for i in rec.item_ids[:200]]
    salt = f"{time.time_ns() % 10**9}"
    try:  # as the service does for itself (service._one_thread_per_request)
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    plan = requests_for(users, titles, args.requests, args.seed, salt + "a")
    with TestClient(create_app(args.artefact)) as client:
        start = time.perf_counter()
        client.post("/explorer/api/cold-film", json={"title": "Encoder warm-up (2000)"})
        first = time.perf_counter() - start
        in_process = timed(
            lambda m, p, b: getattr(client, m)(p, **({"json": b} if b else {})), plan
        )
    plan = requests_for(users, titles, args.requests, args.seed, salt + "b")
    with (
        ServiceProcess(args.artefact) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        over_http = timed(lambda m, p, b: getattr(http, m)(p, **({"json": b} if b else {})), plan)
    rows = [{"endpoint": a["endpoint"], "in-process p50_ms": a["p50_ms"], "in-process p95_ms": a["p95_ms"],
             "loopback HTTP p50_ms": b["p50_ms"], "loopback HTTP p95_ms": b["p95_ms"],
             "requests": a["requests"]} for a, b in zip(in_process, over_http, strict=True)]  # fmt: skip
    print_table(f"Explorer endpoints on {args.artefact} (one request at a time)", rows)
    print(f"\nfirst new-film request (loads the text encoder), in-process: {first:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
