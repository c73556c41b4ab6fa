"""Azure AI Language's sentiment and language detection, on the served model: `POST
/language/:analyze-text` (api-versions 2022-05-01 and 2023-04-01) and the Text Analytics v3.0 /
v3.1 routes, so that `azure-ai-textanalytics` clients work unchanged but for the endpoint and key.

Errors are Azure's: `{"error": {"code", "message", "innererror": {"code", "message"}}}` for a
whole request, and per document under `errors` (empty or too long text, unsupported language),
with Azure's codes (`InvalidDocument`, `InvalidDocumentBatch`, `UnsupportedLanguageCode`, ...).
The key is `Ocp-Apim-Subscription-Key` (or `Authorization: Bearer KEY`), one of the service's API
keys. Enabled by `CXNLP_AZURE_API=on`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cxnlp import detect_language
from cxnlp.io.isolate import Failed
from cxnlp.io.validate import text_problem
from cxnlp.labels import LANGS, SENTIMENTS
from service.cloud import (
    STRING_INDEX_TYPES,
    CloudError,
    CloudRoute,
    ModelT,
    http_message,
    is_mixed,
    opinions,
    primary_language,
    resolve_language,
    split_sentences,
    text_elements,
    to_index_units,
    unsupported_language,
    validated,
)
from service.cloud import (
    predict as cloud_predict,
)
from service.deps import CurrentModel, State, key_matches
from service.errors import field_path
from service.loading import LoadedModel
from service.schemas_azure import (
    LANGUAGE_KIND,
    SENTIMENT_KIND,
    AnalyzeTextRequest,
    ErrorResponse,
    LanguageBatchInput,
    LanguageDocument,
    LanguageParameters,
    LanguageResults,
    LanguageTaskResult,
    MultiLanguageBatchInput,
    SentimentParameters,
    SentimentResults,
    SentimentTaskResult,
    TextDocument,
)

API_VERSIONS = ("2022-05-01", "2023-04-01")
# Azure's synchronous limits: documents per request, text elements per document.
MAX_DOCUMENTS = {SENTIMENT_KIND: 10, LANGUAGE_KIND: 1000}
MAX_TEXT_ELEMENTS = 5120
CHARS_PER_TRANSACTION = 1000
LANGUAGE_NAMES = {"fa": "Persian", "ar": "Arabic", "en": "English"}
UNKNOWN_LANGUAGE = "(Unknown)"

MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
INVALID_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


class AzureError(CloudError):
    """An error answered in Azure's shape, with its HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner_code: str | None = None,
        inner_message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers
        self.body = _error(code, message, inner_code, inner_message)

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.body}, status_code=self.status, headers=self.headers)


def _error(
    code: str, message: str, inner_code: str | None = None, inner_message: str | None = None
):
    body: dict[str, Any] = {"code": code, "message": message}
    if inner_code is not None:
        body["innererror"] = {"code": inner_code, "message": inner_message or message}
    return body


def _invalid_request(inner_code: str, message: str) -> AzureError:
    return AzureError(400, "InvalidRequest", "Invalid Request.", inner_code, message)


