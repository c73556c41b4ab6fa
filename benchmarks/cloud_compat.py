"""The Azure AI Language and AWS Comprehend routes through their own SDKs against /v1/classify:
a real uvicorn on loopback, the rows of ``examples/reviews.csv`` (Persian, Arabic, English) sent
one request after another, in batches of the clouds' sizes (Azure 10 documents, AWS 25).

Usage (from the repository root)::

    .venv/bin/python benchmarks/cloud_compat.py --model fast
    .venv/bin/python benchmarks/cloud_compat.py --model default --limit 200

Prints, for /v1/classify, Azure ``analyze_sentiment`` and AWS ``batch_detect_sentiment``: requests,
texts/s and p50 / p95 latency per request; then how many reviews got the same label and the same
probabilities (within 1e-9) from each SDK as from /v1/classify (Azure without a declared language,
the SDK's default; AWS with the language /v1/classify detected, as Comprehend needs one).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
KEY, ACCESS_KEY, SECRET = "bench-key-not-secret", "AKIDBENCH", "bench-secret-not-secret"


def load_texts(limit: int) -> list[str]:
    with open(REPO_ROOT / "examples" / "reviews.csv", encoding="utf-8-sig", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f) if row["text"].strip()]
    return [t[:4000] for t in texts[:limit]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, jobs: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "CXNLP_MODEL": model,
        "CXNLP_API_KEYS": KEY,
        "CXNLP_AZURE_API": "on",
        "CXNLP_AWS_API": "on",
        "CXNLP_AWS_KEYS": f"{ACCESS_KEY}:{SECRET}",
        "CXNLP_JOBS_DIR": jobs,
    }
    command = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the server did not become ready in 300 s")


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def timed(batches: list, call: Callable[[list], list]) -> tuple[list, list[float]]:
    results, latencies = [], []
    for batch in batches:
        started = time.perf_counter()
        results += call(batch)
        latencies.append(time.perf_counter() - started)
    return results, latencies


def report(name: str, n_texts: int, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    print(
        f"{name:<34} {len(latencies):>5} requests  {n_texts / sum(latencies):>8.1f} texts/s  "
        f"p50 {statistics.median(ordered) * 1000:>7.1f} ms  p95 {p95 * 1000:>7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fast")
    parser.add_argument("--limit", type=int, default=500, help="reviews to send")
    args = parser.parse_args()

    import boto3
    from azure.ai.textanalytics import TextAnalyticsClient
    from azure.core.credentials import AzureKeyCredential
    from botocore.config import Config

    texts = load_texts(args.limit)
    with tempfile.TemporaryDirectory() as jobs:
        process, url = start_server(args.model, jobs)
        try:
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"})

            def v1(batch: list[str]) -> list[dict]:
                r = http.post("/v1/classify", json={"items": [{"text": t} for t in batch]})
                r.raise_for_status()
                return r.json()["items"]

            azure = TextAnalyticsClient(url, AzureKeyCredential(KEY))
            aws = boto3.client(
                "comprehend",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET,
                config=Config(retries={"max_attempts": 1}),
            )
            v1(texts[:10])  # warm-up
            print(f"{len(texts)} reviews of examples/reviews.csv, model {args.model!r}")
            expected, lat = timed(chunks(texts, 10), v1)
            report("/v1/classify, 10 items", len(texts), lat)
            _, lat = timed(chunks(texts, 25), v1)
            report("/v1/classify, 25 items", len(texts), lat)
            azure_out, lat = timed(chunks(texts, 10), azure.analyze_sentiment)
            report("Azure analyze_sentiment, 10 docs", len(texts), lat)

            # Comprehend takes one language per batch: group by the language /v1 detected.
            by_lang: dict[str, list[int]] = {}
            for i, item in enumerate(expected):
                by_lang.setdefault(item["lang"], []).append(i)
            aws_out: dict[int, dict] = {}
            latencies = []
            for lang, indices in by_lang.items():
                if lang not in ("fa", "ar", "en"):
                    continue
                for batch in chunks(indices, 25):
                    started = time.perf_counter()
                    response = aws.batch_detect_sentiment(
                        TextList=[texts[i] for i in batch], LanguageCode=lang
                    )
                    latencies.append(time.perf_counter() - started)
                    for result in response["ResultList"]:
                        aws_out[batch[result["Index"]]] = result
            report("AWS batch_detect_sentiment, 25", len(aws_out), latencies)

            def same(label: str, scores: dict[str, float], item: dict) -> bool:
                p = item["probabilities"]
                return label == item["sentiment"] and all(
                    abs(scores[k] - p[k]) < 1e-9 for k in ("positive", "neutral", "negative")
                )

            azure_same = sum(
                not doc.is_error
                and same(
                    doc.sentiment,
                    {
                        "positive": doc.confidence_scores.positive,
                        "neutral": doc.confidence_scores.neutral,
                        "negative": doc.confidence_scores.negative,
                    },
                    item,
                )
                for doc, item in zip(azure_out, expected, strict=True)
            )
            aws_same = sum(
                same(
                    r["Sentiment"].lower(),
                    {k.lower(): v for k, v in r["SentimentScore"].items()},
                    expected[i],
                )
                for i, r in aws_out.items()
            )
            print(f"Azure: {azure_same} of {len(texts)} reviews as /v1/classify")
            print(f"AWS:   {aws_same} of {len(aws_out)} reviews in fa/ar/en as /v1/classify")
        finally:
            process.terminate()
            process.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
