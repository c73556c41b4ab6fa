"""/metrics read back with prometheus-client's own parser: the totals are right in one process
and summed over two real uvicorn workers (`cxnlp serve --workers 2`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_with_the_right_totals(tiny_fast_model, tmp_path: Path) -> None:
    app = create_app(Settings(auth=False, jobs_dir=tmp_path / "jobs"), model=tiny_fast_model)
    with TestClient(app) as client:
        for n in (1, 3, 2):
            items = [{"text": f"great service {i}"} for i in range(n)]
            assert client.post("/v1/classify", json={"items": items}).status_code == 200
        assert client.post("/v1/classify", json={"items": []}).status_code == 422
        assert client.get("/v1/jobs/" + "0" * 32).status_code == 404
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    parsed = samples(text)
    route = "/v1/classify"
    assert value(parsed, "cxnlp_http_requests_total", route=route, status="200") == 3
    assert value(parsed, "cxnlp_http_requests_total", route=route, status="422") == 1
    assert value(parsed, "cxnlp_http_requests_total", route="/v1/jobs/{job_id}", status="404") == 1
    assert value(parsed, "cxnlp_http_request_duration_seconds_count", route=route) == 4
    assert value(parsed, "cxnlp_http_request_duration_seconds_bucket", route=route, le="+Inf") == 4
    assert value(parsed, "cxnlp_texts_classified_total") == 6
    # Micro-batching may merge requests; every text is in exactly one model call.
    assert value(parsed, "cxnlp_batch_size_sum") == 6
    calls = value(parsed, "cxnlp_batch_size_count")
    assert 1 <= calls <= 3 and value(parsed, "cxnlp_model_call_duration_seconds_count") == calls
    assert value(parsed, "cxnlp_queue_rejected_total") == 0
    assert families["cxnlp_queue_depth"].type == "gauge"
    assert value(parsed, "cxnlp_queue_depth") == 0 and value(parsed, "cxnlp_jobs_queued") == 0
    assert families["cxnlp_http_requests"].type == "counter"
    assert families["cxnlp_batch_size"].type == "histogram"
    # Standard process metrics come with the library.
    assert value(parsed, "process_resident_memory_bytes") > 0
    assert not any(name.endswith("_created") for name, _ in parsed)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_metrics_sum_every_request(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    # A file left by an earlier run: `cxnlp serve` must empty the directory before starting.
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    port = _free_port()
    env = {
        **os.environ,
        "CXNLP_AUTH": "off",
        "CXNLP_JOBS_DIR": str(tmp_path / "jobs"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "cxnlp.cli", "serve", "--model", "fast", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            assert server.poll() is None, f"cxnlp serve exited: {server.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "cxnlp serve was not ready in time"
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        # Both workers start their metrics in the shared directory (one file per process).
        _wait_for(lambda: len(list(metrics_dir.glob("counter_*.db"))) >= 2, 600)
        assert not (metrics_dir / "counter_999999.db").exists()

        n = 24

        def post(i: int) -> int:
            body = {"items": [{"text": f"the courier was late {i}"}, {"text": "great app"}]}
            # A new connection per request, so that the kernel spreads them over both workers.
            return httpx.post(f"{base}/v1/classify", json=body, timeout=120).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(post, range(n))) == [200] * n
        # Whichever worker answers the scrape, the counts are every worker's summed.
        for _ in range(3):
            parsed = samples(httpx.get(f"{base}/metrics", timeout=30).text)
            route = "/v1/classify"
            assert value(parsed, "cxnlp_http_requests_total", route=route, status="200") == n
            assert value(parsed, "cxnlp_http_request_duration_seconds_count", route=route) == n
            assert value(parsed, "cxnlp_texts_classified_total") == 2 * n
            assert value(parsed, "cxnlp_batch_size_sum") == 2 * n
        # Gauges are each worker's value as of its last refresh (every second), summed: the
        # queues drained, so the sum falls to 0 once both have refreshed.
        _wait_for(
            lambda: (
                value(samples(httpx.get(f"{base}/metrics", timeout=30).text), "cxnlp_queue_depth")
                == 0
            ),
            60,
        )
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.5)
