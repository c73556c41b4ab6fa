"""/v1/cases*: the follow-up queue of the feedback store (`cxnlp.feedback.cases`) and what the
follow-ups achieved (`cxnlp.feedback.recovery`).

The queue lists open cases first, overdue first among them, then by priority and deadline. Every
change (assign, comment, status) is recorded with its time; a closed status asks for a root
cause and whether the issue was resolved. The statuses, priorities and teams come from the case
rules file (`$CXNLP_CASE_RULES`, else the shipped defaults). Auth: an API key, or the
dashboard's login cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from cxnlp.feedback import alerts, cases
from cxnlp.feedback.cases import CaseError, CaseFilter, CaseRules
from cxnlp.feedback.db import FeedbackStore
from cxnlp.feedback.recovery import recovery_metrics
from service.case_schemas import (
    AssignBody,
    CaseDetail,
    CaseRulesView,
    CasesPage,
    CommentBody,
    CustomerHistory,
    Escalated,
    Recovery,
    StatusBody,
)
from service.deps import State
from service.errors import ApiError
from service.feedback import Limit, Page, Reader, Store, in_store, store_unavailable

router = APIRouter(prefix="/v1/cases", tags=["cases"], dependencies=[Reader])

EXPORT_PAGE = 2000
CaseId = Annotated[int, Path(ge=1)]
DatasetName = Annotated[str, Query(min_length=1, description="dataset name")]


def case_rules() -> CaseRules:
    """The rules of `$CXNLP_CASE_RULES`; the shipped defaults when unset or "off" (with "off" no
    case is opened, but existing ones still move through the default statuses). A rules file
    that cannot be read is the server's configuration error: 503 with the reason."""
    try:
        return cases.rules_from_env() or cases.load_case_rules()
    except (CaseError, OSError, yaml.YAMLError) as exc:
        raise ApiError(503, f"the case rules cannot be read: {exc}") from None


def case_filter(
    dataset: Annotated[str | None, Query(description="dataset name; default all")] = None,
    status: Annotated[list[str] | None, Query(description="any of these statuses")] = None,
    team: Annotated[str | None, Query()] = None,
    owner: Annotated[str | None, Query()] = None,
    priority: Annotated[str | None, Query(description="p1, p2, ... (the rules file's)")] = None,
    customer_id: Annotated[str | None, Query()] = None,
    open_only: Annotated[bool, Query(alias="open", description="only cases not closed")] = False,
    overdue: Annotated[bool, Query(description="only open cases past their deadline")] = False,
) -> CaseFilter:
    return CaseFilter(
        dataset=dataset,
        status=status or None,
        team=team,
        owner=owner,
        priority=priority,
        customer_id=customer_id,
        open_only=open_only,
        overdue_only=overdue,
    )


Filter = Annotated[CaseFilter, Depends(case_filter)]


async def _run(store: FeedbackStore, work: Callable[..., Any], *, write: bool = False) -> Any:
    """`work(connection)` on the store (`service.feedback.in_store`, in a transaction when
    `write`), with the case module's errors as JSON errors."""
    try:
        # Two writers reopening cases of one customer and reason at once: one of them wins.
        return await in_store(
            store,
            work,
            write=write,
            conflict="the case changed meanwhile (another open case clashes); retry",
        )
    except CaseError as exc:
        raise ApiError(exc.status_code, str(exc)) from None


async def _change(store: FeedbackStore, case_id: int, change: Callable[[Any], Any]) -> Any:
    """`change(connection)` on one case in one transaction; the case as it is afterwards."""

    def run(connection: Any) -> dict[str, Any]:
        change(connection)
        return _detail(connection, case_id)

    return await _run(store, run, write=True)


def _detail(connection: Any, case_id: int) -> dict[str, Any]:
    found = cases.get_case(connection, case_id)
    customer = found.get("customer_id")
    found["history"] = (
        cases.customer_history(connection, found["dataset"], customer) if customer else None
    )
    return found


@router.get("", response_model=CasesPage)
async def list_cases(
    f: Filter,
    store: Store,
    page: Page,
) -> Any:
    """The queue: open cases first, overdue first among them, then by priority and deadline;
    closed cases after. Filters combine (AND)."""
    found = await _run(
        store, lambda c: cases.list_cases(c, f, limit=page.limit, offset=page.offset)
    )
    return {"limit": page.limit, "offset": page.offset, **found}


