"""Micro-batching: texts of concurrent requests are merged into one model call.

Requests wait in a queue bounded in requests (`queue_size`) and in texts (`max_texts`: admission
counts the work, so a few 256-text requests cannot fill it unseen; small requests have a little
headroom beyond it). One worker thread forms each model call of at most `max_batch` texts, fairly:
small requests (at most a quarter of `max_batch` texts) fill a call first, a quarter of it is kept
for a slice of the oldest big request, and a big request is cut into slices, so a one-text caller
waits for about one call, never for a whole 256-text request, and big callers keep moving. It
waits up to `max_wait_s` for a call to fill, runs one
`model.predict` and hands every request its results when all its slices are done; a text the
model fails on gets a `cxnlp.io.isolate.Failed` in its place, the others their predictions. The model runs in that thread,
never on the event loop. A full queue refuses at once (`QueueFull`, a 503 upstream) instead of
letting clients hang. `max_batch=1` turns merging off: one request, one model call.

Each request carries the `LoadedModel` it arrived under, and only requests of the same model are
merged, so swapping the served model never changes the model of a request already accepted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cxnlp.io.isolate import predict_isolated
from service.loading import LoadedModel
from service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The batcher's queue is full; the client should retry later."""


@dataclass(eq=False)
class _Request:
    handle: LoadedModel
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    texts: list[str]
    langs: list[str | None]
    # Set for work that is not a plain predict (a whole analyze frame); never merged.
    call: Callable[[Any], Any] | None = None
    call_size: int = 0  # the texts `call` classifies, for the metrics
    seq: int = 0  # arrival order
    arrived: float = 0.0
    next: int = 0  # texts handed to the model so far
    results: list = field(default_factory=list)
    released: bool = False  # answered or abandoned; its texts no longer count

    @property
    def size(self) -> int:
        return self.call_size if self.call is not None else len(self.texts)

    @property
    def remaining(self) -> int:
        return len(self.texts) - self.next


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away and its request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _deliver(request: _Request, result: Any = None, error: BaseException | None = None) -> None:
    """Hand a result to the request's event loop (from the worker thread)."""
    try:
        request.loop.call_soon_threadsafe(_resolve, request.future, result, error)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        logger.debug("dropped a result for a closed event loop")


