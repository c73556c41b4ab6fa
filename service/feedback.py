"""The feedback store inside the service: opened (and migrated) at startup when
`CXNLP_DATABASE_URL` is set, else on first use (the default SQLite file); the dashboard's login
cookie; storing classified items and raising alerts after each write."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request

from cxnlp.feedback.db import FeedbackStore, open_store
from service.deps import ServiceState, _presented_key, get_state, key_matches
from service.errors import ApiError

logger = logging.getLogger(__name__)

COOKIE = "cxnlp_session"
_COOKIE_MESSAGE = b"cxnlp-dashboard-session-v1"


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


def get_store(request: Request) -> FeedbackStore:
    return request.app.state.feedback.get()


Store = Annotated[FeedbackStore, Depends(get_store)]


def session_token(key: str) -> str:
    """What the login cookie holds for an API key: an HMAC of a fixed message under the key, so
    that the cookie never carries the key itself and is the same in every worker."""
    return hmac.new(key.encode("utf-8"), _COOKIE_MESSAGE, hashlib.sha256).hexdigest()


def _valid_tokens(state: ServiceState) -> list[bytes]:
    return [session_token(k.decode("utf-8")).encode() for k in state.api_keys + state.admin_keys]


def has_access(request: Request, state: ServiceState) -> bool:
    """A valid key in the headers, or a valid dashboard cookie; always true with auth off."""
    if not state.settings.auth:
        return True
    presented = _presented_key(request)
    if presented is not None:
        return key_matches(presented, state.api_keys + state.admin_keys)
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and key_matches(cookie, _valid_tokens(state))


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


def store_items(
    store: FeedbackStore,
    rows: Sequence[dict[str, Any]],
    *,
    dataset: str,
    score_kind: str | None,
    model_name: str | None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Classified request items into the store (one transaction)."""
    from cxnlp.feedback.ingest import ingest_frame
    from cxnlp.feedback.records import frame_from_items

    frame = frame_from_items(rows)
    score_col = "score" if score_kind and "score" in frame.columns else None
    stats = ingest_frame(
        frame,
        dataset=dataset,
        store=store,
        score_col=score_col,
        score_kind=score_kind if score_col else None,
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
    )
    raise_alerts(store, job.dataset, settings.alert_webhook, settings.alert_period)
    return stats.to_dict()


def check_storable(body: Any) -> None:
    """422 before any work when an item to store has no id (its key in the store)."""
    from service.errors import field_error

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
    from fastapi.concurrency import run_in_threadpool
    from sqlalchemy.exc import SQLAlchemyError

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
