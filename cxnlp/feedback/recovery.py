"""Did following up help? The inner loop (one customer recovered) and the outer loop (causes fixed).

- Recovery: for customers whose case was resolved and who wrote again afterwards, the change from
  the feedback that opened the case to their later feedback, in sentiment (p_positive - p_negative,
  -1..1) and survey score; beside it the same change for customers whose case got no response
  (still open, no first response), measured after the case was opened. The difference between the
  two is the effect a CX team can read, not a causal estimate (who gets resolved is not random).
- Response times per team: hours from opening to the first response and to resolution.
- Root causes of closed cases counted per topic, with the share resolved.

The recovery is summed up in the database (per customer, then per group: a customer's history
is read through the items' customer index, never fetched); the response times and root causes
read one row per case.

>>> from cxnlp.feedback.db import open_store
>>> store = open_store("sqlite://")
>>> with store.engine.connect() as c:
...     recovery_metrics(c, "shop")["recovered"]["customers"]
0
>>> store.close()
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import Connection, and_, case, distinct, func, literal, select, union_all

from cxnlp.feedback.models import CASES, ITEMS


def _hours(start: dt.datetime, end: dt.datetime | None) -> float | None:
    return (end - start).total_seconds() / 3600 if end is not None else None


# The two groups compared: their cases, and the time after which a customer's feedback counts.
_GROUPS = {
    "recovered": (CASES.c.resolved_at.is_not(None), CASES.c.resolved_at),
    "not_followed_up": (CASES.c.first_response_at.is_(None), CASES.c.opened_at),
}


def _changes(connection: Connection, dataset: str) -> dict[str, dict[str, Any]]:
    """Per group: its customers; for each, their first case (by opening time, then id) whose
    opening item is theirs and classified, and the mean of their classified items written after
    the group's time (and after the opening item) against that item. Summed up in the database
    (one row per customer who wrote again, then one per group), both groups in one pass."""
    c, opened, later = CASES.c, ITEMS.alias("opened"), ITEMS.alias("later")
    cases = union_all(
        *(
            select(literal(name).label("grp"), c.id, c.customer_id, c.item_id, c.opened_at,
                   after.label("after"))
            .where(c.dataset == dataset, c.customer_id.is_not(None), member)
            for name, (member, after) in _GROUPS.items()
        )
    ).subquery("cases")  # fmt: skip
    customers = dict(
        connection.execute(
            select(cases.c.grp, func.count(distinct(cases.c.customer_id))).group_by(cases.c.grp)
        ).all()
    )
    nth = func.row_number().over(
        partition_by=(cases.c.grp, cases.c.customer_id), order_by=(cases.c.opened_at, cases.c.id)
    )
    firsts = (
        select(
            cases.c.grp,
            cases.c.customer_id,
            cases.c.item_id,
            cases.c.after,
            opened.c.created_at.label("written_at"),
            (opened.c.p_positive - opened.c.p_negative).label("before"),
            opened.c.score,
            nth.label("nth"),
        )
        .join(
            opened,
            and_(
                opened.c.dataset == dataset,
                opened.c.item_id == cases.c.item_id,
                opened.c.customer_id == cases.c.customer_id,
                opened.c.error.is_(None),
            ),
        )
        .subquery("firsts")
    )
    first = select(firsts).where(firsts.c.nth == 1).subquery("first")
    since = case((first.c.after > first.c.written_at, first.c.after), else_=first.c.written_at)
    per_customer = (
        select(
            first.c.grp,
            (func.avg(later.c.p_positive - later.c.p_negative) - first.c.before).label("change"),
            (func.avg(later.c.score) - first.c.score).label("score_change"),
        )
        .join(
            later,
            and_(
                later.c.dataset == dataset,
                later.c.customer_id == first.c.customer_id,
                later.c.error.is_(None),
                later.c.created_at > since,
                later.c.item_id != first.c.item_id,
            ),
        )
        .group_by(first.c.grp, first.c.customer_id, first.c.before, first.c.score)
        .subquery("per_customer")
    )
    p = per_customer.c
    rows = connection.execute(
        select(
            p.grp,
            func.count(),
            func.avg(p.change),
            func.count(p.change),
            func.avg(p.score_change),
            func.count(p.score_change),
        ).group_by(p.grp)
    ).all()
    found = {row[0]: row[1:] for row in rows}
    out = {}
    for name in _GROUPS:
        returned, change, n_change, score_change, n_score = found.get(name, (0, None, 0, None, 0))
        out[name] = {
            "customers": customers.get(name, 0),
            "wrote_again": returned,
            "sentiment_change": _float(change),
            "score_change": _float(score_change),
            "n_sentiment": n_change,
            "n_score": n_score,
        }
    return out


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def recovery_metrics(connection: Connection, dataset: str) -> dict[str, Any]:
    """`{"recovered", "not_followed_up", "difference", "teams", "root_causes"}` for `dataset`."""
    c = CASES.c
    result: dict[str, Any] = _changes(connection, dataset)
    a, b = result["recovered"]["sentiment_change"], result["not_followed_up"]["sentiment_change"]
    result["difference"] = {"sentiment_change": a - b if None not in (a, b) else None}
    cases = connection.execute(
        select(c.team, c.topic, c.opened_at, c.first_response_at, c.resolved_at, c.root_cause,
               c.resolved)
        .where(c.dataset == dataset)
    ).mappings().all()  # fmt: skip
    teams: dict[str, dict[str, list]] = defaultdict(lambda: {"first": [], "resolve": []})
    per_team: Counter[str] = Counter()
    for x in cases:  # every team with a case is listed, also one that answered none yet
        per_team[x["team"]] += 1
        times = teams[x["team"]]
        first = _hours(x["opened_at"], x["first_response_at"])
        resolve = _hours(x["opened_at"], x["resolved_at"])
        if first is not None:
            times["first"].append(first)
        if resolve is not None:
            times["resolve"].append(resolve)
    result["teams"] = [
        {
            "team": team,
            "cases": per_team[team],
            "median_hours_to_first_response": statistics.median(t["first"]) if t["first"] else None,
            "median_hours_to_resolution": statistics.median(t["resolve"]) if t["resolve"] else None,
        }
        for team, t in sorted(teams.items())
    ]
    causes: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for x in cases:
        if x["root_cause"]:
            causes[(x["topic"] or "", x["root_cause"])].append(bool(x["resolved"]))
    result["root_causes"] = sorted(
        (
            {
                "topic": topic or None,
                "root_cause": cause,
                "cases": len(flags),
                "resolved_share": sum(flags) / len(flags),
            }  # fmt: skip
            for (topic, cause), flags in causes.items()
        ),
        key=lambda r: (-r["cases"], r["topic"] or "", r["root_cause"]),
    )
    return result
