"""Follow-up cases on a real SQLite store: rules, one case per customer and reason, resends,
status history, closing, overdue escalation and recovery metrics."""

from __future__ import annotations

import datetime as dt
import statistics

import numpy as np
import pandas as pd
import pytest
from feedback_helpers import case_row as row
from feedback_helpers import database_url
from sqlalchemy import func, select

from cxnlp.feedback import alerts, cases
from cxnlp.feedback.cases import CaseError, CaseFilter, load_case_rules, match_rule
from cxnlp.feedback.db import open_store
from cxnlp.feedback.ingest import ingest_frame, ingest_records
from cxnlp.feedback.models import CASE_EVENTS, CASE_ITEMS, CASES, ITEMS
from cxnlp.feedback.records import records_from_frame
from cxnlp.feedback.recovery import recovery_metrics

T0 = dt.datetime(2026, 9, 7, 9, 0)


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'cases.sqlite'}") as s:
        yield s


def ingest(store, rows, score=False):
    frame = pd.DataFrame(rows)
    kwargs = {"score_col": "nps", "score_kind": "nps"} if score else {}
    if not score:
        frame = frame.drop(columns=["nps"])
    return ingest_frame(frame, dataset="shop", store=store, **kwargs)


def all_cases(store):
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(select(CASES).order_by(CASES.c.id)).mappings()]


def test_match_rule_first_rule_wins_and_error_rows_open_nothing():
    rules = load_case_rules()
    urgent = {"item_id": "1", "sentiment": "negative", "confidence": 0.95, "urgency_level": "high",
              "topics": [], "error": None}  # fmt: skip
    assert match_rule(urgent, rules)[0].name == "urgent"
    assert match_rule({**urgent, "urgency_level": "none", "confidence": 0.5}, rules) is None
    assert match_rule({**urgent, "error": "empty text"}, rules) is None
    billing = {**urgent, "urgency_level": "none", "confidence": 0.6,
               "topics": [{"topic": "refund_return", "polarity": "negative", "score": 0.8}]}  # fmt: skip
    rule, topic = match_rule(billing, rules)
    assert (rule.name, topic, rules.team_for(topic)) == (
        "billing_complaint",
        "refund_return",
        "billing",
    )


def test_detractor_opens_a_case_routed_by_topic(store):
    topics = [{"topic": "delivery", "polarity": "negative", "score": 0.9}]
    ingest(store, [row("a", "c1", p_neg=0.6, score=3, topics=topics),
                   row("b", "c2", p_neg=0.6, score=9)], score=True)  # fmt: skip
    (case,) = all_cases(store)
    assert (case["item_id"], case["reason"], case["team"], case["priority"]) == (
        "a",
        "detractor",
        "logistics",
        "p2",
    )
    assert case["customer_id"] == "c1" and case["due_at"] - case["opened_at"] == dt.timedelta(
        hours=24
    )


def test_one_open_case_per_customer_and_reason_and_resend_opens_nothing(store):
    ingest(store, [row("m1", "c1", level="high", urgency=0.9)])
    ingest(store, [row("m2", "c1", level="high", urgency=0.9)])  # same customer, same reason
    ingest(store, [row("m1", "c1", level="high", urgency=0.9)])  # a resend of m1
    ingest(store, [row("m3", "c2", level="high", urgency=0.9)])  # another customer
    found = all_cases(store)
    assert [c["customer_id"] for c in found] == ["c1", "c2"]
    assert found[0]["item_count"] == 2
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(CASE_ITEMS)).scalar_one() == 3


def test_items_without_a_customer_open_one_case_each(store):
    ingest(store, [row("x1", None, level="high"), row("x2", None, level="high")])
    assert [c["item_id"] for c in all_cases(store)] == ["x1", "x2"]


