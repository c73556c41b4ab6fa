"""The feedback store inside the service: opened (and migrated) at startup when
`CXNLP_DATABASE_URL` is set, else on first use (the default SQLite file); the dashboard's login
cookie; storing classified items and raising alerts after each write."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cxnlp.feedback.db import FeedbackStore, open_store
from cxnlp.io.validate import name_problem
from service.deps import ServiceState, _presented_key, get_state, key_matches
from service.errors import ApiError, checked_name, value_error
from service.sessions import key_hash

logger = logging.getLogger(__name__)
T = TypeVar("T")

COOKIE = "cxnlp_session"


class StoreHolder:
    """Opens the store once, on first use, from any thread."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._store: FeedbackStore | None = None
        self._lock = threading.Lock()

    def get(self) -> FeedbackStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    try:
                        self._store = open_store(self.url)
                    except Exception as exc:  # noqa: BLE001 - any driver error: the same answer
                        logger.exception("feedback store cannot be opened")
                        raise ApiError(
                            503, f"the feedback store cannot be opened: {type(exc).__name__}"
                        ) from None
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def store_unavailable(exc: Exception) -> ApiError:
    """The store did not answer (a driver or connection error): a 503 the client may retry."""
    return ApiError(
        503,
        f"the feedback store did not answer: {type(exc).__name__}",
        headers={"Retry-After": "1"},
    )


async def in_store(
    store: FeedbackStore,
    work: Callable[[Any], T],
    *,
    write: bool = False,
    conflict: str | None = None,
) -> T:
    """`work(connection)` in a worker thread, in one transaction when `write`. The store not
    answering is a 503 (`store_unavailable`); with `conflict`, a constraint broken by another
    writer meanwhile (IntegrityError) is a 409 with that message. `work`'s own errors pass."""

    def run() -> T:
        connect = store.engine.begin if write else store.engine.connect
        with connect() as connection:
            return work(connection)

    try:
        return await run_in_threadpool(run)
    except SQLAlchemyError as exc:
        if conflict is not None and isinstance(exc, IntegrityError):
            raise ApiError(409, conflict) from None
        raise store_unavailable(exc) from None


def get_store(request: Request) -> FeedbackStore:
    return request.app.state.feedback.get()


Store = Annotated[FeedbackStore, Depends(get_store)]
# How many rows of a listing (items, cases, a customer's history) one answer holds.
Limit = Annotated[int, Query(ge=1, le=500)]


@dataclass(frozen=True)
class PageQuery:
    """A page of a listing: `limit` rows from row `offset`."""

    limit: int
    offset: int


def page_query(limit: Limit = 50, offset: Annotated[int, Query(ge=0)] = 0) -> PageQuery:
    return PageQuery(limit, offset)


Page = Annotated[PageQuery, Depends(page_query)]


def has_access(request: Request, state: ServiceState) -> bool:
    """A valid key in the headers, or the cookie of a live dashboard session (`service.sessions`)
    opened with a key still configured; always true with auth off."""
    if not state.settings.auth:
        return True
    presented = _presented_key(request)
    if presented is not None:
        return key_matches(presented, state.api_keys + state.admin_keys)
    cookie = request.cookies.get(COOKIE)
    if cookie is None or state.sessions is None:
        return False
    opened_with = state.sessions.key_of(cookie)  # a live server-side session, or None
    valid = [key_hash(k) for k in state.api_keys + state.admin_keys]
    return opened_with is not None and key_matches(opened_with, [v.encode() for v in valid])


def require_reader(request: Request, state: Annotated[ServiceState, Depends(get_state)]) -> None:
    """The stats API's auth: an API key (header) or the dashboard's login cookie."""
    if not has_access(request, state):
        raise ApiError(
            401,
            "missing or invalid API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY', "
            "or log in at /dashboard/login",
            headers={"WWW-Authenticate": 'Bearer realm="cxnlp"'},
        )


Reader = Depends(require_reader)


SCORE_FIELD = "score"


def score_column(score_kind: str | None, score_scale: Sequence[int] | None) -> str | None:
    """How the store reads a request's `score` fields: `KIND:LOW-HIGH=score` (a declared
    scale), `KIND=score`, or None without a kind. ValueError for a scale the kind cannot have.

    >>> score_column("csat", (1, 7)), score_column("nps", None), score_column(None, None)
    ('csat:1-7=score', 'nps=score', None)
    """
    from cxnlp.report.scores import parse_score_spec

    if score_kind is None:
        if score_scale is not None:
            raise ValueError("score_scale needs score_kind (the kind of score it is the scale of)")
        return None
    scale = f":{score_scale[0]}-{score_scale[1]}" if score_scale is not None else ""
    column = f"{score_kind}{scale}={SCORE_FIELD}"
    parse_score_spec(column)  # the scale checks of `cxnlp report`
    return column


