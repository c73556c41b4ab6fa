"""AWS Comprehend's sentiment and language operations on the served model, in Comprehend's JSON
protocol (`POST /`, operation in `X-Amz-Target: Comprehend_20171127.<Operation>`), so that
`boto3.client("comprehend", endpoint_url=...)` works unchanged but for the endpoint and keys.

Requests are verified with SigV4 against the key pairs of `CXNLP_AWS_KEYS=ID:SECRET,...`; errors
are AWS's `{"__type": ..., "Message": ...}` with its exception names. Enabled by
`CXNLP_AWS_API=on`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cxnlp import detect_language
from cxnlp.io.isolate import Failed
from cxnlp.io.validate import parse_json, text_problem
from cxnlp.labels import LANGS
from service.cloud import (
    CloudError,
    CloudRoute,
    http_message,
    is_mixed,
    mixed_score,
    opinions,
    primary_language,
    resolve_language,
    unsupported_language,
    validated,
)
from service.cloud import predict as cloud_predict
from service.deps import State
from service.errors import field_path
from service.loading import LoadedModel
from service.schemas_aws import REQUESTS, RESPONSES, AwsErrorResponse
from service.settings import Settings
from service.sigv4 import SigV4Error, verify

TARGET_PREFIX = "Comprehend_20171127."
SIGNING_NAME = "comprehend"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BATCH = 25
MAX_TEXT_BYTES = 5000  # DetectSentiment, DetectTargetedSentiment, every batch document
MAX_LANGUAGE_TEXT_BYTES = 100_000  # DetectDominantLanguage
UNDETERMINED = "und"  # RFC 5646: the language could not be determined


def access_keys(settings: Settings) -> dict[str, str]:
    """Access key id -> secret from `CXNLP_AWS_KEYS` (`ID:SECRET,ID2:SECRET2`)."""
    pairs: dict[str, str] = {}
    for n, entry in enumerate(settings.aws_keys):
        key_id, sep, secret = entry.partition(":")
        if not sep or not key_id.strip() or not secret.strip():
            raise ValueError(
                f"CXNLP_AWS_KEYS entry {n + 1} is not ACCESS_KEY_ID:SECRET (pairs are separated "
                "by commas)"
            )
        pairs[key_id.strip()] = secret.strip()
    if settings.auth and not pairs:
        raise ValueError(
            "CXNLP_AWS_API is on but no AWS keys are configured: set "
            "CXNLP_AWS_KEYS=ACCESS_KEY_ID:SECRET[,...] (or CXNLP_AUTH=off for local use only)"
        )
    return pairs


class AwsError(CloudError):
    """An error in AWS's JSON-protocol shape."""

    def __init__(
        self, code: str, message: str, status: int = 400, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.code, self.message, self.status, self.headers = code, message, status, headers

    def response(self) -> JSONResponse:
        headers = {"x-amzn-ErrorType": self.code, **_request_id(), **(self.headers or {})}
        return JSONResponse(
            {"__type": self.code, "Message": self.message},
            status_code=self.status,
            headers=headers,
            media_type=CONTENT_TYPE,
        )


def _request_id() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}


class AwsRoute(CloudRoute):
    """A route whose every failure (auth, limits, an unexpected error) is AWS-shaped."""

    @staticmethod
    def translate(exc: Exception) -> AwsError | None:
        if isinstance(exc, HTTPException):
            message = http_message(exc)
            if exc.status_code == 413:
                return AwsError("TextSizeLimitExceededException", message)
            return AwsError("InvalidRequestException", message)
        return None

    @staticmethod
    def busy(reason: str, retry: str) -> AwsError:
        return AwsError(
            "ThrottlingException",
            f"Rate exceeded: the service is busy ({reason})",
            headers={"Retry-After": retry},
        )

    @staticmethod
    def internal() -> AwsError:
        return AwsError(
            "InternalServerException",
            "internal server error; the service log has the details",
            status=500,
        )

    @staticmethod
    def where(request: Request) -> str:
        return str(request.headers.get("x-amz-target"))


router = APIRouter(tags=["aws"], route_class=AwsRoute)

_OPERATIONS_DOC = ", ".join(REQUESTS)