def test_every_status_change_is_recorded_and_closing_needs_cause(store):
    ingest(store, [row("m1", "c1", level="high")])
    (case,) = all_cases(store)
    t0 = case["opened_at"]
    with store.engine.begin() as c:
        cases.assign(c, case["id"], "sara", actor="lead", now=t0)
        cases.change_status(
            c, case["id"], "contacted", actor="sara", now=t0 + dt.timedelta(hours=1)
        )
        cases.comment(
            c, case["id"], "called, refund promised", actor="sara", now=t0 + dt.timedelta(hours=2)
        )
        with pytest.raises(CaseError, match="root_cause"):
            cases.change_status(c, case["id"], "closed", now=t0 + dt.timedelta(hours=3))
        with pytest.raises(CaseError, match="unknown status 'done'"):
            cases.change_status(c, case["id"], "done")
        cases.change_status(c, case["id"], "closed", root_cause="courier lost parcel",
                            resolved=True, now=t0 + dt.timedelta(hours=5))  # fmt: skip
        detail = cases.get_case(c, case["id"], now=t0 + dt.timedelta(hours=6))
    kinds = [(e["kind"], e["from_status"], e["to_status"]) for e in detail["events"]]
    assert kinds[1:] == [("assigned", None, None), ("status", "open", "contacted"),
                         ("comment", None, None), ("status", "contacted", "closed")]  # fmt: skip
    assert detail["first_response_at"] == (t0 + dt.timedelta(hours=1)).isoformat(timespec="seconds")
    assert detail["resolved"] is True and detail["root_cause"] == "courier lost parcel"
    assert detail["feedback"][0]["item_id"] == "m1"
    # Closed: the customer's next urgent message opens a new case.
    ingest(store, [row("m9", "c1", level="high")])
    assert [c["is_open"] for c in all_cases(store)] == [False, True]


def test_overdue_cases_escalate_once_with_webhook(store, monkeypatch):
    posted = []
    monkeypatch.setattr(
        alerts, "post_json", lambda url, payload, timeout=5.0: posted.append(payload)
    )
    ingest(store, [row("m1", "c1", level="high"), row("m2", "c2", p_neg=0.95)])
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=5)
    escalated = alerts.escalate_and_notify(store, url="http://hook", now=later)
    # p1 (4 h) is overdue after 5 h, p3 (48 h) is not.
    assert [e["item_id"] for e in escalated] == ["m1"]
    assert posted[0]["case_escalated"]["escalation_owner"] == "cx_lead"
    assert alerts.escalate_and_notify(store, url="http://hook", now=later) == []
    with store.engine.connect() as c:
        listed = cases.list_cases(c, CaseFilter(open_only=True), now=later)["cases"]
        kinds = c.execute(select(CASE_EVENTS.c.kind).order_by(CASE_EVENTS.c.id)).scalars().all()
    assert [x["item_id"] for x in listed] == ["m1", "m2"] and listed[0]["overdue"]
    assert kinds.count("escalated") == 1


def test_list_puts_overdue_first_then_priority(store):
    rules = load_case_rules()
    records = [
        {"item_id": "low", "customer_id": "a", "sentiment": "negative", "confidence": 0.95,
         "urgency_level": "none", "topics": [], "error": None},
        {"item_id": "high", "customer_id": "b", "sentiment": "negative", "confidence": 0.95,
         "urgency_level": "high", "topics": [], "error": None},
    ]  # fmt: skip
    with store.engine.begin() as c:
        cases.open_cases(c, "shop", records[:1], now=T0 - dt.timedelta(days=3), rules=rules)
        cases.open_cases(c, "shop", records[1:], now=T0, rules=rules)
        listed = cases.list_cases(c, now=T0 + dt.timedelta(hours=1))["cases"]
    assert [x["item_id"] for x in listed] == ["low", "high"]  # the old p3 is overdue
    assert "item_id" in cases.cases_csv(listed).splitlines()[0]


