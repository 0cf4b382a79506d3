"""Wall time of whole chapters, cold (empty fit cache) and warm (the same cache filled), full mode.

    python benchmarks/chapter_times.py 05_fine 06_sequences     # cold then warm, each chapter
    python benchmarks/chapter_times.py 06_sequences --json benchmarks/results/x.json

A chapter is run twice through the course runner (``recsys_lib.course.notebooks run --only``)
with ``RECSYS_FIT_CACHE`` pointing at a new temporary folder: the first run trains every model
and fills the folder ("cold"), the second reads the finished trainings back ("warm"). Both runs
use the usual text-vector and LLM caches, which a first ``make run`` fills once. The table also
says whether the two runs recorded the same metrics (timings excepted): a warm run must change
nothing but the time. Timings are recorded, never banded; quote them with the machine's load
(printed), and run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: Metrics that are timings (they differ between a cold and a warm run by design).
TIMING_WORDS = ("_s", "seconds", "per_second", "speedup")


def is_timing(name: str) -> bool:
    """Whether metric ``name`` is a timing (its value may differ between two identical runs)."""
    return any(name.endswith(w) or f"{w}_" in name for w in TIMING_WORDS)


def run_chapter(stem: str, build: Path, fit_cache: Path) -> tuple[float, dict]:
    """Run one chapter in full mode; return (wall seconds, its recorded metrics)."""
    env = {**os.environ, "RECSYS_FIT_CACHE": str(fit_cache)}
    cmd = [sys.executable, "-m", "recsys_lib.course.notebooks", "run", "--only", stem,
           "--build-dir", str(build)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    metrics = json.loads((build / "metrics.json").read_text())
    return seconds, next(iter(metrics.values())) if len(metrics) == 1 else metrics


def value(entry: object) -> object:
    """A recorded metric's value (entries may be stored as {"value": ...})."""
    return entry.get("value", entry) if isinstance(entry, dict) else entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="+", help="notebook name prefixes, e.g. 06_sequences")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="chapter-times-") as tmp:
        for stem in args.chapters:
            fits = Path(tmp) / f"fits-{stem}"
            cold_s, cold = run_chapter(stem, Path(tmp) / f"{stem}-cold", fits)
            warm_s, warm = run_chapter(stem, Path(tmp) / f"{stem}-warm", fits)
            changed = sorted(
                k for k in cold if not is_timing(k) and value(cold[k]) != value(warm.get(k))
            )
            rows.append({"chapter": stem, "cold s": round(cold_s, 1), "warm s": round(warm_s, 1),
                         "metrics changed by the cache": ", ".join(changed) or "none",
                         "load average after": round(os.getloadavg()[0], 2)})  # fmt: skip
    print_table("Chapter wall time, cold and warm fit cache (full mode)", rows)
    if args.json:
        args.json.write_text(
            json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