def _from_validation(errors: list[dict[str, Any]]) -> AzureError:
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return _invalid_request("InvalidRequestBodyFormat", "Request body must be valid JSON.")
    where = field_path(first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return _invalid_request("InvalidRequestBodyFormat", f"Invalid request body: {where}: {message}")


def _from_http(exc: HTTPException) -> AzureError:
    message = http_message(exc)
    if exc.status_code == 413:
        return AzureError(413, "InvalidRequest", message, "InvalidDocumentBatch", message)
    if exc.status_code == 503:
        return AzureError(503, "ServiceUnavailable", message, headers=exc.headers)
    if exc.status_code == 400:  # a body FastAPI could not decode
        return _invalid_request("InvalidRequestBodyFormat", f"Request body is invalid: {message}.")
    return AzureError(exc.status_code, "InvalidRequest", message, headers=exc.headers)


class AzureRoute(CloudRoute):
    """A route whose every failure (validation, auth, limits, no model) is Azure-shaped."""

    @staticmethod
    def translate(exc: Exception) -> AzureError | None:
        if isinstance(exc, RequestValidationError):
            return _from_validation(list(exc.errors()))
        if isinstance(exc, HTTPException):
            return _from_http(exc)
        return None

    @staticmethod
    def busy(reason: str, retry: str) -> AzureError:
        return AzureError(
            429,
            "TooManyRequests",
            f"The service is busy ({reason}); retry after {retry} s.",
            headers={"Retry-After": retry},
        )

    @staticmethod
    def internal() -> AzureError:
        return AzureError(
            500, "InternalServerError", "internal server error; the service log has the details"
        )


def require_subscription_key(request: Request, state: State) -> None:
    """`Ocp-Apim-Subscription-Key` (or a bearer token) must be one of the service's API keys."""
    if not state.settings.auth:
        return
    presented = request.headers.get("ocp-apim-subscription-key")
    if presented is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    if presented is None:
        raise AzureError(401, "401", MISSING_KEY)
    if not key_matches(presented, state.api_keys + state.admin_keys):
        raise AzureError(401, "401", INVALID_KEY)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "invalid request (Azure error shape)"},
    401: {"model": ErrorResponse, "description": "missing or invalid subscription key"},
    429: {"model": ErrorResponse, "description": "the service is busy; retry after Retry-After"},
}
router = APIRouter(
    tags=["azure"],
    route_class=AzureRoute,
    dependencies=[Depends(require_subscription_key)],
    responses=_ERRORS,
)


ShowStats = Annotated[bool, Query(alias="showStats")]


@dataclass(frozen=True)
class V3Query:
    """What both Text Analytics v3 routes take: the version in the path (v3.0 or v3.1, else a
    404), `model-version` and `showStats`."""

    version: str
    model_version: str | None
    show_stats: bool


def v3_query(
    version: str,
    model_version: Annotated[str | None, Query(alias="model-version")] = None,
    show_stats: ShowStats = False,
) -> V3Query:
    if version not in ("v3.0", "v3.1"):
        raise AzureError(404, "404", "Resource not found")
    return V3Query(version, model_version, show_stats)


V3 = Annotated[V3Query, Depends(v3_query)]


# --- the routes --------------------------------------------------------------------------------


@router.post(
    "/language/:analyze-text",
    response_model=SentimentTaskResult | LanguageTaskResult,
    response_model_exclude_none=True,
    summary="Azure AI Language: analyze text (SentimentAnalysis, LanguageDetection)",
)
async def analyze_text(
    body: AnalyzeTextRequest,
    state: State,
    handle: CurrentModel,
    api_version: Annotated[str, Query(alias="api-version")],
    show_stats: ShowStats = False,
) -> SentimentTaskResult | LanguageTaskResult:
    """Azure AI Language's synchronous `analyze-text` for the kinds `SentimentAnalysis` and
    `LanguageDetection` (api-versions 2022-05-01 and 2023-04-01)."""
    if api_version not in API_VERSIONS:
        raise _invalid_request(
            "InvalidParameterValue",
            f"The api-version {api_version!r} is not supported; use one of "
            f"{', '.join(API_VERSIONS)}.",
        )
    parameters = body.parameters or {}
    if body.kind == SENTIMENT_KIND:
        options = _parse(SentimentParameters, parameters, "parameters")
        docs = [_parse(TextDocument, d, f"analysisInput.documents[{n}]") for n, d in _docs(body)]
        results = await _sentiment(state, handle, docs, options, show_stats)
        return SentimentTaskResult(results=results)
    if body.kind == LANGUAGE_KIND:
        language_options = _parse(LanguageParameters, parameters, "parameters")
        docs = [
            _parse(LanguageDocument, d, f"analysisInput.documents[{n}]") for n, d in _docs(body)
        ]
        results = await _languages(state, handle, docs, language_options.modelVersion, show_stats)
        return LanguageTaskResult(results=results)
    raise _invalid_request(
        "InvalidParameterValue",
        f"The kind {body.kind!r} is not supported by this service; it answers "
        f"{SENTIMENT_KIND} and {LANGUAGE_KIND}.",
    )