def test_recovery_compares_resolved_with_ignored_customers(store):
    ingest(store, [row("r1", "happy", level="high", p_neg=0.9),
                   row("i1", "ignored", level="high", p_neg=0.9)])  # fmt: skip
    found = {c["customer_id"]: c["id"] for c in all_cases(store)}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.engine.begin() as c:
        cases.change_status(c, found["happy"], "resolved", now=now)
    later = (now + dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    ingest(store, [row("r2", "happy", sentiment="positive", p_neg=0.9, when=later),
                   row("i2", "ignored", p_neg=0.9, when=later)])  # fmt: skip
    with store.engine.connect() as c:
        m = recovery_metrics(c, "shop")
    assert m["recovered"]["wrote_again"] == 1 and m["not_followed_up"]["wrote_again"] == 1
    assert m["recovered"]["sentiment_change"] == pytest.approx(0.9 - 0.05 - (0.05 - 0.9))
    assert m["not_followed_up"]["sentiment_change"] == pytest.approx(0.0)
    assert m["difference"]["sentiment_change"] > 1.5


def _recovery_by_hand(connection, dataset: str, group: str) -> dict:
    """The recovery of one group ("recovered" or "not_followed_up") read case by case: each
    customer's first case (by opening time, then id) whose opening item is theirs and classified,
    against the mean of their classified items after the case's resolution (or opening) and after
    that item."""
    after_of = "resolved_at" if group == "recovered" else "opened_at"
    cases_ = [
        dict(r)
        for r in connection.execute(
            select(CASES).where(CASES.c.dataset == dataset).order_by(CASES.c.id)
        ).mappings()
    ]
    mine = [
        x
        for x in cases_
        if x["customer_id"]
        and (
            x["resolved_at"] is not None if group == "recovered" else x["first_response_at"] is None
        )
    ]
    items = [
        dict(r)
        for r in connection.execute(
            select(ITEMS).where(ITEMS.c.dataset == dataset, ITEMS.c.error.is_(None))
        ).mappings()
    ]
    by_id = {(i["customer_id"], i["item_id"]): i for i in items}
    changes, score_changes, returned, seen = [], [], 0, set()
    for x in sorted(mine, key=lambda x: (x["opened_at"], x["id"])):
        first = by_id.get((x["customer_id"], x["item_id"]))
        if x["customer_id"] in seen or first is None:
            continue
        seen.add(x["customer_id"])
        since = max(x[after_of], first["created_at"])
        later = [
            i
            for i in items
            if i["customer_id"] == x["customer_id"]
            and i["created_at"] > since
            and i["item_id"] != x["item_id"]
        ]
        if not later:
            continue
        returned += 1
        moods = [i["p_positive"] - i["p_negative"] for i in later if i["p_positive"] is not None]
        if first["p_positive"] is not None and moods:
            changes.append(statistics.fmean(moods) - (first["p_positive"] - first["p_negative"]))
        scored = [i["score"] for i in later if i["score"] is not None]
        if first["score"] is not None and scored:
            score_changes.append(statistics.fmean(scored) - first["score"])
    return {
        "customers": len({x["customer_id"] for x in mine}),
        "wrote_again": returned,
        "sentiment_change": statistics.fmean(changes) if changes else None,
        "score_change": statistics.fmean(score_changes) if score_changes else None,
        "n_sentiment": len(changes),
        "n_score": len(score_changes),
    }


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_recovery_sums_up_each_customers_history_as_read_by_hand(kind, tmp_path):
    rng = np.random.default_rng(12)
    generator = database_url(kind, tmp_path)
    store = open_store(next(generator))

    def store_rows(rows, now):
        frame = pd.DataFrame(rows)
        records = records_from_frame(frame, score_col="nps", score_kind="nps")
        with store.engine.begin() as c:
            ingest_records(c, records, dataset="shop", now=now)

    def rows(prefix, n, start, days, **extra):
        out = []
        for k in range(n):
            customer = None if k % 9 == 0 else f"c{int(rng.integers(0, 25))}"
            when = start + dt.timedelta(hours=int(rng.integers(0, 24 * days)))
            out.append(
                {
                    **row(f"{prefix}{k}", customer, sentiment=str(rng.choice(["negative", "positive"])),
                          p_neg=round(float(rng.uniform(0.5, 0.99)), 6),
                          level=str(rng.choice(["high", "medium", "none"])),
                          score=int(rng.integers(0, 11)) if k % 3 else None,
                          when=when.strftime("%Y-%m-%d %H:%M")),
                    **extra,
                }
            )  # fmt: skip
        for r in out[::7]:
            r.update(error="empty text", sentiment=None, p_positive=None, p_negative=None)
        return out

    try:
        store_rows(rows("a", 120, T0 - dt.timedelta(days=6), 6), now=T0)
        store_rows(rows("b", 40, T0 - dt.timedelta(days=3), 3), now=T0)  # same opening time
        found = all_cases(store)
        with store.engine.begin() as c:
            for x in found[::3]:
                cases.change_status(c, x["id"], "resolved", now=T0 + dt.timedelta(days=1))
            for x in found[1::4]:
                cases.change_status(c, x["id"], "contacted", now=T0 + dt.timedelta(hours=5))
        # Later feedback (some written before a resolution), and feedback long before.
        store_rows(rows("l", 150, T0 + dt.timedelta(hours=12), 6), now=T0 + dt.timedelta(days=7))
        store_rows(rows("o", 40, T0 - dt.timedelta(days=40), 10), now=T0 + dt.timedelta(days=7))
        with store.engine.connect() as c:
            got = recovery_metrics(c, "shop")
            for group in ("recovered", "not_followed_up"):
                expected = _recovery_by_hand(c, "shop", group)
                assert got[group] == pytest.approx(expected, rel=1e-12), group
                assert got[group]["wrote_again"] >= 3 and got[group]["n_score"] >= 1
    finally:
        store.close()
        generator.close()
