"""What the cloud-compatible routes (Azure AI Language, AWS Comprehend) share: the route class that
answers every failure in the surface's own error shape (`CloudRoute`), request validation into
that shape (`validated`), the model call (`predict`: the batcher, whose model calls fail text by
text, cxnlp.io.isolate), the declared language of a document checked against the served ones and
against its script, sentences with their offsets, offsets in the index units a client asks for,
and the opinions (aspect evidence) of a prediction.

>>> split_sentences("Great food. The courier was late!")
[(0, 11), (12, 33)]
>>> to_index_units("😀 ok", 2, 4, "Utf16CodeUnit")
(3, 2)
>>> resolve_language("en", "غذا خیلی خوشمزه بود")[0] is None  # Arabic script cannot be English
True
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import regex
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from cxnlp import detect_language
from cxnlp.labels import LANGS, SENTIMENTS
from service.batcher import QueueFull

logger = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)

UNICODE_CODE_POINT, UTF16_CODE_UNIT, TEXT_ELEMENTS_V8 = (
    "UnicodeCodePoint",
    "Utf16CodeUnit",
    "TextElements_v8",
)
STRING_INDEX_TYPES = (TEXT_ELEMENTS_V8, UNICODE_CODE_POINT, UTF16_CODE_UNIT)

# The script each served language is written in: a declared language whose script contradicts
# the text's (the Azure SDK declares "en" for every document unless told otherwise) is ignored.
_SCRIPT = {"fa": "arabic", "ar": "arabic", "en": "latin"}
# A sentence ends at a run of terminal punctuation followed by white space (or the end), or at a
# line break; "3.5" and "x.com" do not end one.
_SENTENCE_END = re.compile(r"[.!?\u061f\u06d4\u2026]+(?=\s|$)|\n")
_GRAPHEME = regex.compile(r"\X")


class CloudError(Exception):
    """An error a cloud surface answers in its own shape (`response`)."""

    def response(self) -> Response:
        raise NotImplementedError


class Busy(Exception):
    """The model's queue is full (`predict`): the route answers with its surface's "try later"
    error, whose Retry-After is `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: str) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class CloudRoute(APIRoute):
    """A route whose every failure is answered in its cloud API's error shape: the surface's own
    errors (`CloudError`) as they are; `translate` turns FastAPI's validation and HTTP errors
    into the surface's error, or gives None for an unexpected failure, which is logged and
    answered with `internal()`, the surface's 500; a full queue (`Busy`) is answered with
    `busy(reason, retry_after)`. Subclasses give the three."""

    @staticmethod
    def translate(exc: Exception) -> CloudError | None:
        raise NotImplementedError

    @staticmethod
    def busy(reason: str, retry_after: str) -> CloudError:
        raise NotImplementedError

    @staticmethod
    def internal() -> CloudError:
        raise NotImplementedError

    @staticmethod
    def where(request: Request) -> str:
        """The request, as the log names it."""
        return f"{request.method} {request.url.path}"

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except CloudError as exc:
                return exc.response()
            except Busy as exc:
                return self.busy(exc.reason, exc.retry_after).response()
            except Exception as exc:  # noqa: BLE001 - every failure leaves in the surface's shape
                error = self.translate(exc)
                if error is None:
                    logger.exception("unhandled error on %s", self.where(request))
                    error = self.internal()
                return error.response()

        return route


def http_message(exc: HTTPException) -> str:
    """The message of an HTTP error raised inside the service (`service.errors.ApiError`'s, else
    its detail)."""
    return str(getattr(exc, "message", None) or exc.detail)


def validated(
    model: type[ModelT], value: Any, error: Callable[[list[dict[str, Any]]], Exception]
) -> ModelT:
    """`value` as `model`; where it does not fit, `error(errors)` (pydantic's error list) is
    raised: the surface's own invalid-request error."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise error(list(exc.errors())) from None


def primary_language(code: str | None) -> str | None:
    """`"fa-IR"` -> `"fa"`; None, empty and `"auto"` -> None (detect)."""
    if code is None:
        return None
    code = code.strip().lower().replace("_", "-")
    if not code or code == "auto":
        return None
    return code.split("-", 1)[0]


def resolve_language(declared: str | None, text: str) -> tuple[str | None, str | None]:
    """The language hint to give the model for a text declared as `declared` (a served language
    or None), and a warning when the declaration was overruled: a language written in another
    script than the text's is ignored and the language is detected, as /v1/classify does."""
    if declared is None:
        return None, None
    detected = detect_language(text)
    if detected in _SCRIPT and _SCRIPT[detected] != _SCRIPT[declared]:
        return None, (
            f"the document was declared {declared!r} but is written in the script of "
            f"{detected!r}; its language was detected instead"
        )
    return declared, None


def unsupported_language(code: str | None) -> bool:
    """True for a declared language the model does not serve (None, empty and `"auto"` mean
    detect)."""
    primary = primary_language(code)
    return primary is not None and primary not in LANGS


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point spans of the sentences of `text`, white space trimmed; a text
    without sentence punctuation is one sentence."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for a, b in spans:
        piece = text[a:b]
        a += len(piece) - len(piece.lstrip())
        b -= len(piece) - len(piece.rstrip())
        if b > a:
            trimmed.append((a, b))
    return trimmed or [(0, len(text))]


def text_elements(text: str) -> int:
    """The number of user-perceived characters (extended grapheme clusters) of `text`."""
    return len(_GRAPHEME.findall(text))


def to_index_units(text: str, start: int, end: int, kind: str) -> tuple[int, int]:
    """(offset, length) of the code-point span [start, end) in `kind` units."""
    if kind == UNICODE_CODE_POINT:
        return start, end - start
    if kind == UTF16_CODE_UNIT:
        before = len(text[:start].encode("utf-16-le")) // 2
        return before, len(text[start:end].encode("utf-16-le")) // 2
    if kind == TEXT_ELEMENTS_V8:
        return text_elements(text[:start]), text_elements(text[start:end])
    raise ValueError(f"unknown string index type {kind!r}; one of {', '.join(STRING_INDEX_TYPES)}")


def is_mixed(prediction: Any) -> bool:
    """The prediction's mixed flag (a confidently positive and a confidently negative clause),
    where the model sets one."""
    return bool(getattr(prediction, "mixed", False))


def mixed_score(prediction: Any) -> float:
    """The probability of `mixed`, where the model gives one; else 0 (the flag has none)."""
    probabilities = getattr(prediction, "probabilities", {}) or {}
    return float(probabilities.get("mixed", 0.0))


def opinions(prediction: Any, text: str) -> list[dict[str, Any]]:
    """The aspect evidence of a prediction: each topic that carries `evidence` (the clause or cue
    match of `cxnlp.models.pipeline`, `{"start", "end", "text"}` code-point offsets into `text`) as
    `{"topic", "polarity", "score", "start", "end"}`, in text order. Topics without evidence
    (models or versions that tag the whole text only) give none."""
    found = []
    for topic in getattr(prediction, "topics", None) or []:
        evidence = topic.get("evidence") if isinstance(topic, dict) else None
        if not isinstance(evidence, dict) or topic.get("polarity") not in SENTIMENTS:
            continue
        start, end = evidence.get("start"), evidence.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            continue
        found.append(
            {
                "topic": topic.get("topic"),
                "polarity": topic.get("polarity"),
                "score": float(topic.get("score", 1.0)),
                "start": start,
                "end": end,
            }
        )
    return sorted(found, key=lambda o: (o["start"], o["end"]))


async def predict(state: Any, handle: Any, texts: list[str], langs: list[str | None]) -> list:
    """The model's result for each text (a `cxnlp.io.isolate.Failed` where the model failed on
    that text alone), through the batcher; a full queue raises `Busy`, which the route
    (`CloudRoute`) answers with its surface's own "try later" error."""
    if not texts:
        return []
    try:
        return await state.batcher.predict(handle, texts, langs)
    except QueueFull as exc:
        raise Busy(str(exc), str(state.settings.retry_after_s)) from None
