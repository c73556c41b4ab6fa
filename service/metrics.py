"""Prometheus metrics in the text exposition format, written by hand (a dependency for a few
counters is not worth it), and the middleware that counts requests.

>>> registry = Registry()
>>> hits = registry.counter("demo_hits_total", "Hits.", ("route",))
>>> hits.inc(route="/v1/classify")
>>> print(registry.render().splitlines()[-1])
demo_hits_total{route="/v1/classify"} 1
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        lines = self.header()
        if not items and not self.labelnames:
            items = [((), 0)]
        lines += [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]
        return lines


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames=(), buckets=LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        # per label set: [count per bucket (+Inf last)], sum
        self._data: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            counts, total = self._data.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[index] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        data = self._data.get(self._key(labels))
        return sum(data[0]) if data else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self._data.items())
        if not items and not self.labelnames:
            items = [((), ([0] * (len(self.buckets) + 1), 0.0))]
        lines = self.header()
        for key, (counts, total) in items:
            cumulative = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += n
                bound_text = "+Inf" if bound == float("inf") else _number(bound)
                le = f'le="{bound_text}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {cumulative}")
        return lines


class Gauge(_Metric):
    """A value read when the metrics are scraped (queue depth, jobs waiting)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self.read = read

    def render(self) -> list[str]:
        return [*self.header(), f"{self.name} {_number(self.read())}"]


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def _add(self, metric: _Metric):
        self._metrics.append(metric)
        return metric

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labelnames))

    def histogram(self, name: str, help_text: str, labelnames=(), buckets=LATENCY_BUCKETS):
        return self._add(Histogram(name, help_text, labelnames, buckets))

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> Gauge:
        return self._add(Gauge(name, help_text, read))

    def render(self) -> str:
        return "\n".join(line for m in self._metrics for line in m.render()) + "\n"


class ServiceMetrics:
    """The metrics the service exports; gauges are attached once the batcher and jobs exist."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.requests = r.counter(
            "cxnlp_http_requests_total", "HTTP requests by route and status.", ("route", "status")
        )
        self.latency = r.histogram(
            "cxnlp_http_request_duration_seconds", "HTTP request latency by route.", ("route",)
        )
        self.texts = r.counter("cxnlp_texts_classified_total", "Texts classified by the model.")
        self.batch_size = r.histogram(
            "cxnlp_batch_size", "Texts per model call (micro-batches).", buckets=BATCH_BUCKETS
        )
        self.model_seconds = r.histogram(
            "cxnlp_model_call_duration_seconds", "Time of one model call."
        )
        self.rejected = r.counter(
            "cxnlp_queue_rejected_total", "Requests refused with 503 because the queue was full."
        )

    def add_gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.registry.gauge(name, help_text, read)


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
            self.metrics.requests.inc(route=name, status=str(status))
            self.metrics.latency.observe(time.perf_counter() - started, route=name)