class MicroBatcher:
    def __init__(
        self,
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.005,
        queue_size: int = 256,
        max_texts: int = 1024,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_s < 0 or max_texts < 1:
            raise ValueError(
                f"need max_batch >= 1, queue_size >= 1, max_wait_s >= 0, max_texts >= 1; got "
                f"{max_batch}, {queue_size}, {max_wait_s}, {max_texts}"
            )
        self.max_batch, self.max_wait_s, self.queue_size = max_batch, max_wait_s, queue_size
        self.max_texts = max_texts
        self.metrics = metrics or ServiceMetrics()
        self._pending: list[_Request] = []
        self._texts = 0  # texts accepted and not yet answered (waiting or being computed)
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cxnlp-batcher", daemon=True)
        self.model_calls = 0

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch being computed)."""
        return len(self._pending)

    @property
    def texts_in_flight(self) -> int:
        """Texts accepted and not yet answered: what admission counts against `max_texts`."""
        return self._texts

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests; the worker finishes what is queued, then exits."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    async def predict(
        self, handle: LoadedModel, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list:
        """The model's predictions for `texts`, computed in a (possibly shared) batch."""
        langs = list(langs) if langs is not None else [None] * len(texts)
        return await self._submit(handle, list(texts), langs)

    async def call(self, handle: LoadedModel, fn: Callable[[Any], Any], size: int = 0) -> Any:
        """`fn(model)` in the worker thread, queued with the predictions (one model user at a
        time, the same back-pressure); `size` is the texts it classifies, for the metrics."""
        return await self._submit(handle, [], [], fn, size)

    async def _submit(self, handle, texts, langs, call=None, call_size: int = 0) -> Any:
        loop = asyncio.get_running_loop()
        request = _Request(handle, loop.create_future(), loop, texts, langs, call, call_size)
        with self._cond:
            if self._closed:
                raise QueueFull("the service is shutting down")
            if len(self._pending) >= self.queue_size:
                self.metrics.rejected.inc()
                raise QueueFull(f"{len(self._pending)} requests are already waiting")
            # Admission counts texts, not requests: 30 requests of 256 texts are 7,680 texts of
            # work. A request larger than the whole budget still runs when nothing else waits.
            # Small requests have headroom beyond the budget, so big callers filling it never
            # shut a one-text caller out.
            budget = self.max_texts + (
                4 * self.max_batch if request.size <= self.small_limit else 0
            )
            if self._texts and self._texts + request.size > budget:
                self.metrics.rejected.inc()
                raise QueueFull(
                    f"{self._texts} texts are already waiting or being classified; the limit "
                    f"is {self.max_texts} (CXNLP_QUEUE_TEXTS)"
                )
            self._seq += 1
            request.seq, request.arrived = self._seq, time.monotonic()
            self._texts += request.size
            self._pending.append(request)
            self._cond.notify()
        try:
            return await request.future
        finally:
            if request.future.cancelled():
                self._forget(request)

    def _forget(self, request: _Request) -> None:
        """Drop a request that is answered or abandoned, and release its texts."""
        with self._cond:
            if request in self._pending:
                self._pending.remove(request)
            if not request.released:
                request.released = True
                self._texts -= request.size

    @property
    def small_limit(self) -> int:
        """Requests with at most this many texts left are small: they go first."""
        return max(1, self.max_batch // 4)

    def _order(self, first_handle: LoadedModel | None = None) -> tuple[list, list]:
        plain = [
            r for r in self._pending
            if r.call is None and (first_handle is None or r.handle is first_handle)
        ]  # fmt: skip
        small = [r for r in plain if r.remaining <= self.small_limit]
        big = [r for r in plain if r.remaining > self.small_limit]
        return small, big  # each in arrival order (the list is)

    def _next_batch(self) -> list[tuple[_Request, int, int]] | None:
        """The next model call: one `call` request alone, or slices (request, start, end) of
        plain requests of one model, at most max_batch texts. Fair interleaving: small requests
        fill a call first, with a quarter of it kept for a slice of the oldest big request while
        one waits, so a one-text caller waits for at most one call and big ones keep moving."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending[0]
            if first.call is not None:
                self._pending.remove(first)
                return [(first, 0, 0)]
            batch: list[tuple[_Request, int, int]] = []
            size = 0
            deadline = time.monotonic() + self.max_wait_s

            def take(request: _Request, room: int) -> None:
                nonlocal size
                n = min(request.remaining, room)
                if n <= 0:
                    return
                batch.append((request, request.next, request.next + n))
                request.next += n
                size += n
                if not request.remaining:
                    self._pending.remove(request)

            while True:
                small, big = self._order(first.handle)
                reserve = self.max_batch // 4 if big else 0
                for request in small:
                    take(request, self.max_batch - reserve - size)
                for request in big:
                    take(request, self.max_batch - size)
                for request in small:  # room left when no big request took it
                    if request in self._pending:
                        take(request, self.max_batch - size)
                remaining = deadline - time.monotonic()
                if size >= self.max_batch or remaining <= 0 or self._closed:
                    return batch
                self._cond.wait(remaining)

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            batch = [s for s in batch if not s[0].future.cancelled()]
            if not batch:
                continue
            try:
                if batch[0][0].call is not None:
                    self._run_call(batch[0][0])
                else:
                    self._run_predict(batch)
            except BaseException as exc:  # noqa: BLE001 - the worker must survive anything
                logger.exception("the batch worker failed on a batch")
                for request, _, _ in batch:  # nobody may wait forever
                    self._finish(request, error=RuntimeError(f"batch failed: {exc!r}"))

    def _finish(self, request: _Request, result: Any = None, error: BaseException | None = None):
        self._forget(request)
        _deliver(request, result, error)

    def _run_call(self, request: _Request) -> None:
        started = time.perf_counter()
        size = request.call_size
        try:
            result = request.call(request.handle.model)
            self._observe(size, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            self._finish(request, error=exc)
        else:
            self._finish(request, result)

    def _run_predict(self, batch: list[tuple[_Request, int, int]]) -> None:
        model = batch[0][0].handle.model
        texts = [t for r, a, b in batch for t in r.texts[a:b]]
        langs = [lang for r, a, b in batch for lang in r.langs[a:b]]
        # One text the model fails on fails alone: the call is retried text by text and that
        # text's result is a `Failed` (cxnlp.io.isolate, the wrapper `cxnlp classify` uses too).
        predictions = predict_isolated(lambda t, g: self._timed_predict(model, t, g), texts, langs)
        start = 0
        for request, a, b in batch:
            if request.released:  # abandoned
                start += b - a
                continue
            request.results.extend(predictions[start : start + b - a])
            start += b - a
            if len(request.results) == len(request.texts):
                self._finish(request, request.results)

    def _timed_predict(self, model: Any, texts: list[str], langs: list[str | None]) -> list:
        started = time.perf_counter()
        predictions = model.predict(texts, langs)
        self._observe(len(texts), time.perf_counter() - started)
        if len(predictions) != len(texts):
            raise RuntimeError(f"the model returned {len(predictions)} results for {len(texts)}")
        return predictions

    def _observe(self, size: int, seconds: float) -> None:
        self.model_calls += 1
        self.metrics.model_seconds.observe(seconds)
        self.metrics.batch_size.observe(size)
        self.metrics.texts.inc(size)