@router.post(
    "/text/analytics/{version}/sentiment",
    response_model=SentimentResults,
    response_model_exclude_none=True,
    summary="Azure Text Analytics v3.0 / v3.1: sentiment",
)
async def sentiment_v3(
    v3: V3,
    body: MultiLanguageBatchInput,
    state: State,
    handle: CurrentModel,
    opinion_mining: Annotated[bool, Query(alias="opinionMining")] = False,
    string_index_type: Annotated[str, Query(alias="stringIndexType")] = "TextElements_v8",
) -> SentimentResults:
    """The Text Analytics v3.1 (and v3.0) sentiment route that SDKs before 5.2 call."""
    options = SentimentParameters(
        modelVersion=v3.model_version,
        opinionMining=opinion_mining and v3.version == "v3.1",
        stringIndexType=string_index_type,
    )
    return await _sentiment(state, handle, body.documents, options, v3.show_stats)


@router.post(
    "/text/analytics/{version}/languages",
    response_model=LanguageResults,
    response_model_exclude_none=True,
    summary="Azure Text Analytics v3.0 / v3.1: language detection",
)
async def languages_v3(
    v3: V3, body: LanguageBatchInput, state: State, handle: CurrentModel
) -> LanguageResults:
    """The Text Analytics v3.1 (and v3.0) language detection route."""
    return await _languages(state, handle, body.documents, v3.model_version, v3.show_stats)


# --- the work ----------------------------------------------------------------------------------


def _docs(body: AnalyzeTextRequest) -> list[tuple[int, dict[str, Any]]]:
    return list(enumerate(body.analysisInput.documents))


def _parse(model: type[ModelT], value: Any, where: str) -> ModelT:
    def invalid(errors: list[dict[str, Any]]) -> AzureError:
        field = field_path(errors[0].get("loc", ()))
        return _invalid_request(
            "InvalidRequestBodyFormat", f"Invalid request body: {where}.{field}: {errors[0]['msg']}"
        )

    return validated(model, value, invalid)


def _check_batch(docs: list[Any], kind: str, max_items: int, model_version: str | None, handle):
    """The request-level errors Azure answers with a 400 for the whole request."""
    if not docs:
        raise _invalid_request("MissingInputDocuments", "Missing input documents.")
    limit = min(MAX_DOCUMENTS[kind], max_items)
    if len(docs) > limit:
        message = f"Batch request contains too many records. Max {limit} records are permitted."
        raise AzureError(400, "InvalidArgument", message, "InvalidDocumentBatch", message)
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise AzureError(
            400,
            "InvalidArgument",
            "Invalid document in request.",
            "InvalidDocument",
            "Request contains duplicated Ids. Make sure each document has a unique Id.",
        )
    if model_version not in (None, "", "latest", handle.name):
        raise AzureError(
            400,
            "InvalidArgument",
            "Invalid model version.",
            "ModelVersionIncorrect",
            f"Invalid model version {model_version!r}: this service serves {handle.name!r} "
            "(or ask for 'latest').",
        )


def _document_problem(text: str, max_chars: int) -> str | None:
    """Why a document cannot be analysed, or None: the rule of every surface
    (`cxnlp.io.validate.text_problem`), in Azure's InvalidDocument messages where Azure has one,
    and Azure's own limit of text elements."""
    if len(text) > MAX_TEXT_ELEMENTS and text_elements(text) > MAX_TEXT_ELEMENTS:
        return (
            "A document within the request was too large to be processed. Limit document size "
            f"to: {MAX_TEXT_ELEMENTS} text elements. For additional details on the data "
            "limitations see https://aka.ms/text-analytics-data-limits"
        )
    problem = text_problem(text, max_chars)
    if problem is None:
        return None
    if problem.code == "empty":
        return "Document text is empty."
    if problem.code == "too_long":
        return (
            "A document within the request was too large to be processed. Limit document size "
            f"to: {max_chars} characters (CXNLP_MAX_TEXT_CHARS)."
        )
    return f"Invalid document: {problem.message}."


def _failed_document(doc_id: str, failed: Failed) -> dict[str, Any]:
    """A document the model failed on (alone: the others of the request have their results)."""
    return {"id": doc_id, "error": _error("InternalServerError", failed.error)}


