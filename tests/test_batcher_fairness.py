"""Admission by texts and fair interleaving in the micro-batcher (issue 15)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.batcher import MicroBatcher, QueueFull
from service.loading import wrap_model


class Gated:
    kind = "fast"

    def __init__(self) -> None:
        self.gate, self.entered = threading.Event(), threading.Event()
        self.calls: list[list[str]] = []

    def predict(self, texts, langs=None):
        self.calls.append(list(texts))
        self.entered.set()
        self.gate.wait(20)
        return [f"result:{t}" for t in texts]


def test_admission_counts_texts_not_requests():
    async def run():
        model = Gated()
        batcher = MicroBatcher(max_batch=8, queue_size=100, max_texts=300)
        handle = wrap_model(model)
        big = asyncio.ensure_future(batcher.predict(handle, ["x"] * 256))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="256 texts are already waiting"):
            await batcher.predict(handle, ["y"] * 50)
        small = asyncio.ensure_future(batcher.predict(handle, ["z"] * 44))  # 300 fits
        await asyncio.sleep(0)
        assert batcher.texts_in_flight == 300
        model.gate.set()
        batcher.start()
        out = await asyncio.gather(big, small)
        batcher.close()
        return out, batcher.texts_in_flight

    (big, small), left = asyncio.run(run())
    assert big == ["result:x"] * 256 and small == ["result:z"] * 44
    assert left == 0  # every text released once answered


def test_one_text_caller_does_not_wait_behind_a_big_request():
    async def run():
        model = Gated()
        batcher = MicroBatcher(max_batch=16, max_wait_s=0, queue_size=100, max_texts=2000)
        batcher.start()
        handle = wrap_model(model)
        try:
            blocker = asyncio.ensure_future(batcher.predict(handle, ["first"]))
            await asyncio.to_thread(model.entered.wait, 10)
            big = asyncio.ensure_future(batcher.predict(handle, [f"b{i}" for i in range(64)]))
            await asyncio.sleep(0.01)
            small = asyncio.ensure_future(batcher.predict(handle, ["s"]))
            await asyncio.sleep(0.01)
            model.gate.set()
            results = await asyncio.gather(blocker, big, small)
        finally:
            batcher.close()
        return model.calls, results

    calls, (_, big, small) = asyncio.run(run())
    assert max(len(c) for c in calls) <= 16  # the big request went in slices
    # The small request, though later, ran in the first call after the blocker.
    assert "s" in calls[1]
    assert big == [f"result:b{i}" for i in range(64)] and small == ["result:s"]