@router.get("/export.csv", response_class=Response)
async def export_csv(f: Filter, store: Store) -> Response:
    """Every case under the filter as CSV, in the queue's order (UTF-8 with BOM; a cell a
    spreadsheet would run as a formula gets a leading apostrophe)."""

    def every(connection: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = cases.list_cases(connection, f, limit=EXPORT_PAGE, offset=len(rows))["cases"]
            rows.extend(page)
            if len(page) < EXPORT_PAGE:
                return rows

    listed = await _run(store, every)
    return Response(
        "\ufeff" + cases.cases_csv(listed),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="cases.csv"'},
    )


@router.get("/rules", response_model=CaseRulesView)
async def rules() -> Any:
    """The statuses (custom ones included), closed statuses, priorities with their response
    hours, and the topic -> team routing in force."""
    r = case_rules()
    return {
        "statuses": list(r.statuses),
        "closed_statuses": list(r.closed_statuses),
        "priorities": r.priorities,
        "teams": r.teams,
    }


@router.post("/escalate", response_model=Escalated)
async def escalate(store: Store, state: State) -> Any:
    """Escalate every open case past its deadline that is not escalated yet: flag it, hand it
    to its team's escalation owner, record it, and POST it to the alert webhook
    (`CXNLP_ALERT_WEBHOOK`) as `{"case_escalated": case}`. Run it from a scheduler (cron)."""
    url = state.settings.alert_webhook

    def run() -> list[dict[str, Any]]:
        return alerts.escalate_and_notify(store, url=url, rules=case_rules())

    try:
        escalated = await run_in_threadpool(run)
    except SQLAlchemyError as exc:
        raise store_unavailable(exc) from None
    return {"escalated": escalated}


@router.get("/recovery", response_model=Recovery)
async def recovery(store: Store, dataset: DatasetName) -> Any:
    """The inner and outer loop: for customers who wrote again, the change in sentiment and
    score after their case was resolved against customers whose case got no response; hours to
    first response and to resolution per team; closed cases' root causes per topic."""
    found = await _run(store, lambda c: recovery_metrics(c, dataset))
    return {"dataset": dataset, **found}


@router.get("/customers/{customer_id:path}", response_model=CustomerHistory)
async def customer(
    customer_id: str,
    store: Store,
    dataset: DatasetName,
    limit: Limit = 200,
) -> Any:
    """A customer's feedback (newest first) and cases."""
    return await _run(store, lambda c: cases.customer_history(c, dataset, customer_id, limit))


@router.get("/{case_id}", response_model=CaseDetail)
async def get_case(case_id: CaseId, store: Store) -> Any:
    """One case with its history of changes, its feedback items and the customer's history."""
    return await _run(store, lambda c: _detail(c, case_id))


@router.post("/{case_id}/assign", response_model=CaseDetail)
async def assign(case_id: CaseId, body: AssignBody, store: Store) -> Any:
    """Give the case to an owner (`null`: unassigned)."""
    return await _change(
        store, case_id, lambda c: cases.assign(c, case_id, body.owner, actor=body.actor)
    )


@router.post("/{case_id}/comments", response_model=CaseDetail)
async def comment(case_id: CaseId, body: CommentBody, store: Store) -> Any:
    """Add a note to the case."""
    return await _change(
        store, case_id, lambda c: cases.comment(c, case_id, body.note, actor=body.actor)
    )


@router.post("/{case_id}/status", response_model=CaseDetail)
async def change_status(case_id: CaseId, body: StatusBody, store: Store) -> Any:
    """Move the case to another status of the rules file. The first move away from `open` is
    the first response; a closed status needs `root_cause` and `resolved`; reopening fails with
    409 when the customer has another open case for the same reason."""

    def change(connection: Any) -> None:
        cases.change_status(
            connection,
            case_id,
            body.status,
            actor=body.actor,
            note=body.note,
            root_cause=body.root_cause,
            resolved=body.resolved,
            rules=case_rules(),
        )

    return await _change(store, case_id, change)