def _document_error(doc_id: str, inner_code: str, message: str, outer: str) -> dict[str, Any]:
    return {"id": doc_id, "error": _error("InvalidArgument", outer, inner_code, message)}


def _statistics(text: str) -> dict[str, int]:
    count = text_elements(text)
    return {
        "charactersCount": count,
        "transactionsCount": max(1, math.ceil(count / CHARS_PER_TRANSACTION)),
    }


def _with_statistics(result: dict[str, Any], text: str, stats: bool) -> dict[str, Any]:
    """A document's result, with its `statistics` when the request asked for them."""
    return {**result, "statistics": _statistics(text)} if stats else result


def _answer(handle, docs: list[Any], errors: list[Any], documents: list[dict], stats: bool):
    """A request's answer: its documents, errors, the model's name and, when asked for, the
    request's statistics."""
    statistics = None
    if stats:
        statistics = {
            "documentsCount": len(docs),
            "validDocumentsCount": len(documents),
            "erroneousDocumentsCount": len(errors),
            "transactionsCount": sum(d["statistics"]["transactionsCount"] for d in documents),
        }
    return {
        "documents": documents,
        "errors": errors,
        "modelVersion": handle.name,
        "statistics": statistics,
    }


def _bad(prediction: Any) -> bool:
    return isinstance(prediction, Failed)


def _scores(prediction: Any) -> dict[str, float]:
    p = prediction.probabilities
    return {k: float(p[k]) for k in SENTIMENTS}


async def _sentiment(
    state, handle: LoadedModel, docs: list[TextDocument], options: SentimentParameters, stats: bool
) -> SentimentResults:
    _check_batch(docs, SENTIMENT_KIND, state.settings.max_items, options.modelVersion, handle)
    if options.stringIndexType not in STRING_INDEX_TYPES:
        raise _invalid_request(
            "InvalidParameterValue",
            f"Invalid stringIndexType {options.stringIndexType!r}; use one of "
            f"{', '.join(STRING_INDEX_TYPES)}.",
        )
    errors: list[dict[str, Any]] = []
    accepted: list[tuple[TextDocument, str | None, list[dict[str, str]]]] = []
    for doc in docs:
        problem = _document_problem(doc.text, state.settings.max_text_chars)
        if problem is not None:
            errors.append(
                _document_error(doc.id, "InvalidDocument", problem, "Invalid document in request.")
            )
            continue
        if unsupported_language(doc.language):
            errors.append(
                _document_error(
                    doc.id,
                    "UnsupportedLanguageCode",
                    f"Invalid language code {doc.language!r}. Supported languages: "
                    f"{','.join(sorted(LANGS))}.",
                    "Invalid Language Code.",
                )
            )
            continue
        hint, overruled = resolve_language(primary_language(doc.language), doc.text)
        warnings = [{"code": "LanguageOverruled", "message": overruled}] if overruled else []
        accepted.append((doc, hint, warnings))

    predictions = await cloud_predict(
        state, handle, [d.text for d, _, _ in accepted], [h for _, h, _ in accepted]
    )
    errors += [
        _failed_document(d.id, p)
        for (d, _, _), p in zip(accepted, predictions, strict=True)
        if _bad(p)
    ]
    kept = [(a, p) for a, p in zip(accepted, predictions, strict=True) if not _bad(p)]
    accepted, predictions = [a for a, _ in kept], [p for _, p in kept]
    # Sentences of documents with more than one, and (for opinion mining) the clauses that are
    # the evidence of a topic, classified in the document's language, in one more model call.
    spans = [split_sentences(d.text) for d, _, _ in accepted]
    found = [
        opinions(p, d.text) if options.opinionMining else []
        for (d, _, _), p in zip(accepted, predictions, strict=True)
    ]
    pending: list[tuple[str, str | None]] = []
    for (doc, hint, _), doc_spans, prediction, ops in zip(
        accepted, spans, predictions, found, strict=True
    ):
        lang = prediction.lang if prediction.lang in LANGS else hint
        if len(doc_spans) > 1:
            pending += [(doc.text[a:b], lang) for a, b in doc_spans]
        pending += [(doc.text[o["start"] : o["end"]], lang) for o in ops]
    extra = iter(
        await cloud_predict(state, handle, [t for t, _ in pending], [lang for _, lang in pending])
    )

    documents = []
    for (doc, _, warnings), doc_spans, prediction, ops in zip(
        accepted, spans, predictions, found, strict=True
    ):
        per_sentence = [next(extra) for _ in doc_spans] if len(doc_spans) > 1 else [prediction]
        per_opinion = [next(extra) for _ in ops]
        failed = next((p for p in per_sentence + per_opinion if _bad(p)), None)
        if failed is not None:  # a sentence or clause of it: the document fails alone
            errors.append(_failed_document(doc.id, failed))
            continue
        sentences = [
            _sentence(doc.text, span, sp, options.stringIndexType)
            for span, sp in zip(doc_spans, per_sentence, strict=True)
        ]
        if options.opinionMining:
            _add_opinions(doc.text, doc_spans, sentences, ops, per_opinion, options.stringIndexType)
        result: dict[str, Any] = {
            "id": doc.id,
            "sentiment": "mixed" if is_mixed(prediction) else prediction.sentiment,
            "confidenceScores": _scores(prediction),
            "sentences": sentences,
            "warnings": warnings,
        }
        documents.append(_with_statistics(result, doc.text, stats))
    return SentimentResults.model_validate(_answer(handle, docs, errors, documents, stats))


