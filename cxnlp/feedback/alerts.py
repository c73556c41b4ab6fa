"""Alerts raised by the store: after an ingest, the flagged rises of `queries.alerts` over a whole
dataset are recorded once each (unique on dataset, period, kind, column, value), and every alert
not yet delivered is POSTed as JSON to a webhook (`CXNLP_ALERT_WEBHOOK`). An alert is claimed
before its POST and released if the POST fails, so it is delivered once even with several
workers, and retried after the next ingest when the webhook was down."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sqlalchemy import select, update

from cxnlp.feedback import queries
from cxnlp.feedback.cases import CaseRules, escalate_overdue
from cxnlp.feedback.db import FeedbackStore
from cxnlp.feedback.models import FeedbackAlert
from cxnlp.feedback.writers import upsert

logger = logging.getLogger(__name__)

WEBHOOK_ENV = "CXNLP_ALERT_WEBHOOK"
_ALERTS = FeedbackAlert.__table__


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def record_alerts(
    store: FeedbackStore, dataset: str, period: str = "week", alpha: float = 0.05
) -> list[dict[str, Any]]:
    """Record the flagged alerts of `dataset`; returns those not recorded before."""
    with store.engine.begin() as connection:
        found = queries.alerts(
            connection, queries.StatsFilter(dataset=[dataset]), period=period, alpha=alpha
        )["flagged"]
        if not found:
            return []
        rows = [
            {
                "dataset": dataset,
                "period_kind": period,
                "period": a["period"],
                "kind": a["kind"],
                "column_name": a["column"] or "",
                "value": a["value"] or "",
                "payload": {**a, "dataset": dataset},
                "first_seen_at": _now(),
                "notified_at": None,
            }
            for a in found
        ]
        keys = ("dataset", "period_kind", "period", "kind", "column_name", "value")
        before = {
            tuple(r)
            for r in connection.execute(
                select(*(_ALERTS.c[k] for k in keys)).where(_ALERTS.c.dataset == dataset)
            )
        }
        stmt = upsert(connection, _ALERTS, keys, (), add=False)
        connection.execute(stmt, rows)
    new = [r["payload"] for r in rows if tuple(r[k] for k in keys) not in before]
    if new:
        logger.info("%d new alert(s) in %s", len(new), dataset)
    return new


WEBHOOK_SCHEMES = ("http", "https")


def check_webhook_url(url: str) -> str:
    """`url` when it is an http(s) URL with a host, else ValueError: a webhook never reads a
    local file (`file://`) or talks FTP."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in WEBHOOK_SCHEMES or not parts.hostname:
        raise ValueError(
            f"the alert webhook {url!r} is not an http:// or https:// URL with a host; "
            f"{WEBHOOK_ENV} takes e.g. https://hooks.example.com/cxnlp"
        )
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the alert goes to the configured host or nowhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect to {newurl} refused: set the final URL", headers, fp
        )


_OPENER = urllib.request.build_opener(_NoRedirects())


def post_json(url: str, payload: dict[str, Any], timeout: float = 5.0) -> None:
    """POST `payload` as JSON to an http(s) URL, following no redirect; raises OSError
    (urllib's errors) unless the answer is 2xx, ValueError for a URL that is not http(s)."""
    check_webhook_url(url)
    # default=str: a date in a payload is sent as text, never a TypeError that loses the alert.
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with _OPENER.open(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not 2xx", response.headers, None)


def notify(store: FeedbackStore, url: str | None = None, timeout: float = 5.0) -> int:
    """POST every undelivered alert to the webhook (`url`, else `$CXNLP_ALERT_WEBHOOK`); returns
    how many were delivered. Nothing happens without a webhook."""
    url = url or os.environ.get(WEBHOOK_ENV)
    if not url:
        return 0
    with store.engine.connect() as connection:
        pending = connection.execute(
            select(_ALERTS.c.id, _ALERTS.c.payload)
            .where(_ALERTS.c.notified_at.is_(None))
            .order_by(_ALERTS.c.id)
        ).all()
    delivered = 0
    for alert_id, payload in pending:
        with store.engine.begin() as connection:
            claimed = connection.execute(
                update(_ALERTS)
                .where(_ALERTS.c.id == alert_id, _ALERTS.c.notified_at.is_(None))
                .values(notified_at=_now())
            ).rowcount
        if not claimed:
            continue  # another worker took it
        try:
            post_json(url, {"alert": payload}, timeout)
        except Exception as exc:  # noqa: BLE001 - any failure: released, so it is sent later
            logger.warning("alert webhook %s failed (%s); retried after the next ingest", url, exc)
            with store.engine.begin() as connection:
                connection.execute(
                    update(_ALERTS).where(_ALERTS.c.id == alert_id).values(notified_at=None)
                )
            break
        delivered += 1
    return delivered


def after_ingest(
    store: FeedbackStore, dataset: str, url: str | None = None, period: str = "week"
) -> int:
    """Record the dataset's new alerts and deliver what is pending; never raises (an ingest
    has already succeeded), returns how many alerts were delivered."""
    try:
        record_alerts(store, dataset, period=period)
        return notify(store, url)
    except Exception:  # noqa: BLE001 - alerts must not turn a stored batch into an error
        logger.exception("alerts of %s could not be recorded or delivered", dataset)
        return 0


def escalate_and_notify(
    store: FeedbackStore,
    *,
    url: str | None = None,
    now: dt.datetime | None = None,
    rules: CaseRules | None = None,
) -> list[dict[str, Any]]:
    """`escalate_overdue` in its own transaction, then POST each escalation to the alert
    webhook (`url`, else `$CXNLP_ALERT_WEBHOOK`) as `{"case_escalated": case}`. A failed POST
    is logged; the escalation stays recorded."""
    with store.engine.begin() as connection:
        escalated = escalate_overdue(connection, now=now, rules=rules)
    url = url or os.environ.get(WEBHOOK_ENV)
    for case_row in escalated if url else ():
        try:
            post_json(url, {"case_escalated": case_row})
        except (OSError, ValueError) as exc:
            logger.warning("case webhook %s failed for case %s (%s)", url, case_row["id"], exc)
    return escalated
