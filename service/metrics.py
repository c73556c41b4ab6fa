"""The service's Prometheus metrics, on `prometheus-client`, and the middleware that counts requests.

In one process each app has its own registry, with the process metrics (CPU, memory, open files)
beside the service's. Under several uvicorn workers (`cxnlp serve --workers N`), `cxnlp serve`
points `PROMETHEUS_MULTIPROC_DIR` at an emptied directory before the workers start; every worker
writes its counters and histograms there and `/metrics`, whichever worker answers, sums them all
(prometheus-client's multiprocess mode). Gauges are then each live worker's own value, refreshed
every second, summed; a worker that stops removes its gauges.

>>> metrics = ServiceMetrics()
>>> metrics.requests.labels(route="/v1/classify", status="200").inc()
>>> [line for line in metrics.render().splitlines() if line.startswith("cxnlp_http_requests")]
['cxnlp_http_requests_total{route="/v1/classify",status="200"} 1.0']
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
GAUGE_REFRESH_S = 1.0

# No `_created` series: the service's metrics are the ones it has always exposed.
disable_created_metrics()


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, when it is on in this process."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str) -> str:
    """Create `path` or empty it of an earlier run's metric files (which would otherwise be
    summed into this run's totals); returns it."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    return path


class ServiceMetrics:
    """The metrics the service exports; gauges are attached once the batcher and jobs exist."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        r = self.registry
        self.requests = Counter(
            "cxnlp_http_requests_total",
            "HTTP requests by route and status.",
            ("route", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "cxnlp_http_request_duration_seconds",
            "HTTP request latency by route.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.texts = Counter(
            "cxnlp_texts_classified_total", "Texts classified by the model.", registry=r
        )
        self.batch_size = Histogram(
            "cxnlp_batch_size",
            "Texts per model call (micro-batches).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.model_seconds = Histogram(
            "cxnlp_model_call_duration_seconds",
            "Time of one model call.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "cxnlp_queue_rejected_total",
            "Requests refused with 503 because the queue was full.",
            registry=r,
        )
        if not self.multiprocess:  # process metrics describe one process; with several, the one
            ProcessCollector(registry=r)  # that answered would pass for all of them
        self._gauges: list[tuple[Gauge, Callable[[], float]]] = []
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def add_gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A gauge whose value is `read()`: at each scrape in one process; every
        `GAUGE_REFRESH_S` seconds in each worker, summed over the live ones, in multiprocess
        mode."""
        if not self.multiprocess:
            Gauge(name, help_text, registry=self.registry).set_function(read)
            return
        gauge = Gauge(name, help_text, registry=self.registry, multiprocess_mode="livesum")
        self._gauges.append((gauge, read))
        if self._refresher is None:
            self._refresher = threading.Thread(
                target=self._refresh_loop, name="cxnlp-metrics-gauges", daemon=True
            )
            self._refresher.start()

    def _refresh(self) -> None:
        for gauge, read in self._gauges:
            try:
                gauge.set(read())
            except Exception:  # a gauge must never break the scrape or the worker
                logger.exception("reading gauge %s failed", gauge._name)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(GAUGE_REFRESH_S):
            self._refresh()

    def render(self) -> str:
        """The text exposition of every metric (all workers' in multiprocess mode)."""
        if not self.multiprocess:
            return generate_latest(self.registry).decode("utf-8")
        self._refresh()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry).decode("utf-8")

    def close(self) -> None:
        """Stop refreshing gauges; in multiprocess mode, drop this worker's live gauges."""
        self._stop.set()
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Counts every HTTP request by its route template (not the raw path, which would make a
    series per job id) and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(route=name, status=str(status)).inc()
            self.metrics.latency.labels(route=name).observe(time.perf_counter() - started)