def _inline(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """A model's JSON schema with its `$defs` references replaced by the definitions, so that
    it can sit inside the OpenAPI document (the models are not recursive)."""
    if defs is None:
        defs = schema.pop("$defs", {}) if isinstance(schema, dict) else {}
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(dict(defs[ref.removeprefix("#/$defs/")]), defs)
        return {k: _inline(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _one_of(models: dict[str, type[BaseModel]], suffix: str = "") -> dict[str, Any]:
    schema = {
        "oneOf": [
            {**_inline(model.model_json_schema()), "title": f"{name}{suffix}"}
            for name, model in models.items()
        ]
    }
    # botocore sends application/x-amz-json-1.1; the body is plain JSON either way.
    return {media: {"schema": schema} for media in (CONTENT_TYPE, "application/json")}


_OPENAPI = {"requestBody": {"required": True, "content": _one_of(REQUESTS)}}


@router.post(
    "/",
    summary="AWS Comprehend (JSON protocol): " + _OPERATIONS_DOC,
    openapi_extra=_OPENAPI,
    responses={
        200: {"description": "the operation's response", "content": _one_of(RESPONSES, "Response")},
        400: {"model": AwsErrorResponse, "description": "AWS-shaped error"},
    },
)
async def comprehend(
    request: Request,
    state: State,
    x_amz_target: Annotated[
        str | None,
        Header(
            alias="X-Amz-Target",
            description=f"{TARGET_PREFIX}<Operation>, one of {_OPERATIONS_DOC}",
        ),
    ] = None,
) -> Response:
    """AWS Comprehend's synchronous sentiment and language operations, signed with SigV4."""
    body = await request.body()
    if state.settings.auth:
        _authenticate(request, body, access_keys(state.settings))
    operation = (x_amz_target or "").removeprefix(TARGET_PREFIX)
    if not x_amz_target or not x_amz_target.startswith(TARGET_PREFIX) or operation not in REQUESTS:
        raise AwsError(
            "UnknownOperationException",
            f"Unknown operation {x_amz_target!r}; this service answers {TARGET_PREFIX}"
            f"{{{_OPERATIONS_DOC}}}",
        )
    try:
        payload = parse_json(body or b"{}")
    except ValueError as exc:  # invalid JSON, undecodable bytes, or nested too deep to read
        raise AwsError(
            "SerializationException", f"the request body is not valid JSON: {exc}"
        ) from None
    params = validated(REQUESTS[operation], payload, _invalid)
    handle = state.handle
    if handle is None:
        raise AwsError(
            "ServiceUnavailableException", "no model is loaded yet", 503, {"Retry-After": "1"}
        )
    result = await _HANDLERS[operation](state, handle, params)
    return JSONResponse(
        RESPONSES[operation].model_validate(result).model_dump(),
        media_type=CONTENT_TYPE,
        headers=_request_id(),
    )


def _authenticate(request: Request, body: bytes, secrets: dict[str, str]) -> None:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
    try:
        verify(
            request.method,
            request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
            request.scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            secrets,
            service=SIGNING_NAME,
        )
    except SigV4Error as exc:
        raise AwsError(exc.code, exc.message, 403 if _is_403(exc.code) else 400) from None


def _is_403(code: str) -> bool:
    # Comprehend answers these with 403; a malformed header (IncompleteSignature) with 400.
    return code in {
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    }


def _invalid(errors: list[dict[str, Any]]) -> AwsError:
    detail = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in errors[:5])
    return AwsError(
        "InvalidRequestException", f"{len(errors)} validation error(s) detected: {detail}"
    )


# --- the operations ----------------------------------------------------------------------------


def _language(code: str) -> str:
    primary = primary_language(code)
    if primary is None or unsupported_language(code):
        raise AwsError(
            "UnsupportedLanguageException",
            f"Unsupported language code {code!r}: this service analyses "
            f"{', '.join(sorted(LANGS))}.",
        )
    return primary


def _text_problem(text: str, max_bytes: int, max_chars: int) -> tuple[str, str] | None:
    """(exception, message) for a text that cannot be analysed, or None: the rule of every
    surface (`cxnlp.io.validate.text_problem`) in Comprehend's exceptions, and its byte limit."""
    problem = text_problem(text, max_chars)
    if problem is not None and problem.code != "too_long":
        if problem.code == "empty":
            return "InvalidRequestException", "The text is empty or only white space."
        return "InvalidRequestException", problem.message
    size = len(text.encode("utf-8"))  # valid Unicode from here on
    if size > max_bytes:
        return "TextSizeLimitExceededException", (
            f"Input text size exceeds limit. Max length of request text allowed is {max_bytes} "
            f"bytes while in this request the text size is {size} bytes"
        )
    if problem is not None:
        return "TextSizeLimitExceededException", (
            f"Input text size exceeds limit. Max length of request text allowed is {max_chars} "
            f"characters (CXNLP_MAX_TEXT_CHARS) while in this request the text has {len(text)}"
        )
    return None


_BATCH_CODES = {
    "TextSizeLimitExceededException": "TEXT_SIZE_LIMIT_EXCEEDED",
    "InvalidRequestException": "INVALID_DOCUMENT",
    "InternalServerException": "INTERNAL_SERVER_ERROR",
}


def _check_batch(texts: list[str], max_items: int) -> None:
    limit = min(MAX_BATCH, max_items)
    if not texts:
        raise AwsError("InvalidRequestException", "TextList must contain at least one text.")
    if len(texts) > limit:
        raise AwsError(
            "BatchSizeLimitExceededException",
            f"Batch size {len(texts)} exceeds the limit of {limit} documents.",
        )


def _ok(prediction: Any) -> Any:
    """A single-text operation's prediction, or its failure as Comprehend's 500."""
    if isinstance(prediction, Failed):
        raise AwsError("InternalServerException", prediction.error, status=500)
    return prediction


def _sentiment(prediction: Any) -> dict[str, Any]:
    p = prediction.probabilities
    return {
        "Sentiment": "MIXED" if is_mixed(prediction) else prediction.sentiment.upper(),
        "SentimentScore": {
            "Positive": float(p["positive"]),
            "Negative": float(p["negative"]),
            "Neutral": float(p["neutral"]),
            "Mixed": mixed_score(prediction),
        },
    }


def _raise(problem: tuple[str, str] | None) -> None:
    if problem is not None:
        raise AwsError(*problem)


async def detect_sentiment(state, handle: LoadedModel, params) -> dict[str, Any]:
    lang = _language(params.LanguageCode)
    _raise(_text_problem(params.Text, MAX_TEXT_BYTES, state.settings.max_text_chars))
    hint, _ = resolve_language(lang, params.Text)
    (prediction,) = await cloud_predict(state, handle, [params.Text], [hint])
    return _sentiment(_ok(prediction))


async def batch_detect_sentiment(state, handle: LoadedModel, params) -> dict[str, Any]:
    _check_batch(params.TextList, state.settings.max_items)
    lang = _language(params.LanguageCode)
    errors, accepted = _split_batch(params.TextList, MAX_TEXT_BYTES, state.settings.max_text_chars)
    texts = [params.TextList[i] for i in accepted]
    predictions = await cloud_predict(
        state, handle, texts, [resolve_language(lang, t)[0] for t in texts]
    )
    results = []
    for i, p in zip(accepted, predictions, strict=True):
        if isinstance(p, Failed):  # the model failed on this text alone
            errors.append({"Index": i, "ErrorCode": _BATCH_CODES["InternalServerException"],
                           "ErrorMessage": p.error})  # fmt: skip
        else:
            results.append({"Index": i, **_sentiment(p)})
    errors.sort(key=lambda e: e["Index"])
    return {"ResultList": results, "ErrorList": errors}


def _split_batch(texts: list[str], max_bytes: int, max_chars: int):
    errors, accepted = [], []
    for i, text in enumerate(texts):
        problem = _text_problem(text, max_bytes, max_chars)
        if problem is None:
            accepted.append(i)
        else:
            errors.append(
                {"Index": i, "ErrorCode": _BATCH_CODES[problem[0]], "ErrorMessage": problem[1]}
            )
    return errors, accepted


def _dominant(lang: str) -> list[dict[str, Any]]:
    # cxnlp's identifier decides without a probability: 1 for a language it names.
    if lang in LANGS:
        return [{"LanguageCode": lang, "Score": 1.0}]
    return [{"LanguageCode": UNDETERMINED, "Score": 0.0}]


async def detect_dominant_language(state, handle: LoadedModel, params) -> dict[str, Any]:
    _raise(_text_problem(params.Text, MAX_LANGUAGE_TEXT_BYTES, state.settings.max_text_chars))
    lang = await run_in_threadpool(detect_language, params.Text)
    return {"Languages": _dominant(lang)}


async def batch_detect_dominant_language(state, handle: LoadedModel, params) -> dict[str, Any]:
    _check_batch(params.TextList, state.settings.max_items)
    errors, accepted = _split_batch(params.TextList, MAX_TEXT_BYTES, state.settings.max_text_chars)
    langs = await run_in_threadpool(lambda: [detect_language(params.TextList[i]) for i in accepted])
    results = [
        {"Index": i, "Languages": _dominant(lang)} for i, lang in zip(accepted, langs, strict=True)
    ]
    return {"ResultList": results, "ErrorList": errors}


async def detect_targeted_sentiment(state, handle: LoadedModel, params) -> dict[str, Any]:
    lang = _language(params.LanguageCode)
    _raise(_text_problem(params.Text, MAX_TEXT_BYTES, state.settings.max_text_chars))
    hint, _ = resolve_language(lang, params.Text)
    (prediction,) = await cloud_predict(state, handle, [params.Text], [hint])
    prediction = _ok(prediction)
    # Each topic with evidence is an entity of one mention: the evidence span, the topic's
    # polarity and presence score, and the probabilities of that clause on its own.
    ops = opinions(prediction, params.Text)
    lang = prediction.lang if prediction.lang in LANGS else hint
    clauses = await cloud_predict(
        state, handle, [params.Text[o["start"] : o["end"]] for o in ops], [lang] * len(ops)
    )
    entities = []
    for opinion, clause in zip(ops, clauses, strict=True):
        clause = _ok(clause)
        mention = {
            "Score": opinion["score"],
            "GroupScore": 1.0,
            "Text": params.Text[opinion["start"] : opinion["end"]],
            "Type": "OTHER",
            "MentionSentiment": {
                "Sentiment": str(opinion["polarity"]).upper(),
                "SentimentScore": _sentiment(clause)["SentimentScore"],
            },
            "BeginOffset": opinion["start"],
            "EndOffset": opinion["end"],
        }
        entities.append({"DescriptiveMentionIndex": [0], "Mentions": [mention]})
    return {"Entities": entities}


_HANDLERS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "DetectSentiment": detect_sentiment,
    "BatchDetectSentiment": batch_detect_sentiment,
    "DetectDominantLanguage": detect_dominant_language,
    "BatchDetectDominantLanguage": batch_detect_dominant_language,
    "DetectTargetedSentiment": detect_targeted_sentiment,
}
