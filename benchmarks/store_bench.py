"""Feedback store benchmark: ingest rate (items/s) into SQLite and PostgreSQL, and the latency
(p50 / p95) of the dashboard's queries with N items stored.

    python benchmarks/store_bench.py --n 100000
    python benchmarks/store_bench.py --n 1000000 --backends postgresql

Items are synthetic classified rows (a year of dates, 3 languages, 5 channels, 8 products, a
`tier` dimension missing on a tenth, NPS scores on a third, 0-3 topics each), ingested through
`ingest_frames` in batches of `--batch` rows, one transaction each (the next batch made and
validated while the one before is written; `--one-at-a-time`: one `ingest_frame` call per batch,
as `/v1/classify` does). The
PostgreSQL run uses a fresh schema on `--pg-url` (dropped afterwards); SQLite a fresh file.
Targets: ingest >= 5,000 items/s (PostgreSQL) and >= 10,000 (SQLite); every view, alerts and
text search included, p95 <= 300 ms at 1M items in PostgreSQL. Items are generated and written
one batch at a time, so 1M items need no more memory than one batch. `--explain` prints
the plan of every statement each view runs (PostgreSQL's EXPLAIN ANALYZE, SQLite's EXPLAIN QUERY
PLAN: how the indexes were chosen); `--markdown` prints the table for the README. A view is timed
`--repeats` times, or for `--view-seconds` (at least 3 runs) when it is slower.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _store_runs import PG_URL, backends, on_each_backend, timed  # noqa: E402

from cxnlp.feedback import queries as Q  # noqa: E402
from cxnlp.feedback.db import open_store  # noqa: E402
from cxnlp.feedback.ingest import ingest_frame, ingest_frames  # noqa: E402

TOPICS = [
    "delivery", "price", "product_quality", "customer_support", "staff_behavior",
    "wait_time", "app_website", "refunds", "payment", "packaging",
]  # fmt: skip
CHANNELS = ["app", "web", "survey", "google_maps", "call_center"]
PRODUCTS = [f"product_{i}" for i in range(8)]


def synthetic(n: int, offset: int, rng: np.random.Generator) -> pd.DataFrame:
    start = np.datetime64("2025-10-01")
    days = rng.integers(0, 365, n)
    sentiments = rng.choice(["negative", "neutral", "positive"], n, p=[0.3, 0.25, 0.45])
    p = rng.dirichlet([1, 1, 1], n).round(6)
    combos = []
    for _ in range(64):
        k = int(rng.integers(0, 4))
        picked = rng.choice(TOPICS, k, replace=False)
        combos.append(
            json.dumps(
                [
                    {"topic": str(t), "polarity": str(rng.choice(["negative", "positive"])),
                     "score": 0.9}
                    for t in picked
                ]
            )
        )  # fmt: skip
    scores = rng.integers(0, 11, n).astype(float)
    scores[rng.random(n) > 0.33] = np.nan
    return pd.DataFrame(
        {
            "id": [f"i{offset + i}" for i in range(n)],
            "created_at": (start + days).astype(str),
            "channel": rng.choice(CHANNELS, n),
            "product": rng.choice(PRODUCTS, n),
            "tier": rng.choice(["gold", "silver", "bronze", ""], n, p=[0.3, 0.3, 0.3, 0.1]),
            "text": [
                f"synthetic review number {offset + i} about the order"
                + (" پیک دیر رسید" if (offset + i) % 50 == 0 else "")
                for i in range(n)
            ],
            "score": scores,
            "sentiment": sentiments,
            "p_positive": p[:, 2],
            "p_neutral": p[:, 1],
            "p_negative": p[:, 0],
            "confidence": p.max(axis=1),
            "lang": rng.choice(["fa", "ar", "en"], n),
            "topics": [combos[i] for i in rng.integers(0, 64, n)],
            "error": None,
        }
    )


def views(last_day: dt.date) -> dict[str, callable]:
    month = Q.StatsFilter(start=last_day - dt.timedelta(days=30), end=last_day)
    app_fa = Q.StatsFilter(channel=["app"], lang=["fa"])
    tier = Q.StatsFilter(dims={"tier": ["gold"]})
    return {
        "cards (all)": lambda c: Q.summary(c, Q.StatsFilter()),
        "cards (channel+lang)": lambda c: Q.summary(c, app_fa),
        "cards (last 30 days)": lambda c: Q.summary(c, month),
        "cards (topic)": lambda c: Q.summary(c, Q.StatsFilter(topic=["delivery"])),
        "trend by week": lambda c: Q.trend(c, Q.StatsFilter(), "week"),
        "trend by day": lambda c: Q.trend(c, Q.StatsFilter(), "day"),
        "trend by month (channel)": lambda c: Q.trend(c, Q.StatsFilter(channel=["web"]), "month"),
        "topics": lambda c: Q.topics(c, Q.StatsFilter()),
        "topics (last 30 days)": lambda c: Q.topics(c, month),
        "topic x channel": lambda c: Q.topic_by(c, Q.StatsFilter(), "channel"),
        "topics (one channel)": lambda c: Q.topics(c, Q.StatsFilter(channel=["web"])),
        "alerts by week": lambda c: Q.alerts(c, Q.StatsFilter(), "week"),
        "options": lambda c: Q.options(c, Q.StatsFilter()),
        "drill-down page (topic+week)": lambda c: Q.items(
            c, Q.StatsFilter(topic=["delivery"], start=last_day - dt.timedelta(days=6), end=last_day), 25
        ),
        "drill-down page (topic+old week)": lambda c: Q.items(
            c, Q.StatsFilter(topic=["delivery"], start=last_day - dt.timedelta(days=300), end=last_day - dt.timedelta(days=294)), 25
        ),
        "drill-down page (all)": lambda c: Q.items(c, Q.StatsFilter(), 25),
        "cards (dimension tier)": lambda c: Q.summary(c, tier),
        "trend by week (dimension tier)": lambda c: Q.trend(c, tier, "week"),
        "topics (dimension tier)": lambda c: Q.topics(c, tier),
        "topic x channel (dimension tier)": lambda c: Q.topic_by(c, tier, "channel"),
        "alerts by week (dimension tier)": lambda c: Q.alerts(c, tier, "week"),
        "drill-down page (dimension tier)": lambda c: Q.items(c, tier, 25),
        "cards (dimension tier+channel+lang)": lambda c: Q.summary(c, Q.StatsFilter(dims={"tier": ["gold"]}, channel=["app"], lang=["fa"])),
        # Items without the dimension: all items' aggregates minus every tier's.
        "cards (tier or none)": lambda c: Q.summary(c, Q.StatsFilter(dims={"tier": ["gold", Q.MISSING]})),
        "search (text index)": lambda c: Q.items(c, Q.StatsFilter(q="number 4242"), 25),
        "search (Persian word)": lambda c: Q.items(c, Q.StatsFilter(q="دیر رسید"), 25),
        "alerts by week (BH)": lambda c: Q.alerts(c, Q.StatsFilter(), "week", p_adjust="benjamini-hochberg"),
    }  # fmt: skip


def explain(connection, view) -> None:
    """The plan of every statement `view` runs: PostgreSQL's EXPLAIN ANALYZE (with timings),
    SQLite's EXPLAIN QUERY PLAN."""
    from sqlalchemy import event

    statements: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        view(connection)
    finally:
        event.remove(connection, "before_cursor_execute", record)
    postgres = connection.dialect.name == "postgresql"
    for statement, parameters in statements:
        prefix = "EXPLAIN ANALYZE " if postgres else "EXPLAIN QUERY PLAN "
        plan = connection.exec_driver_sql(prefix + statement, parameters).all()
        lines = [r[0] for r in plan] if postgres else [f"{r[1]:>4} {r[3]}" for r in plan]
        print("    " + "\n    ".join(lines))


