"""The one prediction wrapper of every surface: `predict_isolated` runs a model call and, when it
fails, each text alone, so that one text the model chokes on fails alone (a `Failed` in its
place) instead of taking its batch, request or chunk down. `cxnlp classify` (both engines, per
chunk) and the service (per model call of its micro-batcher: /v1, Azure, AWS) call it.

>>> class Model:
...     def predict(self, texts, langs=None):
...         if "boom" in texts:
...             raise ValueError("no")
...         return [len(t) for t in texts]
>>> predict_isolated(Model().predict, ["ab", "boom", "c"], [None] * 3)
[2, Failed(error='classification failed (ValueError); the log has the details'), 1]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

Predict = Callable[[list[str], list[str | None]], Sequence[Any]]


@dataclass(frozen=True)
class Failed:
    """A text the model failed on. The message names the exception's type only: its text stays
    in the log, as it can quote the input or the model's internals."""

    error: str


def _failed(exc: Exception) -> Failed:
    return Failed(f"classification failed ({type(exc).__name__}); the log has the details")


def _checked(predict: Predict, texts: list[str], langs: list[str | None]) -> list[Any]:
    predictions = list(predict(texts, langs))
    if len(predictions) != len(texts):
        raise RuntimeError(f"the model returned {len(predictions)} results for {len(texts)} texts")
    return predictions


def predict_isolated(
    predict: Predict, texts: Sequence[str], langs: Sequence[str | None] | None = None
) -> list[Any]:
    """`predict(texts, langs)`, or, when that raises, each text predicted alone: one result per
    text, a `Failed` for each text that fails on its own. Only `Exception`s are caught (a
    KeyboardInterrupt or a job's cancellation goes through)."""
    texts = list(texts)
    langs = list(langs) if langs is not None else [None] * len(texts)
    if not texts:
        return []
    try:
        return _checked(predict, texts, langs)
    except Exception as exc:  # noqa: BLE001 - isolated below
        if len(texts) == 1:
            logger.warning("a text failed: %s: %s", type(exc).__name__, exc)
            return [_failed(exc)]
        logger.exception("a model call of %d texts failed; predicting them one by one", len(texts))
    results: list[Any] = []
    for n, (text, lang) in enumerate(zip(texts, langs, strict=True)):
        try:
            results.append(_checked(predict, [text], [lang])[0])
        except Exception as exc:  # noqa: BLE001 - becomes this text's error
            logger.warning("text %d failed: %s: %s", n, type(exc).__name__, exc)
            results.append(_failed(exc))
    return results
