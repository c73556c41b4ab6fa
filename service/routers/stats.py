"""GET /v1/stats*: the feedback store's numbers under one filter (the dashboard's JSON).

Every route takes the same filter parameters; list parameters repeat (`?lang=fa&lang=ar`), and
`dim=KEY:VALUE` filters on any other stored dimension. Auth: an API key, or the dashboard's
login cookie.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from cxnlp.feedback import queries
from cxnlp.feedback.db import FeedbackStore
from cxnlp.feedback.item_queries import EXPORT_COLUMNS, JSON_EXPORT_COLUMNS
from cxnlp.io.tables import escape_formula
from cxnlp.labels import Sentiment, StorePeriod
from cxnlp.report.stats import P_ADJUST_METHODS
from service.errors import ApiError, checked_name, field_error
from service.feedback import Page, Reader, Store, in_store, store_unavailable
from service.stats_schemas import (
    Alerts,
    ItemsPage,
    Options,
    StatsSummary,
    TopicBy,
    Topics,
    Trend,
)

router = APIRouter(prefix="/v1/stats", tags=["stats"], dependencies=[Reader])

ListParam = Annotated[list[str] | None, Query()]
PAdjust = Literal[tuple(P_ADJUST_METHODS)]  # the report's methods, by their plain names


def stats_filter(
    dataset: Annotated[list[str] | None, Query(description="dataset name(s); default all")] = None,
    start: Annotated[dt.date | None, Query(description="first day, e.g. 2026-09-01")] = None,
    end: Annotated[dt.date | None, Query(description="last day (inclusive)")] = None,
    lang: Annotated[list[str] | None, Query(description="fa, ar, en")] = None,
    channel: ListParam = None,
    product: ListParam = None,
    sentiment: Annotated[list[Sentiment] | None, Query()] = None,
    topic: Annotated[list[str] | None, Query(description="items mentioning any of them")] = None,
    dim: Annotated[
        list[str] | None,
        Query(description="another stored dimension, KEY:VALUE (e.g. touchpoint:checkout)"),
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="text search")] = None,
) -> queries.StatsFilter:
    dims: dict[str, list[str]] = {}
    for n, pair in enumerate(dim or []):
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise ApiError(
                422,
                f"invalid request: dim[{n}]: expected KEY:VALUE, got {pair!r}",
                [field_error(("query", "dim", n), "expected KEY:VALUE", "value_error")],
            )
        dims.setdefault(key.strip(), []).append(value.strip())
    try:
        return queries.StatsFilter(
            dataset=dataset or [],
            start=start,
            end=end,
            lang=lang or [],
            channel=channel or [],
            product=product or [],
            sentiment=list(sentiment or []),
            topic=topic or [],
            dims=dims,
            q=q.strip() if q and q.strip() else None,
        )
    except ValueError as exc:
        raise ApiError(422, f"invalid request: {exc}") from None


Filter = Annotated[queries.StatsFilter, Depends(stats_filter)]


async def _read(store: FeedbackStore, view: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await in_store(store, lambda connection: view(connection, *args, **kwargs))
    except ValueError as exc:
        raise ApiError(422, f"invalid request: {exc}") from None


@router.get("", response_model=StatsSummary)
async def stats(f: Filter, store: Store) -> Any:
    """Headline cards: volume, positive / neutral / negative shares with 95% Wilson intervals,
    net sentiment, positive:negative, mean probabilities, and NPS / CSAT / CES where items have
    scores."""
    return await _read(store, queries.summary, f)


@router.get("/trend", response_model=Trend)
async def trend(f: Filter, store: Store, period: StorePeriod = "week") -> Any:
    """The headline numbers per day, week (Monday to Sunday) or month, empty periods included."""
    return await _read(store, queries.trend, f, period)


@router.get("/topics", response_model=Topics)
async def topics(f: Filter, store: Store, min_mentions: Annotated[int, Query(ge=1)] = 5) -> Any:
    """Topics by volume and by negative share (of their mentions), with Wilson intervals."""
    return await _read(store, queries.topics, f, min_mentions)


@router.get("/topics/by", response_model=TopicBy)
async def topics_by(
    f: Filter,
    store: Store,
    column: Annotated[
        str, Query(min_length=1, description="lang, channel, product or a dimension")
    ] = "channel",
) -> Any:
    """Topic x channel (or another column): mentions, share of that value's items, negative
    share."""
    checked_name(column, ("query", "column"), "the column")
    return await _read(store, queries.topic_by, f, column)


@router.get("/items", response_model=ItemsPage)
async def items(
    f: Filter,
    store: Store,
    page_query: Page,
) -> Any:
    """The items under the filter, newest first (drill-down and search)."""
    page = await _read(store, queries.items, f, page_query.limit, page_query.offset)
    for item in page["items"]:
        item["created_at"] = item["created_at"].isoformat()
    return page


@router.get("/items.csv", response_class=StreamingResponse)
async def items_csv(f: Filter, store: Store) -> StreamingResponse:
    """Every item under the filter as CSV (UTF-8 with BOM, so that spreadsheets read Persian and
    Arabic right), one column per stored field; `topics`, `dimensions` and `urgency_evidence`
    are JSON cells. The file is made for a spreadsheet: a cell Excel would run as a formula (`=`,
    `+`, `-`, `@` first) gets a leading apostrophe (`cxnlp.io.tables.escape_formula`, the rule of
    every spreadsheet file cxnlp writes); the store keeps the exact text. The query runs before
    the answer starts, so a database error is a 503, never a file cut short."""

    def open_rows() -> tuple[Any, Iterator[dict], list[dict]]:
        connection = store.engine.connect()
        try:
            rows = queries.iter_items(connection, f)
            first = list(itertools.islice(rows, 1))
        except BaseException:
            connection.close()
            raise
        return connection, rows, first

    try:
        connection, rows, first = await run_in_threadpool(open_rows)
    except SQLAlchemyError as exc:
        raise store_unavailable(exc) from None

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(EXPORT_COLUMNS)
        try:
            for n, item in enumerate(itertools.chain(first, rows)):
                item["created_at"] = item["created_at"].isoformat()
                for key in JSON_EXPORT_COLUMNS:
                    if item[key] is not None:
                        item[key] = json.dumps(item[key], ensure_ascii=False)
                writer.writerow([escape_formula(item.get(c)) for c in EXPORT_COLUMNS])
                if n % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()
        finally:
            connection.close()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="feedback.csv"'},
    )


@router.get("/alerts", response_model=Alerts, response_model_exclude_none=False)
async def alerts(
    f: Filter,
    store: Store,
    period: StorePeriod = "week",
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
    history: Annotated[int, Query(ge=1, le=104)] = 12,
    all: Annotated[bool, Query(description="also every test that was not flagged")] = False,
    p_adjust: Annotated[
        PAdjust,
        Query(description="p-value adjustment within a family of tests"),
    ] = "holm",
) -> Any:
    """Significant rises, period over period, of the negative share (overall, per language and
    channel) and of each topic's share, with p-values (Holm-adjusted within a family) and
    Cohen's h."""
    result = await _read(store, queries.alerts, f, period, alpha, history, p_adjust=p_adjust)
    if not all:
        result["tests"] = None
    return result


@router.get("/options", response_model=Options)
async def options(f: Filter, store: Store) -> Any:
    """What the dashboard's filter menus offer (for the filter's datasets)."""
    return await _read(store, queries.options, f)
