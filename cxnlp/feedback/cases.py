"""Follow-up cases: the items that need a human, a queue with owners, deadlines and a history.

Rules in `cxnlp/data/case_rules.yaml` (or a file in its format) decide which stored items open a
case: urgent texts, detractors, confident negatives, chosen topics. `open_cases` runs inside the
ingest's transaction (one call from `cxnlp.feedback.ingest.ingest_records`), so a case exists iff
its item was stored. A customer has one open case per reason: a later item of the same customer
and reason joins that case instead of opening another, and an item already in a case (a resend)
opens nothing. Every change is a timestamped row of `case_events`; a case past its response
deadline is escalated (flag, escalation owner) by `escalate_overdue`, and pushed to the webhook
by `cxnlp.feedback.alerts.escalate_and_notify`.

>>> from cxnlp.feedback.db import open_store
>>> store = open_store("sqlite://")
>>> record = {"item_id": "1", "customer_id": "c9", "sentiment": "negative", "confidence": 0.95,
...           "urgency_level": "high", "urgency": 0.9, "topics": [], "error": None}
>>> with store.engine.begin() as c:
...     open_cases(c, "shop", [record])["opened"]
1
>>> with store.engine.begin() as c:  # the same item again: nothing new
...     open_cases(c, "shop", [record])["opened"]
0
>>> store.close()
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, select, update

from cxnlp.data import read_yaml
from cxnlp.feedback.models import CASE_EVENTS, CASE_ITEMS, CASES, ITEMS
from cxnlp.feedback.writers import one_of, writer_for
from cxnlp.io.tables import escape_formula

logger = logging.getLogger(__name__)

RULES_RESOURCE = "case_rules.yaml"
RULES_ENV = "CXNLP_CASE_RULES"
WHEN_KEYS = frozenset(
    {"urgency_level", "score_kind", "score_max", "score_min", "sentiment", "confidence_min",
     "topics", "polarity"}
)  # fmt: skip
# The columns a listed case has (the CSV export's header, in this order).
CASE_FIELDS: tuple[str, ...] = (
    "id", "dataset", "item_id", "customer_id", "reason", "topic", "team", "owner",
    "escalation_owner", "priority", "status", "overdue", "escalated", "sentiment", "urgency",
    "score", "item_count", "opened_at", "due_at", "updated_at", "first_response_at", "resolved_at",
    "closed_at", "root_cause", "resolved",
)  # fmt: skip


class CaseError(ValueError):
    """A case operation that cannot be done (unknown case or status, missing closing fields)."""

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class CaseRule:
    name: str
    priority: str
    when: dict[str, Any]


@dataclass(frozen=True)
class CaseRules:
    rules: tuple[CaseRule, ...]
    statuses: tuple[str, ...]
    closed_statuses: tuple[str, ...]
    priorities: dict[str, float]  # priority -> response hours
    teams: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str | None] = field(default_factory=dict)
    escalation: dict[str, str | None] = field(default_factory=dict)

    def rank(self, priority: str) -> int:
        return list(self.priorities).index(priority)

    def team_for(self, topic: str | None) -> str:
        return self.teams.get(topic or "", self.teams.get("default", "customer_care"))

    def _per_team(self, table: dict[str, str | None], team: str) -> str | None:
        return table.get(team, table.get("default"))


def _validate(raw: dict[str, Any], where: str) -> CaseRules:
    def fail(message: str) -> CaseError:
        return CaseError(f"{where}: {message}")

    priorities = {str(k): float(v) for k, v in (raw.get("priorities") or {}).items()}
    if not priorities:
        raise fail("no `priorities` (priority -> response hours, e.g. {p1: 4, p2: 24})")
    statuses = tuple(str(s) for s in raw.get("statuses") or ())
    closed = tuple(str(s) for s in raw.get("closed_statuses") or ("closed",))
    if not statuses or statuses[0] != "open" or not set(closed) <= set(statuses):
        raise fail(
            f"`statuses` must start with 'open' and include the closed statuses {list(closed)}; "
            f"got {list(statuses)}"
        )
    rules = []
    for i, rule in enumerate(raw.get("rules") or ()):
        when = dict(rule.get("when") or {})
        unknown = set(when) - WHEN_KEYS
        if not rule.get("name") or unknown or not when:
            raise fail(
                f"rule {i + 1} needs a name and a non-empty `when` with keys from "
                f"{sorted(WHEN_KEYS)}; unknown: {sorted(unknown)}"
            )
        if rule.get("priority") not in priorities:
            raise fail(f"rule {rule['name']!r}: priority must be one of {list(priorities)}")
        rules.append(CaseRule(str(rule["name"]), rule["priority"], when))
    return CaseRules(
        rules=tuple(rules),
        statuses=statuses,
        closed_statuses=closed,
        priorities=priorities,
        teams={str(k): str(v) for k, v in (raw.get("teams") or {}).items()},
        owners=dict(raw.get("owners") or {}),
        escalation=dict(raw.get("escalation") or {}),
    )


@functools.cache
def load_case_rules(path: str | None = None) -> CaseRules:
    """The rules of `cxnlp/data/case_rules.yaml`, or of a file in its format."""
    return _validate(read_yaml(RULES_RESOURCE, path), path or RULES_RESOURCE)


def rules_from_env() -> CaseRules | None:
    """The rules named by `$CXNLP_CASE_RULES` (a file; "off" for none), else the defaults."""
    value = os.environ.get(RULES_ENV)
    if value and value.lower() in ("off", "none", "0", "false"):
        return None
    return load_case_rules(value or None)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _negative_topic(record: Mapping[str, Any], wanted: Iterable[str] | None = None) -> str | None:
    topics = [t for t in record.get("topics") or () if t.get("polarity") == "negative"]
    if wanted is not None:
        topics = [t for t in topics if t["topic"] in set(wanted)]
    if not topics:
        return None
    return max(topics, key=lambda t: t.get("score") or 0.0)["topic"]


def match_rule(record: Mapping[str, Any], rules: CaseRules) -> tuple[CaseRule, str | None] | None:
    """The first rule `record` (a stored item) meets, with the topic the case is routed by."""
    if record.get("error") is not None or record.get("sentiment") is None:
        return None
    for rule in rules.rules:
        when = rule.when
        if "urgency_level" in when and record.get("urgency_level") not in when["urgency_level"]:
            continue
        if "score_kind" in when:
            score = record.get("score")
            if record.get("score_kind") != when["score_kind"] or score is None:
                continue
            if "score_max" in when and score > when["score_max"]:
                continue
            if "score_min" in when and score < when["score_min"]:
                continue
        if "sentiment" in when and record.get("sentiment") != when["sentiment"]:
            continue
        if (record.get("confidence") or 0.0) < when.get("confidence_min", 0.0):
            continue
        topic = _negative_topic(record)
        if "topics" in when:
            polarity = when.get("polarity", "negative")
            hits = [
                t for t in record.get("topics") or ()
                if t["topic"] in when["topics"] and t.get("polarity") == polarity
            ]  # fmt: skip
            if not hits:
                continue
            topic = hits[0]["topic"]
        return rule, topic
    return None


def _event(case_id: int, at: dt.datetime, kind: str, **values: Any) -> dict[str, Any]:
    row = {"case_id": case_id, "at": at, "kind": kind, "actor": None, "from_status": None,
           "to_status": None, "note": None}  # fmt: skip
    row.update(values)
    return row


def open_cases(
    connection: Connection,
    dataset: str,
    records: Sequence[Mapping[str, Any]],
    *,
    now: dt.datetime | None = None,
    rules: CaseRules | None = None,
) -> dict[str, int]:
    """Open (or join) the cases `records` call for, inside the caller's transaction. Returns
    `{"opened", "linked", "skipped"}`: new cases, items added to an open case of the same
    customer and reason, and items already in a case (a resend)."""
    rules = rules or load_case_rules()
    now = now or _now()
    wanted = []
    for record in records:
        found = match_rule(record, rules)
        if found is not None:
            wanted.append((record, *found))
    counts = {"opened": 0, "linked": 0, "skipped": 0}
    if not wanted:
        return counts
    dialect = connection.dialect.name
    writer = writer_for(connection)
    ids = [r["item_id"] for r, _, _ in wanted]
    linked: set[str] = set(
        connection.execute(
            select(CASE_ITEMS.c.item_id).where(
                CASE_ITEMS.c.dataset == dataset, one_of(CASE_ITEMS.c.item_id, ids, dialect)
            )
        ).scalars()
    )
    by_key: dict[str, list[tuple[Mapping[str, Any], CaseRule, str | None]]] = {}
    for record, rule, topic in wanted:
        if record["item_id"] in linked:
            counts["skipped"] += 1
            continue
        linked.add(record["item_id"])  # the same id twice in one batch
        customer = record.get("customer_id") or f"item:{record['item_id']}"
        by_key.setdefault(f"{customer}|{rule.name}", []).append((record, rule, topic))
    if not by_key:
        return counts

    def open_now(keys: list[str]) -> dict[str, tuple[int, int]]:
        """(case id, priority rank) of the open cases with these keys."""
        query = select(CASES.c.open_key, CASES.c.id, CASES.c.priority_rank).where(
            CASES.c.dataset == dataset, one_of(CASES.c.open_key, keys, dialect)
        )
        return {key: (case_id, rank) for key, case_id, rank in connection.execute(query)}

    existing = open_now(list(by_key))
    new_rows = []
    for key, group in by_key.items():
        if key in existing:
            continue
        record, rule, topic = min(group, key=lambda g: rules.rank(g[1].priority))
        team = rules.team_for(topic)
        new_rows.append(
            {
                "dataset": dataset,
                "item_id": record["item_id"],
                "customer_id": record.get("customer_id"),
                "open_key": key,
                "reason": rule.name,
                "topic": topic,
                "team": team,
                "owner": rules._per_team(rules.owners, team),
                "escalation_owner": None,
                "priority": rule.priority,
                "priority_rank": rules.rank(rule.priority),
                "status": rules.statuses[0],
                "is_open": True,
                "sentiment": record.get("sentiment"),
                "urgency": record.get("urgency"),
                "score": record.get("score"),
                "item_count": len(group),
                "opened_at": now,
                "due_at": now + dt.timedelta(hours=rules.priorities[rule.priority]),
                "updated_at": now,
                "escalated": False,
            }
        )
    if new_rows:
        writer.insert(CASES, new_rows)
        existing.update(open_now([r["open_key"] for r in new_rows]))
        counts["opened"] = len(new_rows)
    fresh = {r["open_key"] for r in new_rows}
    # A new case was inserted with its items counted and its best priority; only cases that
    # were open before need an UPDATE (one round trip each, so not one per new case).
    links, events, grown = [], [], []
    for key, group in by_key.items():
        case_id, rank = existing[key]
        if key in fresh:
            events.append(_event(case_id, now, "opened", to_status=rules.statuses[0],
                                 note=f"opened by rule {group[0][1].name!r}"))  # fmt: skip
        else:
            counts["linked"] += len(group)
        for record, _, _ in group:
            links.append({"dataset": dataset, "item_id": record["item_id"], "case_id": case_id,
                          "linked_at": now})  # fmt: skip
            if key not in fresh:
                events.append(_event(case_id, now, "linked", note=f"item {record['item_id']}"))
        if key not in fresh:
            best = min(rules.rank(rule.priority) for _, rule, _ in group)
            grown.append((case_id, len(group), min(best, rank)))
    writer.insert(CASE_ITEMS, links)
    writer.insert(CASE_EVENTS, events)
    if grown:
        names = list(rules.priorities)
        connection.execute(
            update(CASES)
            .where(CASES.c.id == bindparam("b_id"))
            .values(
                item_count=CASES.c.item_count + bindparam("b_added"),
                priority_rank=bindparam("b_rank"),
                priority=bindparam("b_priority"),
                updated_at=now,
            ),
            [
                {"b_id": case_id, "b_added": n, "b_rank": rank, "b_priority": names[rank]}
                for case_id, n, rank in grown
            ],
        )
    return counts


def cases_after_ingest(
    connection: Connection, dataset: str, records: Iterable[Mapping[str, Any]], now: dt.datetime
) -> dict[str, int]:
    """What `ingest_records` calls once its items are written: `open_cases` with the rules of
    `$CXNLP_CASE_RULES` (the shipped defaults when unset; nothing when "off")."""
    rules = rules_from_env()
    if rules is None:
        return {"opened": 0, "linked": 0, "skipped": 0}
    return open_cases(connection, dataset, list(records), now=now, rules=rules)


# ---- the queue ------------------------------------------------------------------------------


@dataclass
class CaseFilter:
    """Which cases to list; None means any."""

    dataset: str | None = None
    status: Sequence[str] | None = None
    team: str | None = None
    owner: str | None = None
    priority: str | None = None
    customer_id: str | None = None
    open_only: bool = False
    overdue_only: bool = False


def _conditions(f: CaseFilter, now: dt.datetime) -> list:
    c = CASES.c
    where = []
    if f.dataset is not None:
        where.append(c.dataset == f.dataset)
    if f.status:
        where.append(c.status.in_(list(f.status)))
    for column, value in ((c.team, f.team), (c.owner, f.owner), (c.priority, f.priority),
                          (c.customer_id, f.customer_id)):  # fmt: skip
        if value is not None:
            where.append(column == value)
    if f.open_only or f.overdue_only:
        where.append(c.is_open.is_(True))
    if f.overdue_only:
        where.append(c.due_at < now)
    return where


def _public(row: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    out = {k: row[k] for k in CASE_FIELDS if k in row}
    out["overdue"] = bool(row["is_open"] and row["due_at"] < now)
    for k, v in out.items():
        if isinstance(v, dt.datetime):
            out[k] = v.isoformat(timespec="seconds")
    return out


def list_cases(
    connection: Connection,
    f: CaseFilter | None = None,
    *,
    limit: int = 50,
    offset: int = 0,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """`{"total", "cases"}`: open cases first, overdue first among them, then by priority and
    deadline (closed ones after, newest first)."""
    f, now = f or CaseFilter(), now or _now()
    where = _conditions(f, now)
    total = connection.execute(
        select(func.count()).select_from(CASES).where(and_(True, *where))
    ).scalar_one()
    c = CASES.c
    overdue_first = case((and_(c.is_open.is_(True), c.due_at < now), 0), else_=1)
    rows = connection.execute(
        select(CASES)
        .where(and_(True, *where))
        .order_by(c.is_open.desc(), overdue_first, c.priority_rank, c.due_at, c.id)
        .limit(limit)
        .offset(offset)
    ).mappings()
    return {"total": total, "cases": [_public(r, now) for r in rows]}


def _case_row(connection: Connection, case_id: int) -> Mapping[str, Any]:
    row = connection.execute(select(CASES).where(CASES.c.id == case_id)).mappings().first()
    if row is None:
        raise CaseError(f"no case {case_id}", 404)
    return row


def get_case(connection: Connection, case_id: int, now: dt.datetime | None = None) -> dict:
    """One case with its events (oldest first) and its feedback items."""
    now = now or _now()
    row = _case_row(connection, case_id)
    events = [
        {**e, "at": e["at"].isoformat(timespec="seconds")}
        for e in connection.execute(
            select(CASE_EVENTS.c.at, CASE_EVENTS.c.kind, CASE_EVENTS.c.actor,
                   CASE_EVENTS.c.from_status, CASE_EVENTS.c.to_status, CASE_EVENTS.c.note)
            .where(CASE_EVENTS.c.case_id == case_id)
            .order_by(CASE_EVENTS.c.at, CASE_EVENTS.c.id)
        ).mappings()
    ]  # fmt: skip
    items = connection.execute(
        select(ITEMS.c.item_id, ITEMS.c.text, ITEMS.c.created_at, ITEMS.c.sentiment,
               ITEMS.c.score, ITEMS.c.urgency_level)
        .join(CASE_ITEMS, and_(CASE_ITEMS.c.dataset == ITEMS.c.dataset,
                               CASE_ITEMS.c.item_id == ITEMS.c.item_id))
        .where(CASE_ITEMS.c.case_id == case_id)
        .order_by(ITEMS.c.created_at)
    ).mappings()  # fmt: skip
    return {
        **_public(row, now),
        "events": events,
        "feedback": [
            {**i, "created_at": i["created_at"].isoformat(timespec="seconds")} for i in items
        ],  # fmt: skip
    }


def _change(connection: Connection, case_id: int, values: dict[str, Any], event: dict) -> None:
    connection.execute(update(CASES).where(CASES.c.id == case_id).values(**values))
    connection.execute(insert(CASE_EVENTS), [event])


def assign(
    connection: Connection, case_id: int, owner: str | None, *, actor: str | None = None,
    now: dt.datetime | None = None,
) -> None:  # fmt: skip
    """Give the case to `owner` (None: unassigned), recorded as an event."""
    now = now or _now()
    row = _case_row(connection, case_id)
    _change(connection, case_id, {"owner": owner, "updated_at": now},
            _event(case_id, now, "assigned", actor=actor,
                   note=f"{row['owner'] or '-'} -> {owner or '-'}"))  # fmt: skip


def comment(
    connection: Connection, case_id: int, note: str, *, actor: str | None = None,
    now: dt.datetime | None = None,
) -> None:  # fmt: skip
    """Add a note to the case."""
    if not note or not note.strip():
        raise CaseError("a comment needs text")
    now = now or _now()
    _case_row(connection, case_id)
    _change(connection, case_id, {"updated_at": now},
            _event(case_id, now, "comment", actor=actor, note=note))  # fmt: skip


def change_status(
    connection: Connection,
    case_id: int,
    status: str,
    *,
    actor: str | None = None,
    note: str | None = None,
    root_cause: str | None = None,
    resolved: bool | None = None,
    now: dt.datetime | None = None,
    rules: CaseRules | None = None,
) -> None:
    """Move the case to `status`, recorded with its time. The first move away from `open` is the
    first response; `resolved` sets the resolution time; a closed status asks for `root_cause`
    and `resolved` (was the customer's issue solved?). Reopening a closed case fails when the
    customer already has another open case for the same reason."""
    rules, now = rules or load_case_rules(), now or _now()
    if status not in rules.statuses:
        raise CaseError(f"unknown status {status!r}; the statuses are {list(rules.statuses)}")
    row = _case_row(connection, case_id)
    closing = status in rules.closed_statuses
    if closing and (not root_cause or resolved is None):
        raise CaseError("closing a case needs `root_cause` and `resolved` (true or false)")
    values: dict[str, Any] = {"status": status, "updated_at": now, "is_open": not closing}
    if row["first_response_at"] is None and status != rules.statuses[0]:
        values["first_response_at"] = now
    if status == "resolved" and row["resolved_at"] is None:
        values["resolved_at"] = now
    if closing:
        values.update(open_key=None, closed_at=now, root_cause=root_cause, resolved=resolved)
        if resolved and row["resolved_at"] is None:
            values["resolved_at"] = now
    elif not row["is_open"]:
        customer = row["customer_id"] or f"item:{row['item_id']}"
        key = f"{customer}|{row['reason']}"
        clash = connection.execute(
            select(CASES.c.id).where(CASES.c.dataset == row["dataset"], CASES.c.open_key == key)
        ).first()
        if clash is not None:
            raise CaseError(f"case {clash[0]} is already open for this customer and reason", 409)
        values.update(open_key=key, closed_at=None)
    _change(connection, case_id, values,
            _event(case_id, now, "status", actor=actor, from_status=row["status"],
                   to_status=status, note=note))  # fmt: skip


def escalate_overdue(
    connection: Connection, *, now: dt.datetime | None = None, rules: CaseRules | None = None
) -> list[dict[str, Any]]:
    """Flag every open case past its deadline that is not escalated yet, hand it to the
    escalation owner of its team, and record it; returns them (for the webhook)."""
    rules, now = rules or load_case_rules(), now or _now()
    rows = (
        connection.execute(
            select(CASES).where(
                CASES.c.is_open.is_(True), CASES.c.escalated.is_(False), CASES.c.due_at < now
            )
        )
        .mappings()
        .all()
    )
    escalated = []
    for row in rows:
        to = rules._per_team(rules.escalation, row["team"])
        _change(connection, row["id"],
                {"escalated": True, "escalated_at": now, "escalation_owner": to,
                 "updated_at": now},
                _event(row["id"], now, "escalated", note=f"overdue since {row['due_at']:%Y-%m-%d %H:%M}; "
                       f"escalated to {to or '-'}"))  # fmt: skip
        escalated.append({**_public(row, now), "escalated": True, "escalation_owner": to})
    return escalated


def cases_csv(cases: Iterable[Mapping[str, Any]]) -> str:
    """Listed cases as CSV, columns `CASE_FIELDS`; a cell a spreadsheet would run as a formula
    (an owner or root cause typed as `=HYPERLINK(...)`) gets a leading apostrophe."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CASE_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in cases:
        writer.writerow({k: escape_formula(v) for k, v in row.items()})
    return out.getvalue()


def customer_history(
    connection: Connection, dataset: str, customer_id: str, limit: int = 200
) -> dict[str, Any]:
    """A customer's feedback (newest first) and cases."""
    items = connection.execute(
        select(ITEMS.c.item_id, ITEMS.c.text, ITEMS.c.created_at, ITEMS.c.sentiment,
               ITEMS.c.score, ITEMS.c.score_kind, ITEMS.c.urgency_level)
        .where(ITEMS.c.dataset == dataset, ITEMS.c.customer_id == customer_id)
        .order_by(ITEMS.c.created_at.desc())
        .limit(limit)
    ).mappings()  # fmt: skip
    cases = list_cases(connection, CaseFilter(dataset=dataset, customer_id=customer_id),
                       limit=limit)["cases"]  # fmt: skip
    return {
        "customer_id": customer_id,
        "feedback": [
            {**i, "created_at": i["created_at"].isoformat(timespec="seconds")} for i in items
        ],  # fmt: skip
        "cases": cases,
    }


__all__ = [
    "CASE_FIELDS", "CaseError", "CaseFilter", "CaseRules", "assign", "cases_after_ingest",
    "cases_csv", "change_status",
    "comment", "customer_history", "escalate_overdue", "get_case",
    "list_cases", "load_case_rules", "match_rule", "open_cases",
]  # fmt: skip
