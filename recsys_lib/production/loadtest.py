"""Start the HTTP service in its own process and load it over loopback with a real client.

    with ServiceProcess("build/artefacts/als") as server:          # a free port, waits for /health
        paths = [f"/recommend?user_id={u}&k=10" for u in users]
        table = load_test_table(server.url, paths, concurrencies=(1, 8, 32))

The client is aiohttp: ``concurrency`` coroutines share one connection pool of that size and
each sends its next request as soon as the previous answer is read (a closed loop). Every run
is bounded twice, by ``n_requests`` and by ``time_limit_s``, and stops by itself; only
loopback addresses (127.0.0.1, ::1, localhost) are accepted, so a load test never leaves the
machine. Latency is measured at the client: connection-pool wait, serialisation, the socket,
the server's event loop and the model, everything a caller would see.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from recsys_lib.production.serving import latency_percentiles

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_REQUESTS = 200_000
MAX_TIME_LIMIT_S = 600.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS reports free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``python -m recsys_lib.production.service`` in a child process on a free loopback port.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). ``start`` waits until
    ``/health`` answers, or raises RuntimeError with the server's own error output (e.g. a
    tampered artefact) after ``startup_timeout_s``.
    """

    def __init__(
        self,
        artefact: str | os.PathLike[str],
        *,
        port: int | None = None,
        api_key: str | None = None,
        max_batch: int | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.artefact = Path(artefact)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.max_batch = max_batch
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> ServiceProcess:
        cmd = [sys.executable, "-m", "recsys_lib.production.service", "--artefact", str(self.artefact),
               "--port", str(self.port)]  # fmt: skip
        env = dict(os.environ)
        if self.api_key is not None:
            env["RECSYS_SERVICE_API_KEY"] = self.api_key
            cmd += ["--api-key-env", "RECSYS_SERVICE_API_KEY"]
        if self.max_batch is not None:
            cmd += ["--max-batch", str(self.max_batch)]
        self.process = process = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                err = process.stderr.read() if process.stderr else ""
                raise RuntimeError(
                    f"the service exited with code {process.returncode} before answering: "
                    f"{err.strip()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1.0) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"the service did not answer /health on {self.url} within {self.startup_timeout_s} s."
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the child (SIGTERM: uvicorn finishes open requests), kill it if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)
        if self.process.stderr:
            self.process.stderr.close()

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, seconds) the server process has used so far; None where
        the OS does not expose it (read from /proc on Linux)."""
        if self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"load tests only target loopback addresses {LOOPBACK_HOSTS}, got host {host!r} in "
            f"{url!r}; run the service on this machine."
        )


async def _closed_loop(
    url: str,
    paths: list[str],
    concurrency: int,
    n_requests: int,
    time_limit_s: float,
    headers: dict[str, str] | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    import aiohttp

    latencies = np.full(n_requests, np.nan)
    status_ok = np.zeros(n_requests, dtype=bool)
    counter = iter(range(n_requests))
    timeout = aiohttp.ClientTimeout(total=min(30.0, time_limit_s))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout,
                                     headers=headers) as session:  # fmt: skip
        start = time.perf_counter()
        deadline = start + time_limit_s

        async def worker() -> None:
            clock = time.perf_counter
            for i in counter:  # the shared iterator hands each request to exactly one worker
                if clock() > deadline:
                    return
                t0 = clock()
                try:
                    async with session.get(paths[i % len(paths)]) as response:
                        await response.read()
                        status_ok[i] = response.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    status_ok[i] = False
                latencies[i] = clock() - t0

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, status_ok, elapsed


def load_test(
    url: str,
    paths: list[str],
    *,
    concurrency: int = 8,
    n_requests: int = 5_000,
    time_limit_s: float = 30.0,
    warmup: int = 200,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """Closed-loop GET load on a loopback service; returns one row of measurements.

    ``paths`` (n_paths,) are request paths cycled in order, e.g. "/recommend?user_id=1&k=10".
    Stops after ``n_requests`` answers or ``time_limit_s`` seconds, whichever comes first
    (``warmup`` untimed requests run before). Returns concurrency, requests (answered),
    errors (non-200 answers, timeouts and connection errors), mean_ms and p50_ms/p95_ms/p99_ms
    (client latency; the mean is what Little's law predicts: concurrency / throughput in a
    closed loop), requests_per_second and elapsed_s.
    """
    _check_loopback(url)
    if not paths:
        raise ValueError("paths is empty; give at least one request path such as '/health'.")
    if not 1 <= concurrency <= 1024:
        raise ValueError(f"concurrency must be between 1 and 1024, got {concurrency}.")
    if not 1 <= n_requests <= MAX_REQUESTS:
        raise ValueError(f"n_requests must be between 1 and {MAX_REQUESTS}, got {n_requests}.")
    if not 0 < time_limit_s <= MAX_TIME_LIMIT_S:
        raise ValueError(f"time_limit_s must be in (0, {MAX_TIME_LIMIT_S}], got {time_limit_s}.")

    def run(n: int) -> tuple[np.ndarray, np.ndarray, float]:
        coro = _closed_loop(url, paths, concurrency, n, time_limit_s, headers)
        # a thread of its own: works inside Jupyter, whose kernel already runs an event loop
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    if warmup > 0:
        run(min(warmup, n_requests))
    latencies, ok, elapsed = run(n_requests)
    done = ~np.isnan(latencies)
    if not done.any():
        raise RuntimeError(f"no request to {url} was answered within {time_limit_s} s.")
    row: dict[str, float] = {"concurrency": concurrency, "requests": int(done.sum()),
                             "errors": int((done & ~ok).sum())}  # fmt: skip
    row["mean_ms"] = float(latencies[done].mean() * 1e3)
    row.update(latency_percentiles(latencies[done]))
    row["requests_per_second"] = float(done.sum() / elapsed)
    row["elapsed_s"] = float(elapsed)
    return row


def load_test_table(
    url: str,
    paths: list[str],
    concurrencies: Sequence[int] = (1, 8, 32),
    *,
    n_requests: int = 5_000,
    repeats: int = 3,
    time_limit_s: float = 30.0,
    headers: dict[str, str] | None = None,
    server: ServiceProcess | None = None,
) -> pd.DataFrame:
    """:func:`load_test` at each concurrency, ``repeats`` times; the median of each column.

    Returns one row per concurrency (index) with requests, errors (the sum over repeats),
    mean_ms, p50_ms, p95_ms, p99_ms and requests_per_second (medians over repeats). With ``server``
    (the :class:`ServiceProcess` under test, on Linux) also server_cpu_ms: the server's CPU
    time per answered request (warm-up excluded); 1000 / server_cpu_ms is what one free core
    could answer per second, a figure much less sensitive to a busy machine than latency.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}.")
    rows = []
    for c in concurrencies:
        rows_c = []
        for _ in range(repeats):
            load_test(url, paths, concurrency=c, n_requests=min(200, n_requests), warmup=0,
                      time_limit_s=time_limit_s, headers=headers)  # fmt: skip
            before = server.cpu_seconds() if server is not None else None
            row = load_test(url, paths, concurrency=c, n_requests=n_requests, warmup=0,
                            time_limit_s=time_limit_s, headers=headers)  # fmt: skip
            after = server.cpu_seconds() if server is not None else None
            if before is not None and after is not None:
                row["server_cpu_ms"] = (after - before) * 1e3 / row["requests"]
            rows_c.append(row)
        runs = pd.DataFrame(rows_c)
        row = runs.median(numeric_only=True)
        row["errors"] = runs["errors"].sum()
        row["repeats"] = repeats
        rows.append(row)
    table = pd.DataFrame(rows).astype({"concurrency": int, "errors": int, "requests": int})
    return table.set_index("concurrency").drop(columns="elapsed_s")


def request_paths(user_ids: Iterable[object], k: int = 10) -> list[str]:
    """``GET /recommend`` paths for raw user ids (n,), in order, URL-quoted."""
    from urllib.parse import quote

    from recsys_lib.retrieval.topk import check_k

    k = check_k(k)
    return [f"/recommend?user_id={quote(str(u))}&k={k}" for u in np.asarray(user_ids).tolist()]
