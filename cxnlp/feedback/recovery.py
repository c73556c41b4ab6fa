"""Did following up help? The inner loop (one customer recovered) and the outer loop (causes fixed).

- Recovery: for customers whose case was resolved and who wrote again afterwards, the change from
  the feedback that opened the case to their later feedback, in sentiment (p_positive - p_negative,
  -1..1) and survey score; beside it the same change for customers whose case got no response
  (still open, no first response), measured after the case was opened. The difference between the
  two is the effect a CX team can read, not a causal estimate (who gets resolved is not random).
- Response times per team: hours from opening to the first response and to resolution.
- Root causes of closed cases counted per topic, with the share resolved.

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
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from cxnlp.feedback.models import CASES, ITEMS

_CHUNK = 500


def _sentiment(row: Mapping[str, Any]) -> float | None:
    if row["p_positive"] is None or row["p_negative"] is None:
        return None
    return float(row["p_positive"]) - float(row["p_negative"])


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _hours(start: dt.datetime, end: dt.datetime | None) -> float | None:
    return (end - start).total_seconds() / 3600 if end is not None else None


def _group_change(
    cases: list[Mapping[str, Any]], after_of: str, items: dict[str, list], opening: dict
) -> dict[str, Any]:
    """Per customer: the opening item against the mean of the items after `after_of`."""
    changes, score_changes, returned = [], [], 0
    customers = {c["customer_id"] for c in cases}
    seen: set[str] = set()
    for c in sorted(cases, key=lambda x: x["opened_at"]):  # a customer's first case counts
        first = opening.get((c["customer_id"], c["item_id"]))
        if c["customer_id"] in seen or first is None:
            continue
        seen.add(c["customer_id"])
        since = max(c[after_of], first["created_at"])
        later = [
            i
            for i in items.get(c["customer_id"], [])
            if i["created_at"] > since and i["item_id"] != c["item_id"]
        ]
        if not later:
            continue
        returned += 1
        before = _sentiment(first)
        after = _mean([s for s in map(_sentiment, later) if s is not None])
        if before is not None and after is not None:
            changes.append(after - before)
        scored = [i["score"] for i in later if i["score"] is not None]
        if first["score"] is not None and scored:
            score_changes.append(statistics.fmean(scored) - first["score"])
    return {
        "customers": len(customers),
        "wrote_again": returned,
        "sentiment_change": _mean(changes),
        "score_change": _mean(score_changes),
        "n_sentiment": len(changes),
        "n_score": len(score_changes),
    }


def recovery_metrics(connection: Connection, dataset: str) -> dict[str, Any]:
    """`{"recovered", "not_followed_up", "difference", "teams", "root_causes"}` for `dataset`."""
    c = CASES.c
    cases = connection.execute(
        select(c.id, c.customer_id, c.item_id, c.team, c.topic, c.is_open, c.opened_at,
               c.first_response_at, c.resolved_at, c.closed_at, c.root_cause, c.resolved)
        .where(c.dataset == dataset)
    ).mappings().all()  # fmt: skip
    recovered = [x for x in cases if x["customer_id"] and x["resolved_at"] is not None]
    ignored = [x for x in cases if x["customer_id"] and x["first_response_at"] is None]
    customers = sorted({x["customer_id"] for x in recovered + ignored})
    items: dict[str, list] = defaultdict(list)
    opening: dict[tuple[str, str], Mapping[str, Any]] = {}
    i = ITEMS.c
    for start in range(0, len(customers), _CHUNK):
        part = customers[start : start + _CHUNK]
        for row in connection.execute(
            select(i.customer_id, i.item_id, i.created_at, i.p_positive, i.p_negative, i.score)
            .where(i.dataset == dataset, i.customer_id.in_(part), i.error.is_(None))
        ).mappings():  # fmt: skip
            items[row["customer_id"]].append(row)
            opening[(row["customer_id"], row["item_id"])] = row
    result = {
        "recovered": _group_change(recovered, "resolved_at", items, opening),
        "not_followed_up": _group_change(ignored, "opened_at", items, opening),
    }
    a, b = result["recovered"]["sentiment_change"], result["not_followed_up"]["sentiment_change"]
    result["difference"] = {"sentiment_change": a - b if None not in (a, b) else None}
    teams: dict[str, dict[str, list]] = defaultdict(lambda: {"first": [], "resolve": []})
    for x in cases:  # every team with a case is listed, also one that answered none yet
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
            "cases": sum(x["team"] == team for x in cases),
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
