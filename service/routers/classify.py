"""POST /v1/classify and POST /v1/analyze: texts in, predictions (and a rollup) out."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool

from cxnlp.io.batch import classify_frame
from cxnlp.labels import RESULT_COLUMNS, SENTIMENTS, decode_topics, probability_column
from cxnlp.report.summary import summarize
from service.batcher import QueueFull
from service.deps import Authorized, CurrentModel, State
from service.errors import ApiError, field_error
from service.feedback import check_storable, store_results
from service.limits import check_items
from service.schemas import (
    AnalyzedItem,
    AnalyzeRequest,
    AnalyzeResponse,
    ClassifyRequest,
    ClassifyResponse,
    ItemResult,
)

router = APIRouter(prefix="/v1", tags=["classify"], dependencies=[Authorized])

TEXT_COL, ID_COL = "text", "id"
# Item fields that would clash with a result column; an item's `lang` is its language hint.
RESERVED = frozenset(RESULT_COLUMNS) - {"lang"}


def _busy(state, exc: QueueFull) -> ApiError:
    return ApiError(
        503,
        f"the service is busy ({exc}); retry after {state.settings.retry_after_s} s",
        headers={"Retry-After": str(state.settings.retry_after_s)},
    )


# An item's own `lang`, handed to the model instead of language detection.
LANG_HINT_COL = "_lang_hint"


@router.post("/classify", response_model=ClassifyResponse)
async def classify(
    body: ClassifyRequest,
    state: State,
    handle: CurrentModel,
    request: Request,
    background: BackgroundTasks,
) -> ClassifyResponse:
    """Sentiment, calibrated probabilities, confidence, language and topics per item; with
    `dataset` (or `store: true`) the items are also stored in the feedback store, in one
    transaction (all or none)."""
    check_items(body.items, state.settings.max_items, state.settings.max_text_chars)
    dataset = body.dataset or ("api" if body.store else None)
    if dataset is not None:
        check_storable(body)
    try:
        predictions = await state.batcher.predict(
            handle, [i.text for i in body.items], [i.lang for i in body.items]
        )
    except QueueFull as exc:
        raise _busy(state, exc) from None
    items = [
        ItemResult(id=item.id if item.id is not None else n, **p.to_dict())
        for n, (item, p) in enumerate(zip(body.items, predictions, strict=True))
    ]
    stored = None
    if dataset is not None:
        stored = await store_results(request, state, handle, body, items, dataset, background)
    return ClassifyResponse(model=handle.name, items=items, stored=stored)


@router.post("/analyze", response_model=AnalyzeResponse)
async def analyze(body: AnalyzeRequest, state: State, handle: CurrentModel) -> AnalyzeResponse:
    """The classified items plus the rollup of `cxnlp.report.summary.summarize` over them, grouped by
    `group_by` fields the items carry."""
    check_items(body.items, state.settings.max_items, state.settings.max_text_chars)
    frame = _frame(body)
    try:
        # The batch code of `cxnlp classify`, run in the batcher's thread (same queue and limits).
        labeled = await state.batcher.call(
            handle,
            lambda model: classify_frame(model, frame, lang_col=LANG_HINT_COL),
            size=len(frame),
        )
        labeled = labeled.drop(columns=[LANG_HINT_COL], errors="ignore")
    except QueueFull as exc:
        raise _busy(state, exc) from None
    try:
        summary = await run_in_threadpool(
            summarize,
            labeled,
            group_by=tuple(body.group_by),
            date_col=body.date_col,
            period=body.period,
            score_col=body.score_col,
            score_kind=body.score_kind,
            confusion=handle.confusion,
            labeled=labeled if body.gold_col else None,
            gold_col=body.gold_col or "label",
        )
    except (KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ApiError(422, f"cannot summarise these items: {message}") from None
    return AnalyzeResponse(model=handle.name, items=_items(labeled), summary=summary)


def _frame(body: AnalyzeRequest) -> pd.DataFrame:
    rows = []
    for n, item in enumerate(body.items):
        row = {ID_COL: item.id if item.id is not None else n, TEXT_COL: item.text}
        row.update(item.model_extra or {})
        if item.lang is not None:
            row[LANG_HINT_COL] = item.lang
        rows.append(row)
    frame = pd.DataFrame(rows)
    named = {
        "group_by": body.group_by,
        "date_col": [body.date_col],
        "score_col": [body.score_col],
        "gold_col": [body.gold_col],
    }
    errors = []
    for param, columns in named.items():
        for k, column in enumerate(columns):
            if column is None:
                continue
            loc = ("body", param, k) if param == "group_by" else ("body", param)
            if column not in frame.columns or column in (ID_COL, TEXT_COL):
                errors.append(field_error(loc, f"no item has a field {column!r}", "unknown_field"))
            elif column in RESERVED:
                errors.append(field_error(loc, f"{column!r} is a result column", "reserved_field"))
    if errors:
        raise ApiError(422, f"invalid request: {errors[0]['field']}: {errors[0]['msg']}", errors)
    clashing = sorted(RESERVED & set(frame.columns))
    return frame.drop(columns=clashing)


def _items(labeled: pd.DataFrame) -> list[AnalyzedItem]:
    items = []
    for row in labeled.to_dict(orient="records"):
        ok = row["error"] is None or row["error"] != row["error"]  # None or NaN
        items.append(
            AnalyzedItem(
                id=row[ID_COL],
                sentiment=row["sentiment"] if ok else None,
                probabilities={k: row[probability_column(k)] for k in SENTIMENTS} if ok else None,
                confidence=row["confidence"] if ok else None,
                lang=row["lang"] if ok else None,
                topics=(decode_topics(row["topics"], row["sentiment"]) or []) if ok else [],
                mixed=bool(row["mixed"]) if ok and row.get("mixed") is not None else None,
                error=None if ok else row["error"],
            )
        )
    return items