def run(
    backend: str,
    url: str,
    n: int,
    batch: int,
    repeats: int,
    seed: int,
    show_plans: bool = False,
    markdown: bool = False,
    budget_s: float = 10.0,
    one_at_a_time: bool = False,
) -> None:
    began = time.perf_counter()
    store = open_store(url)
    rng = np.random.default_rng(seed)
    ingest_seconds = ingest_cpu = made_seconds = 0.0
    if one_at_a_time:  # `ingest_frame` per batch, each batch made outside the clock
        done = 0
        while done < n:
            size = min(batch, n - done)
            frame = synthetic(size, done, rng)
            started, cpu = time.perf_counter(), time.process_time()
            ingest_frame(frame, dataset="bench", store=store, score_col="score", score_kind="nps")
            ingest_seconds += time.perf_counter() - started
            ingest_cpu += time.process_time() - cpu
            done += size
            if done % (batch * 10) == 0 or done == n:
                print(
                    f"  {backend}: {done:,} stored, {done / ingest_seconds:,.0f} items/s",
                    flush=True,
                )
    else:  # `ingest_frames`: the next batch made and validated while the one before is written

        def frames():
            nonlocal made_seconds
            for done in range(0, n, batch):
                if done and done % (batch * 10) == 0:
                    print(f"  {backend}: {done:,} handed over", flush=True)
                started = time.perf_counter()
                frame = synthetic(min(batch, n - done), done, rng)
                made_seconds += time.perf_counter() - started
                yield frame

        started, cpu = time.perf_counter(), time.process_time()
        ingest_frames(frames(), dataset="bench", store=store, score_col="score", score_kind="nps")
        ingest_seconds = time.perf_counter() - started
        ingest_cpu = time.process_time() - cpu
    # A re-sent batch: the same ids again (updates, not duplicates).
    frame = synthetic(min(batch, n), 0, np.random.default_rng(seed + 1))
    started = time.perf_counter()
    ingest_frame(frame, dataset="bench", store=store, score_col="score", score_kind="nps")
    update_rate = len(frame) / (time.perf_counter() - started)
    if store.dialect == "postgresql":
        with store.engine.begin() as c:
            c.exec_driver_sql("ANALYZE")
    with store.engine.connect() as c:
        total = Q.summary(c, Q.StatsFilter())
        assert total["n"] == n, (total["n"], n)
        last = dt.date.fromisoformat(Q.options(c, Q.StatsFilter())["last_day"])
        how = (
            "ingest_frame per batch"
            if one_at_a_time
            else f"ingest_frames, pipelined; the clock includes {made_seconds:.0f} s of making frames"
        )
        print(f"\n{backend}: {n:,} items, ingest {n / ingest_seconds:,.0f} items/s "
              f"(new items, batches of {batch:,}, {how}; {n / ingest_cpu:,.0f} items per CPU-second of "
              f"this process); re-sent batch {update_rate:,.0f} items/s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'view':40s} {'p50 ms':>9s} {'p95 ms':>9s} {'runs':>5s}")
        table = []
        views_started = time.perf_counter()
        for name, view in views(last).items():
            if show_plans:
                print(f"  -- {name}")
                explain(c, view)
            p50, p95, runs = timed(view, c, repeats, budget_s)
            print(f"{name:40s} {p50:9.1f} {p95:9.1f} {runs:5d}", flush=True)
            table.append((name, p50, p95))
        print(
            f"{backend}: ingest {ingest_seconds:.0f} s, views {time.perf_counter() - views_started:.0f} s, "
            f"run {time.perf_counter() - began:.0f} s in all",
            flush=True,
        )
        if markdown:
            print(f"\n| view ({backend}, {n:,} items) | p50 ms | p95 ms |\n|---|---:|---:|")
            for name, p50, p95 in table:
                print(f"| {name} | {p50:.1f} | {p95:.1f} |")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="items to store")
    parser.add_argument("--backends", type=backends, default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--batch", type=int, default=10_000, help="items per transaction")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per view")
    parser.add_argument(
        "--view-seconds",
        type=float,
        default=10.0,
        help="stop timing a view after this many seconds (at least 3 runs): a slow view at 1M "
        "items does not hold the run up",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--explain", action="store_true", help="print each view's query plans")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="ingest with one ingest_frame call per batch (each frame made outside the clock), "
        "as before ingest_frames pipelined them",
    )
    args = parser.parse_args()
    extra = {
        "show_plans": args.explain,
        "markdown": args.markdown,
        "budget_s": args.view_seconds,
        "one_at_a_time": args.one_at_a_time,
    }

    def one(backend: str, url: str) -> None:
        run(backend, url, args.n, args.batch, args.repeats, args.seed, **extra)

    on_each_backend(args.backends, args.pg_url, "bench", one)


if __name__ == "__main__":
    main()
