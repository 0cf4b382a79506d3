"""Loader (cold from a zip and warm from the extracted folder) and metric functions at 1M rows.

The official zip cannot be fetched on machines without internet, so the cold path is timed on a
zip rebuilt from the local copy (RECSYS_DATA_DIR): md5 + safe extraction + parse + validation.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _common import median_seconds, print_table

from recsys_lib.data import movielens as data
from recsys_lib.evaluation import metrics


def loader_rows() -> list[dict]:
    source = data.find_movielens_100k()
    if source is None:
        return [{"case": "loader", "note": "no local MovieLens copy; set RECSYS_DATA_DIR"}]
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "ml-100k.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
            for name in ("u.data", "u.item", "u.user"):
                handle.write(source / name, f"ml-100k/{name}")

        def cold():
            out = Path(tempfile.mkdtemp(dir=tmp))
            data.md5sum(archive)
            data.safe_extract(archive, out)
            data.parse_movielens_100k(out / "ml-100k")

        cold_s = median_seconds(cold, repeats=5)
    warm_s = median_seconds(lambda: data.load_movielens_100k(), repeats=5)
    return [
        {"case": "cold: md5 + extract + parse + validate", "median_s": cold_s},
        {"case": "warm: parse + validate local folder", "median_s": warm_s},
    ]


def metric_rows(
    n_users: int = 6040, n_items: int = 3706, n_relevant: int = 1_000_000
) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, n_users, n_relevant)
    cols = rng.integers(0, n_items, n_relevant)
    relevant = sp.csr_matrix((np.ones(n_relevant), (rows, cols)), shape=(n_users, n_items))
    relevant.data[:] = 1.0
    recommended = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :10]
    out = []
    for name, fn in metrics.RANKING_METRICS.items():
        out.append(
            {
                "metric": name,
                "users": n_users,
                "relevant_nnz": relevant.nnz,
                "median_ms": 1e3 * median_seconds(lambda fn=fn: fn(recommended, relevant, 10)),
            }
        )
    out.append(
        {
            "metric": "ranking_report (all)",
            "users": n_users,
            "relevant_nnz": relevant.nnz,
            "median_ms": 1e3
            * median_seconds(lambda: metrics.ranking_report(recommended, relevant, 10)),
        }
    )
    return out


if __name__ == "__main__":
    print_table("MovieLens 100K loader", loader_rows())
    print_table("Ranking metrics at k=10, 1M relevant interactions", metric_rows())
