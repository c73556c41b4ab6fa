"""Load test of the HTTP service: a real uvicorn on loopback, N concurrent clients for D seconds,
with micro-batching on (``CXNLP_MAX_BATCH``) and off (``CXNLP_MAX_BATCH=1``: one request, one
model call).

Usage (from the repository root)::

    .venv/bin/python benchmarks/service_load.py --model default --clients 50 --duration 60
    .venv/bin/python benchmarks/service_load.py --model PATH --duration 3 --sizes 1   # a quick check

For every mode and request size (texts per request) it prints requests/s, texts/s, p50 / p95 / p99
latency, the count of non-2xx and 5xx answers and the mean texts per model call (from /metrics),
then the throughput ratio of batching on over off. The texts are the rows of
``examples/reviews.csv`` (Persian, Arabic and English), taken in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key-not-secret"


def load_texts() -> list[str]:
    with open(REPO_ROOT / "examples" / "reviews.csv", encoding="utf-8-sig", newline="") as f:
        return [row["text"] for row in csv.DictReader(f) if row["text"].strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, max_batch: int, max_wait_ms: float, queue_size: int, jobs: str):
    port = free_port()
    env = {
        **os.environ,
        "CXNLP_MODEL": model,
        "CXNLP_API_KEYS": KEY,
        "CXNLP_MAX_BATCH": str(max_batch),
        "CXNLP_MAX_WAIT_MS": str(max_wait_ms),
        "CXNLP_QUEUE_SIZE": str(queue_size),
        "CXNLP_JOBS_DIR": jobs,
    }
    command = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not become ready in 600 s")


async def run_load(url: str, texts: list[str], size: int, clients: int, duration: float, warmup):
    """Latencies (s) and status codes of the requests that ended in the measured window."""
    latencies: list[float] = []
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60, headers=headers) as http:
        start = time.perf_counter()
        measure_from, stop = start + warmup, start + warmup + duration

        async def client(n: int) -> None:
            i = n * 7
            while time.perf_counter() < stop:
                batch = [texts[(i + k) % len(texts)] for k in range(size)]
                i += size
                sent = time.perf_counter()
                try:
                    r = await http.post(
                        "/v1/classify", json={"items": [{"text": t} for t in batch]}
                    )
                    status = r.status_code
                except httpx.HTTPError:
                    status = 599  # transport error or timeout
                done = time.perf_counter()
                if sent >= measure_from and done <= stop:
                    latencies.append(done - sent)
                    statuses.append(status)

        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, statuses


async def run_mix(url: str, texts: list[str], mix: list[tuple[int, int]], duration, warmup):
    """Clients of several request sizes at once (`mix`: (size, clients) pairs). A client that
    gets a 503 waits its Retry-After and tries again. Per size: latencies of the 2xx answers and
    every status."""
    results: dict[int, tuple[list[float], list[int]]] = {size: ([], []) for size, _ in mix}
    total = sum(n for _, n in mix)
    limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60, headers=headers) as http:
        start = time.perf_counter()
        measure_from, stop = start + warmup, start + warmup + duration

        async def client(n: int, size: int) -> None:
            latencies, statuses = results[size]
            i = n * 7
            while time.perf_counter() < stop:
                batch = [texts[(i + k) % len(texts)] for k in range(size)]
                i += size
                sent = time.perf_counter()
                retry = 0.0
                try:
                    r = await http.post(
                        "/v1/classify", json={"items": [{"text": t} for t in batch]}
                    )
                    status = r.status_code
                    if status == 503:
                        retry = float(r.headers.get("retry-after", "1"))
                except httpx.HTTPError:
                    status = 599
                done = time.perf_counter()
                if sent >= measure_from and done <= stop:
                    statuses.append(status)
                    if 200 <= status < 300:
                        latencies.append(done - sent)
                if retry:
                    await asyncio.sleep(retry)

        jobs = [client(n, size) for size, count in mix for n in range(count)]
        await asyncio.gather(*jobs)
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def batch_counts(url: str) -> tuple[float, float]:
    """Texts and model calls so far, from the service's batch-size histogram."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    total = re.search(r"^cxnlp_batch_size_sum (\S+)$", text, re.M)
    count = re.search(r"^cxnlp_batch_size_count (\S+)$", text, re.M)
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model name under models/ or a path")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first")
    parser.add_argument("--sizes", default="1,32", help="texts per request, comma-separated")
    parser.add_argument("--modes", default="batched,unbatched")
    parser.add_argument("--max-batch", type=int, default=64, help="CXNLP_MAX_BATCH when batched")
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument(
        "--mix",
        default=None,
        help="SIZE:CLIENTS pairs run together, e.g. 1:40,256:10 (40 one-text callers beside "
        "10 callers of 256 texts); batched mode only; --clients is then ignored",
    )
    args = parser.parse_args()
    if args.mix:
        return main_mix(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    unknown = sorted(set(modes) - {"batched", "unbatched"})
    if unknown:
        parser.error(f"unknown modes {unknown}; expected batched and/or unbatched")
    texts = load_texts()
    print(
        f"model={args.model} clients={args.clients} duration={args.duration}s "
        f"cpus={os.cpu_count()} texts={len(texts)}"
    )
    header = (
        f"{'mode':<10} {'size':>4} {'requests':>8} {'req/s':>8} {'texts/s':>8} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8} {'non2xx':>6} {'5xx':>5} {'batch':>6}"
    )
    print(header)
    throughput: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as jobs:
        for mode in modes:
            max_batch = args.max_batch if mode == "batched" else 1
            queue = max(256, 2 * args.clients)
            process, url = start_server(args.model, max_batch, args.max_wait_ms, queue, jobs)
            try:
                for size in sizes:
                    texts_before, calls_before = batch_counts(url)
                    latencies, statuses = asyncio.run(
                        run_load(url, texts, size, args.clients, args.duration, args.warmup)
                    )
                    texts_after, calls_after = batch_counts(url)
                    calls = calls_after - calls_before
                    per_call = (texts_after - texts_before) / calls if calls else float("nan")
                    ok = sum(200 <= s < 300 for s in statuses)
                    rps = ok / args.duration
                    throughput[(mode, size)] = rps * size
                    print(
                        f"{mode:<10} {size:>4} {len(statuses):>8} {rps:>8.1f} {rps * size:>8.1f} "
                        f"{percentile(latencies, 50) * 1000:>8.1f} "
                        f"{percentile(latencies, 95) * 1000:>8.1f} "
                        f"{percentile(latencies, 99) * 1000:>8.1f} "
                        f"{len(statuses) - ok:>6} {sum(s >= 500 for s in statuses):>5} "
                        f"{per_call:>6.1f}",
                        flush=True,
                    )
            finally:
                process.terminate()
                process.wait(30)
    for size in sizes:
        on, off = throughput.get(("batched", size)), throughput.get(("unbatched", size))
        if on and off:
            print(
                f"size {size}: batching gives {on / off:.2f}x the texts/s of one call per request"
            )
    return 0


def main_mix(args: argparse.Namespace) -> int:
    mix = [(int(a), int(b)) for a, b in (pair.split(":") for pair in args.mix.split(","))]
    texts = load_texts()
    print(
        f"model={args.model} mix={args.mix} duration={args.duration}s cpus={os.cpu_count()} "
        f"max_batch={args.max_batch}"
    )
    print(
        f"{'size':>4} {'clients':>7} {'answers':>7} {'2xx/s':>7} {'texts/s':>8} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8} {'503':>5} {'5xx':>5}"
    )
    with tempfile.TemporaryDirectory() as jobs:
        queue = max(256, 2 * sum(n for _, n in mix))
        process, url = start_server(args.model, args.max_batch, args.max_wait_ms, queue, jobs)
        try:
            results = asyncio.run(run_mix(url, texts, mix, args.duration, args.warmup))
        finally:
            process.terminate()
            process.wait(30)
    for size, clients in mix:
        latencies, statuses = results[size]
        ok = len(latencies)
        print(
            f"{size:>4} {clients:>7} {len(statuses):>7} {ok / args.duration:>7.1f} "
            f"{ok * size / args.duration:>8.1f} {percentile(latencies, 50) * 1000:>8.1f} "
            f"{percentile(latencies, 95) * 1000:>8.1f} {percentile(latencies, 99) * 1000:>8.1f} "
            f"{sum(s == 503 for s in statuses):>5} {sum(s >= 500 and s != 503 for s in statuses):>5}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
