"""Follow-up queue benchmark: with N items and M cases stored, the latency (p50 / p95) of listing
open cases by priority, and the time to open cases for a 10,000-item ingest.

    python benchmarks/cases_bench.py --items 1000000 --cases 50000
    python benchmarks/cases_bench.py --items 50000 --cases 5000 --backends sqlite   # a smoke run

The store is filled by bulk inserts straight into the item and case tables, through the store's
own writers (PostgreSQL COPY, SQLite's executemany; the queue reads neither the per-day aggregates
nor the topics, so building them through `ingest_frame` would only make the set-up slow): N
synthetic items, M cases on them (60% open, priorities p1-p3, a fifth of the open ones past their
deadline, one open case per customer and reason; the closed ones answered and resolved), their
links and opening events. Then:

- the queue views (`cxnlp.feedback.cases.list_cases`, 50 rows with the total), timed `--repeats`
  times each (or for `--view-seconds`, at least 3 runs): open cases by priority, overdue only,
  one team, one owner; a case with its feedback and its customer's history (the case page); the
  recovery metrics of the dataset (the cases page's outer loop);
- `open_cases` on `--ingest` new items (their rows stored first), as `ingest_records` calls it,
  in one transaction, timed; some of their customers already have an open case, so items join
  cases as well as open them; then the same items again, which must open and link nothing (a
  resend).

PostgreSQL runs in a fresh schema on `--pg-url` (dropped afterwards); SQLite in a fresh file.
Targets (issue 28): listing < 300 ms and opening cases for 10k items < 5 s at 1M items / 50k cases.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _store_runs import PG_URL, backends, on_each_backend, timed  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from cxnlp.feedback import cases as C  # noqa: E402
from cxnlp.feedback.db import open_store  # noqa: E402
from cxnlp.feedback.models import CASE_EVENTS, CASE_ITEMS, CASES, ITEMS  # noqa: E402
from cxnlp.feedback.recovery import recovery_metrics  # noqa: E402
from cxnlp.feedback.writers import writer_for  # noqa: E402

DATASET = "bench"
CHUNK = 10_000
TOPICS = ["delivery", "price", "billing_payment", "app_website", "customer_support", None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def item_rows(start: int, n: int, customers: int, rng: np.random.Generator) -> list[dict]:
    now = _now()
    created = [now - dt.timedelta(minutes=int(m)) for m in rng.integers(0, 525_600, n)]
    sentiment = rng.choice(["negative", "neutral", "positive"], n, p=[0.3, 0.25, 0.45])
    confidence = rng.uniform(0.4, 1.0, n).round(6)
    scored = rng.random(n) < 0.33
    score = rng.integers(0, 11, n)
    level = rng.choice(["none", "low", "medium", "high"], n, p=[0.9, 0.04, 0.03, 0.03])
    customer = rng.integers(0, customers, n)
    return [
        {
            "dataset": DATASET,
            "item_id": f"i{start + i}",
            "text": f"synthetic review number {start + i}",
            "lang": "en",
            "created_at": created[i],
            "day": created[i].date(),
            "channel": "app",
            "product": None,
            "dimensions": {},
            "score": float(score[i]) if scored[i] else None,
            "score_kind": "nps" if scored[i] else None,
            "sentiment": str(sentiment[i]),
            "p_positive": None,
            "p_neutral": None,
            "p_negative": None,
            "confidence": float(confidence[i]),
            "error": None,
            "model_name": "bench",
            "model_version": None,
            "ingested_at": now,
            "updated_at": now,
            "customer_id": f"c{customer[i]}",
            "urgency": 0.9 if level[i] == "high" else 0.5 if level[i] == "medium" else 0.0,
            "urgency_level": str(level[i]),
        }
        for i in range(n)
    ]


def records(rows: list[dict], rng: np.random.Generator) -> list[dict]:
    """What `ingest_records` hands `open_cases`: the stored fields and the topics."""
    out = []
    for row in rows:
        topic = TOPICS[int(rng.integers(0, len(TOPICS)))]
        topics = [] if topic is None else [{"topic": topic, "polarity": "negative", "score": 0.9}]
        out.append({**row, "topics": topics})
    return out


def fill(store, n_items: int, n_cases: int, customers: int, seed: int) -> None:
    """N items and M cases on the first M items' customers, by bulk inserts."""
    rng = np.random.default_rng(seed)
    rules = C.load_case_rules()
    names = list(rules.priorities)
    now = _now()
    with store.engine.begin() as c:
        writer = writer_for(c)
        # Case i is opened by item i: the customer it is about is that item's.
        owners: list[str] = []
        for start in range(0, n_items, CHUNK):
            rows = item_rows(start, min(CHUNK, n_items - start), customers, rng)
            owners += [r["customer_id"] for r in rows[: max(0, n_cases - start)]]
            writer.insert(ITEMS, rows)
            if (start // CHUNK) % 20 == 19:
                print(f"  {start + CHUNK:,} items", flush=True)
        teams = sorted(set(rules.teams.values()))
        reasons = [r.name for r in rules.rules]
        case_rows, seen = [], set()
        for i in range(n_cases):
            customer = owners[i]
            reason = reasons[int(rng.integers(0, len(reasons)))]
            is_open = rng.random() < 0.6 and (customer, reason) not in seen
            if is_open:
                seen.add((customer, reason))
            rank = int(rng.integers(0, len(names)))
            opened = now - dt.timedelta(hours=float(rng.uniform(0, 24 * 30)))
            due = opened + dt.timedelta(hours=rules.priorities[names[rank]])
            if is_open and rng.random() >= 0.2:  # most open cases are not overdue yet
                due = now + dt.timedelta(hours=float(rng.uniform(1, 48)))
            case_rows.append(
                {
                    "dataset": DATASET, "item_id": f"i{i}", "customer_id": customer,
                    "open_key": f"{customer}|{reason}" if is_open else None, "reason": reason,
                    "topic": None, "team": teams[i % len(teams)],
                    "owner": f"agent{int(rng.integers(0, 40))}" if rng.random() < 0.7 else None,
                    "escalation_owner": None, "priority": names[rank], "priority_rank": rank,
                    "status": "open" if is_open else "closed", "is_open": bool(is_open),
                    "sentiment": "negative", "urgency": None, "score": None, "item_count": 1,
                    "opened_at": opened, "due_at": due, "updated_at": opened,
                    "escalated": False, "root_cause": None if is_open else "bench",
                    "resolved": None if is_open else True,
                    "closed_at": None if is_open else opened + dt.timedelta(hours=5),
                    # A closed case was answered, and resolved when it was closed.
                    "first_response_at": None if is_open else opened + dt.timedelta(hours=1),
                    "resolved_at": None if is_open else opened + dt.timedelta(hours=5),
                }
            )  # fmt: skip
        for start in range(0, len(case_rows), CHUNK):
            writer.insert(CASES, case_rows[start : start + CHUNK])
        ids = c.execute(select(CASES.c.id, CASES.c.item_id, CASES.c.opened_at)).all()
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            writer.insert(
                CASE_ITEMS,
                [{"dataset": DATASET, "item_id": i, "case_id": k, "linked_at": t}
                 for k, i, t in part],
            )  # fmt: skip
            writer.insert(
                CASE_EVENTS,
                [{"case_id": k, "at": t, "kind": "opened", "actor": None, "from_status": None,
                  "to_status": "open", "note": None} for k, _, t in part],
            )  # fmt: skip


def run(backend: str, url: str, args: argparse.Namespace) -> None:
    began = time.perf_counter()
    store = open_store(url)
    customers = max(1, args.items // 5)
    started = time.perf_counter()
    fill(store, args.items, args.cases, customers, args.seed)
    if store.dialect == "postgresql":
        with store.engine.begin() as c:
            c.exec_driver_sql("ANALYZE")
    print(f"\n{backend}: {args.items:,} items, {args.cases:,} cases stored in "
          f"{time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    views = {
        "open cases by priority": C.CaseFilter(dataset=DATASET, open_only=True),
        "overdue cases": C.CaseFilter(dataset=DATASET, overdue_only=True),
        "open cases of one team": C.CaseFilter(dataset=DATASET, team="logistics", open_only=True),
        "open cases of one owner": C.CaseFilter(dataset=DATASET, owner="agent7", open_only=True),
    }
    print(f"{'queue view (50 rows + total)':40s} {'p50 ms':>9s} {'p95 ms':>9s} {'runs':>5s}")
    with store.engine.connect() as c:
        calls = {
            name: lambda conn, f=f: C.list_cases(conn, f, limit=50) for name, f in views.items()
        }
        first = C.list_cases(c, views["open cases by priority"], limit=1)["cases"][0]
        calls["a case, its feedback and history"] = lambda conn: (
            C.get_case(conn, first["id"]),
            C.customer_history(conn, DATASET, first["customer_id"]),
        )
        calls["recovery metrics"] = lambda conn: recovery_metrics(conn, DATASET)
        for name, call in calls.items():
            p50, p95, runs = timed(call, c, args.repeats, args.view_seconds)
            print(f"{name:40s} {p50:9.1f} {p95:9.1f} {runs:5d}", flush=True)
    rng = np.random.default_rng(args.seed + 1)
    rows = item_rows(args.items, args.ingest, customers, rng)
    batch = records(rows, rng)
    with store.engine.begin() as c:
        for start in range(0, len(rows), CHUNK):
            writer_for(c).insert(ITEMS, rows[start : start + CHUNK])
    with store.engine.begin() as c:
        before = c.execute(select(func.count()).select_from(CASES)).scalar_one()
        linked = c.execute(select(func.count()).select_from(CASE_ITEMS)).scalar_one()
        started = time.perf_counter()
        counts = C.open_cases(c, DATASET, batch)
        seconds = time.perf_counter() - started
        linked = c.execute(select(func.count()).select_from(CASE_ITEMS)).scalar_one() - linked
    print(f"open_cases for {args.ingest:,} new items: {seconds:.2f} s ({counts['opened']:,} cases "
          f"opened, {linked:,} items put in cases, {counts['linked']:,} of them in cases open "
          "before)")  # fmt: skip
    with store.engine.begin() as c:
        started = time.perf_counter()
        again = C.open_cases(c, DATASET, batch)
        resend = time.perf_counter() - started
        after = c.execute(select(func.count()).select_from(CASES)).scalar_one()
    assert after == before + counts["opened"], (before, after, counts)
    assert again["opened"] == again["linked"] == 0, again
    print(f"the same {args.ingest:,} items again (a resend): {resend:.2f} s, nothing opened or "
          f"joined ({again['skipped']:,} skipped)")  # fmt: skip
    print(f"{backend}: run {time.perf_counter() - began:.0f} s in all", flush=True)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items stored")
    parser.add_argument("--cases", type=int, default=50_000, help="cases stored")
    parser.add_argument("--ingest", type=int, default=10_000, help="new items to open cases for")
    parser.add_argument("--backends", type=backends, default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per view")
    parser.add_argument(
        "--view-seconds", type=float, default=10.0, help="stop timing a view after this long"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.cases > args.items:
        parser.error("--cases cannot exceed --items (each case opens on an item)")
    on_each_backend(args.backends, args.pg_url, "cases", lambda b, url: run(b, url, args))


if __name__ == "__main__":
    main()
