"""Micro-batching: texts of concurrent requests are merged into one model call.

Requests wait in a bounded queue; one worker thread takes the oldest request, keeps taking the
next ones while they fit in `max_batch` texts and `max_wait_s` has not passed, runs one
`model.predict` over all of them and hands every request its slice. The model runs in that thread,
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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from service.loading import LoadedModel
from service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The batcher's queue is full; the client should retry later."""


@dataclass
class _Request:
    handle: LoadedModel
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    texts: list[str]
    langs: list[str | None]
    # Set for work that is not a plain predict (a whole analyze frame); never merged.
    call: Callable[[Any], Any] | None = None
    call_size: int = 0  # the texts `call` classifies, for the metrics

    def can_join(self, first: _Request, size: int, max_batch: int) -> bool:
        return (
            self.call is None
            and first.call is None
            and self.handle is first.handle
            and size + len(self.texts) <= max_batch
        )


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
        metrics: ServiceMetrics | None = None,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_s < 0:
            raise ValueError(
                f"need max_batch >= 1, queue_size >= 1, max_wait_s >= 0; got {max_batch}, "
                f"{queue_size}, {max_wait_s}"
            )
        self.max_batch, self.max_wait_s, self.queue_size = max_batch, max_wait_s, queue_size
        self.metrics = metrics or ServiceMetrics()
        self._pending: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cxnlp-batcher", daemon=True)
        self.model_calls = 0

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch being computed)."""
        return len(self._pending)

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
            self._pending.append(request)
            self._cond.notify()
        return await request.future

    def _next_batch(self) -> list[_Request] | None:
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending.popleft()
            batch, size = [first], len(first.texts)
            if first.call is not None:
                return batch
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_batch:
                if self._pending:
                    if not self._pending[0].can_join(first, size, self.max_batch):
                        break
                    nxt = self._pending.popleft()
                    batch.append(nxt)
                    size += len(nxt.texts)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            batch = [r for r in batch if not r.future.cancelled()]
            if not batch:
                continue
            try:
                if batch[0].call is not None:
                    self._run_call(batch[0])
                else:
                    self._run_predict(batch)
            except BaseException as exc:  # noqa: BLE001 - the worker must survive anything
                logger.exception("the batch worker failed on a batch")
                for request in batch:  # nobody may wait forever
                    _deliver(request, error=RuntimeError(f"batch failed: {exc!r}"))

    def _run_call(self, request: _Request) -> None:
        started = time.perf_counter()
        try:
            result = request.call(request.handle.model)
            self._observe(request.call_size, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            _deliver(request, error=exc)
        else:
            _deliver(request, result)

    def _run_predict(self, batch: list[_Request]) -> None:
        model = batch[0].handle.model
        texts = [t for r in batch for t in r.texts]
        langs = [lang for r in batch for lang in r.langs]
        try:
            predictions = self._timed_predict(model, texts, langs)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(batch) == 1:
                _deliver(batch[0], error=exc)
                return
            # Retry each request alone so that one bad request fails alone.
            logger.exception("a merged batch of %d requests failed; retrying each", len(batch))
            for request in batch:
                self._run_predict([request])
            return
        start = 0
        for request in batch:
            end = start + len(request.texts)
            _deliver(request, predictions[start:end])
            start = end

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