def store_items(
    store: FeedbackStore,
    rows: Sequence[dict[str, Any]],
    *,
    dataset: str,
    score_kind: str | None,
    model_name: str | None,
    model_version: str | None = None,
    score_scale: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Classified request items into the store (one transaction); their `score` fields read as
    `score_kind` on `score_scale` (default the kind's usual scale)."""
    from cxnlp.feedback.ingest import ingest_frame
    from cxnlp.feedback.records import frame_from_items

    frame = frame_from_items(rows)
    score_col = score_column(score_kind, score_scale) if SCORE_FIELD in frame.columns else None
    stats = ingest_frame(
        frame,
        dataset=dataset,
        store=store,
        score_col=score_col,
        model_name=model_name,
        model_version=model_version,
    )
    return stats.to_dict()


def raise_alerts(store: FeedbackStore, dataset: str, webhook: str | None, period: str) -> None:
    from cxnlp.feedback.alerts import after_ingest

    after_ingest(store, dataset, webhook, period=period)


def store_job(holder: StoreHolder, job: Any, settings: Any) -> dict[str, Any]:
    """A finished job's result file into the store (the job runner's `store_result`)."""
    from cxnlp.feedback.ingest import ingest_file

    store = holder.get()
    stats = ingest_file(
        job.output_path,
        dataset=job.dataset,
        store=store,
        text_col=job.text_col,
        id_col=job.id_col,
        date_col=job.date_col,
        score_col=job.score_col,
        score_kind=job.score_kind,
        model_name=job.model,
        model_version=job.model_version,
    )
    raise_alerts(store, job.dataset, settings.alert_webhook, settings.alert_period)
    return stats.to_dict()


def check_storable(body: Any) -> None:
    """422 before any work when an item to store has no id (its key in the store)."""
    from service.errors import field_error

    checked_name(body.dataset or "", ("body", "dataset"), "the dataset name")
    try:
        score_column(body.score_kind, body.score_scale)
    except ValueError as exc:
        raise value_error(("body", "score_scale"), exc) from None
    unstorable = [
        (n, problem)
        for n, item in enumerate(body.items)
        if item.id is not None and (problem := name_problem(str(item.id))) is not None
    ]
    if unstorable:
        n, problem = unstorable[0]
        raise ApiError(
            422,
            f"invalid request: items[{n}].id {problem}; an id stored in a dataset cannot hold it",
            [
                field_error(("body", "items", n, "id"), f"the id {p}", "value_error")
                for n, p in unstorable[:20]
            ],  # fmt: skip
        )
    missing = [n for n, item in enumerate(body.items) if item.id is None]
    if missing:
        raise ApiError(
            422,
            f"invalid request: items[{missing[0]}].id: items stored in a dataset need an id "
            f"({len(missing)} item(s) have none)",
            [
                field_error(("body", "items", n, "id"), "an id is needed", "missing")
                for n in missing[:20]
            ],
        )


async def store_results(
    request: Request,
    state: ServiceState,
    handle: Any,
    body: Any,
    results: Sequence[Any],
    dataset: str,
    background: Any,
) -> dict[str, Any]:
    """/v1/classify's items with their results into the store; alerts are raised afterwards."""
    from cxnlp.feedback.records import model_identity

    rows = []
    for item, result in zip(body.items, results, strict=True):
        row = {**(item.model_extra or {}), "id": item.id, "text": item.text}
        row.update(result.model_dump(exclude={"id"}))
        rows.append(row)
    _, version = model_identity(handle.model)
    holder = request.app.state.feedback

    def write() -> dict[str, Any]:
        store = holder.get()
        return store_items(
            store,
            rows,
            dataset=dataset,
            score_kind=body.score_kind,
            score_scale=body.score_scale,
            model_name=handle.name,
            model_version=version,
        )

    try:
        stored = await run_in_threadpool(write)
    except ValueError as exc:
        raise ApiError(422, f"invalid request: {exc}") from None
    except SQLAlchemyError as exc:
        logger.exception("storing %d items failed", len(rows))
        raise ApiError(
            503,
            f"the items were classified but could not be stored ({type(exc).__name__}); nothing "
            "was stored: retry the request",
            headers={"Retry-After": str(state.settings.retry_after_s)},
        ) from None
    settings = state.settings
    background.add_task(
        raise_alerts, holder.get(), dataset, settings.alert_webhook, settings.alert_period
    )
    return stored
