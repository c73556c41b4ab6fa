"""POST /v1/classify and POST /v1/analyze: texts in, predictions (and a rollup) out."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool

from cxnlp.io.batch import classify_frame
from cxnlp.io.isolate import Failed
from cxnlp.labels import RESULT_COLUMNS, SENTIMENTS, decode_topics, probability_column
from cxnlp.report.scores import score_specs
from cxnlp.report.summary import summarize
from service.batcher import QueueFull
from service.deps import Authorized, State, pick_model
from service.errors import ApiError, field_error, invalid_fields, value_error
from service.feedback import check_storable, store_results
from service.items import item_id, prepare, result_fields
from service.limits import check_items
from service.schemas import (
    AnalyzeRequest,
    AnalyzeResponse,
    ClassifyRequest,
    ClassifyResponse,
    ItemResult,
)

logger = logging.getLogger(__name__)

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
    request: Request,
    background: BackgroundTasks,
) -> ClassifyResponse:
    """Sentiment, calibrated probabilities, confidence, language and topics per item; an item
    that cannot be classified (empty, invalid Unicode, too long) gets an `error` instead. With
    `dataset` (or `store: true`) the items are also stored in the feedback store, in one
    transaction (all or none). `model` names an adapter to classify with (422 for an unknown
    one); absent, the default model answers."""
    handle = pick_model(state, body.model)
    check_items(body.items, state.settings.max_items)
    dataset = body.dataset or ("api" if body.store else None)
    if dataset is not None:
        check_storable(body)
    prepared = [prepare(i.text, state.settings.max_text_chars, body.truncate) for i in body.items]
    todo = [n for n, p in enumerate(prepared) if p.text is not None]
    texts = [prepared[n].text for n in todo]
    langs = [body.items[n].lang for n in todo]
    results: dict[int, dict | None] = {}
    errors: dict[int, str] = {}
    if todo:
        try:
            predictions = await state.batcher.predict(handle, texts, langs)
        except QueueFull as exc:
            raise _busy(state, exc) from None
        for n, p in zip(todo, predictions, strict=True):
            if isinstance(p, Failed):  # the model failed on this text alone
                errors[n] = p.error
            else:
                results[n] = p.to_dict()
    items = [
        ItemResult(
            id=item_id(item.id, n),
            **result_fields(results.get(n)),
            error=prepared[n].error or errors.get(n),
            truncated=prepared[n].truncated,
        )
        for n, item in enumerate(body.items)
    ]
    stored = None
    if dataset is not None:
        stored = await store_results(request, state, handle, body, items, dataset, background)
    return ClassifyResponse(model=handle.name, items=items, stored=stored)


@router.post("/analyze", response_model=AnalyzeResponse)
async def analyze(body: AnalyzeRequest, state: State) -> AnalyzeResponse:
    """The classified items plus the rollup of `cxnlp.report.summary.summarize` over them, grouped by
    `group_by` fields the items carry; `model` as for /v1/classify."""
    handle = pick_model(state, body.model)
    check_items(body.items, state.settings.max_items)
    prepared = [prepare(i.text, state.settings.max_text_chars, body.truncate) for i in body.items]
    frame = _frame(body, [p.text for p in prepared])
    try:
        # The batch code of `cxnlp classify`, run in the batcher's thread (same queue and limits).
        labeled = await state.batcher.call(
            handle,
            lambda model: classify_frame(model, frame, lang_col=LANG_HINT_COL),
            size=len(frame),
        )
        labeled = labeled.drop(columns=[LANG_HINT_COL], errors="ignore")
        # The items refused before the model say why (classify_frame saw them as missing text).
        labeled["error"] = [p.error or e for p, e in zip(prepared, labeled["error"], strict=True)]
        labeled[TEXT_COL] = [i.text for i in body.items]
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
            # The dev-matrix ACC only on request: it can be worse than raw on a real channel.
            confusion=handle.confusion if body.dev_acc else None,
            labeled=labeled if body.gold_col else None,
            gold_col=body.gold_col or "label",
        )
    except (KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ApiError(422, f"cannot summarise these items: {message}") from None
    items = _items(labeled, [p.truncated for p in prepared])
    return AnalyzeResponse(model=handle.name, items=items, summary=summary)


def _score_field(body: AnalyzeRequest) -> str | None:
    """The item field `score_col` names: itself, or the COLUMN of `KIND:LOW-HIGH=COLUMN`."""
    try:
        specs = score_specs(body.score_col, body.score_kind)
    except ValueError as exc:
        raise value_error(("body", "score_col"), exc) from None
    return specs[0].column if specs else None


def _frame(body: AnalyzeRequest, texts: list[str | None]) -> pd.DataFrame:
    rows = []
    for n, (item, text) in enumerate(zip(body.items, texts, strict=True)):
        row = {ID_COL: item_id(item.id, n), TEXT_COL: text}
        row.update(item.model_extra or {})
        if item.lang is not None:
            row[LANG_HINT_COL] = item.lang
        rows.append(row)
    frame = pd.DataFrame(rows)
    named = {
        "group_by": body.group_by,
        "date_col": [body.date_col],
        "score_col": [_score_field(body)],
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
        raise invalid_fields(errors)
    clashing = sorted(RESERVED & set(frame.columns))
    return frame.drop(columns=clashing)


def _urgency(row: dict[str, Any]) -> dict[str, Any] | None:
    """The urgency of a classified row, from its batch columns (cxnlp.labels.URGENCY_COLUMNS)."""
    level = row.get("urgency_level")
    if not isinstance(level, str):
        return None
    evidence = row.get("urgency_evidence")
    return {
        "score": float(row["urgency"]),
        "level": level,
        "evidence": json.loads(evidence) if isinstance(evidence, str) and evidence else [],
    }


def _items(labeled: pd.DataFrame, truncated: list[bool]) -> list[ItemResult]:
    items = []
    for row, cut in zip(labeled.to_dict(orient="records"), truncated, strict=True):
        ok = row["error"] is None or row["error"] != row["error"]  # None or NaN
        prediction = None
        if ok:
            prediction = {
                "sentiment": row["sentiment"],
                "probabilities": {k: row[probability_column(k)] for k in SENTIMENTS},
                "confidence": row["confidence"],
                "lang": row["lang"],
                "topics": decode_topics(row["topics"], row["sentiment"]) or [],
                "mixed": row.get("mixed"),
                "urgency": _urgency(row),
            }
        items.append(
            ItemResult(
                id=row[ID_COL],
                **result_fields(prediction),
                error=None if ok else row["error"],
                truncated=cut,
            )
        )
    return items