def _sentence(text: str, span: tuple[int, int], prediction: Any, index_type: str) -> dict:
    offset, length = to_index_units(text, span[0], span[1], index_type)
    return {
        "text": text[span[0] : span[1]],
        "sentiment": prediction.sentiment,
        "confidenceScores": _scores(prediction),
        "offset": offset,
        "length": length,
    }


def _add_opinions(
    text: str,
    spans: list[tuple[int, int]],
    sentences: list[dict],
    ops: list[dict[str, Any]],
    clause_predictions: list[Any],
    index_type: str,
) -> None:
    """Targets from the aspect evidence (`service.cloud.opinions`): each topic's evidence span,
    with the topic's polarity and its clause's probabilities, in the sentence holding its start.
    The evidence is a clause or cue, not a single opinion word, so there are no assessments."""
    for sentence in sentences:
        sentence["targets"], sentence["assessments"] = [], []
    for opinion, clause in zip(ops, clause_predictions, strict=True):
        start, end = opinion["start"], opinion["end"]
        s = next((i for i, (a, b) in enumerate(spans) if a <= start < b), len(spans) - 1)
        offset, length = to_index_units(text, start, end, index_type)
        sentences[s]["targets"].append(
            {
                "sentiment": opinion["polarity"],
                "confidenceScores": {
                    "positive": float(clause.probabilities["positive"]),
                    "negative": float(clause.probabilities["negative"]),
                },
                "offset": offset,
                "length": length,
                "text": text[start:end],
                "relations": [],
            }
        )


async def _languages(
    state, handle: LoadedModel, docs: list[LanguageDocument], model_version: str | None, stats
) -> LanguageResults:
    _check_batch(docs, LANGUAGE_KIND, state.settings.max_items, model_version, handle)
    errors, accepted = [], []
    for doc in docs:
        problem = _document_problem(doc.text, state.settings.max_text_chars)
        if problem is None:
            accepted.append(doc)
        else:
            errors.append(
                _document_error(doc.id, "InvalidDocument", problem, "Invalid document in request.")
            )
    langs = await run_in_threadpool(lambda: [detect_language(d.text) for d in accepted])
    documents = []
    for doc, lang in zip(accepted, langs, strict=True):
        known = lang in LANGUAGE_NAMES
        result: dict[str, Any] = {
            "id": doc.id,
            # cxnlp's identifier decides without a probability: 1 for a language it names.
            "detectedLanguage": {
                "name": LANGUAGE_NAMES[lang] if known else UNKNOWN_LANGUAGE,
                "iso6391Name": lang if known else UNKNOWN_LANGUAGE,
                "confidenceScore": 1.0 if known else 0.0,
            },
            "warnings": [],
        }
        documents.append(_with_statistics(result, doc.text, stats))
    return LanguageResults.model_validate(_answer(handle, docs, errors, documents, stats))
