"""What the dashboard and `/v1/stats` read from the feedback store: every count and sum is a SQL
aggregate (GROUP BY in the database, over the per-day aggregates where the filter allows, see
`cxnlp.feedback.facts`) under one `StatsFilter`; every number made from them is computed by the
statistics core of `cxnlp.report` (`segments`, `scores`, `topics`, `alerts`), the same code
`cxnlp report` and `/v1/analyze` run, so the three give the same digits on the same rows.

Shares are of classified items (items whose classification failed count as `errors`).

Views: `summary`, `trend`, `topics`, `topic_by`, `options` here; `items` / `iter_items` in
`cxnlp.feedback.item_queries`; `alerts` in `cxnlp.feedback.alert_queries`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from cxnlp.feedback.alert_queries import alerts
from cxnlp.feedback.facts import (
    GROUPABLE,
    MISSING,
    StatsFilter,
    as_date,
    classified,
    fetch,
    floor_period,
    next_start,
    period_bounds,
    period_start,
    source,
    stat_facts,
    sums,
    topic_facts,
)
from cxnlp.feedback.item_queries import ITEM_COLUMNS, items, iter_items
from cxnlp.feedback.models import DAILY, DIMENSIONS, STAT_MEASURES, TOPIC_TOTALS, TOTALS
from cxnlp.feedback.scales import MIXED, Scale, view_scales
from cxnlp.labels import SENTIMENTS, probability_column
from cxnlp.report.scores import SCORE_MEASURES, SCORE_RANGES, score_from_sums
from cxnlp.report.segments import pcc_from_sums, sentiment_numbers
from cxnlp.report.topics import rank_topics, topic_numbers

__all__ = [
    "ITEM_COLUMNS",
    "MISSING",
    "StatsFilter",
    "alerts",
    "items",
    "iter_items",
    "options",
    "period_bounds",
    "segment",
    "summary",
    "topic_by",
    "topics",
    "trend",
]


def _on_scale(result: dict[str, Any], scale: Scale | str) -> dict[str, Any]:
    """A score's numbers with the scale its answers are on (as `cxnlp report` shows it); where
    the datasets of the view declare different scales, without a mean (it would mix them)."""
    if scale == MIXED:
        for key in ("mean", "mean_ci95", "sd") if result["kind"] == "csat" else ("mean", "sd"):
            result.pop(key, None)
        if result["kind"] == "ces":
            result.pop("ci95", None)
        result["note"] = "the datasets' answers are on different scales: no mean"
    elif scale is not None:
        result["scale"] = list(scale)
    return result


def segment(
    rows: Sequence[dict[str, Any]],
    confidence: float = 0.95,
    scales: Mapping[str, Scale | str] | None = None,
) -> dict[str, Any]:
    """Headline numbers of grouped rows, each with `sentiment`, `score_kind` and the
    `STAT_MEASURES` sums: the counts are added up here, every number is the report's. `scales`
    are the score kinds' scales (`cxnlp.feedback.scales.view_scales`; default the usual ones)."""
    scales = scales or {}
    counts = dict.fromkeys(SENTIMENTS, 0)
    errors = 0
    p_sums = dict.fromkeys(SENTIMENTS, 0)  # millionths: exact, whatever order rows come in
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(STAT_MEASURES, 0))
    for row in rows:
        sentiment = row["sentiment"]
        if sentiment in counts:
            counts[sentiment] += int(row["n"])
            for s in SENTIMENTS:
                p_sums[s] += int(row[f"{probability_column(s)}_sum"])
        else:
            errors += int(row["n"])
        if row["score_kind"] and row["score_n"]:
            for m in SCORE_MEASURES:
                kinds[row["score_kind"]][m] += row[m]
    n = sum(counts.values())
    return {
        "n": n,
        "errors": errors,
        "counts": counts,
        **sentiment_numbers(counts, confidence),
        "pcc": pcc_from_sums(p_sums) if n else None,
        "scores": {
            k: _on_scale(score_from_sums(k, v, confidence), scales.get(k, SCORE_RANGES[k]))
            for k, v in sorted(kinds.items())
        },
    }


def summary(connection: Connection, f: StatsFilter) -> dict[str, Any]:
    """Headline cards: volume, errors, sentiment counts and shares with Wilson intervals, net
    sentiment, positive:negative, PCC shares, and NPS / CSAT / CES per score kind stored."""
    facts = stat_facts(f, connection)
    fq = facts.query
    rows = fetch(
        connection,
        select(fq.c.sentiment, fq.c.score_kind, *sums(fq)).group_by(
            fq.c.sentiment, fq.c.score_kind
        ),
    )
    scales = view_scales(connection, f.dataset)
    return {"filter": f.to_dict(), "source": source(facts), **segment(rows, scales=scales)}


def trend(connection: Connection, f: StatsFilter, period: str = "week") -> dict[str, Any]:
    """The headline numbers per period (every period from the first to the last, empty ones
    included)."""
    dialect = connection.dialect.name
    facts = stat_facts(f, connection)
    fq = facts.query
    start = period_start(fq.c.day, period, dialect).label("period_start")
    rows = fetch(
        connection,
        select(start, fq.c.sentiment, fq.c.score_kind, *sums(fq)).group_by(
            start, fq.c.sentiment, fq.c.score_kind
        ),
    )
    by_start: dict[dt.date, list[dict]] = defaultdict(list)
    for row in rows:
        by_start[as_date(row["period_start"])].append(row)
    periods = []
    scales = view_scales(connection, f.dataset)
    if by_start:
        first, last = min(by_start), max(by_start)
        if f.start:
            first = min(first, floor_period(f.start, period))
        if f.end:
            last = max(last, floor_period(f.end, period))
        day = first
        while day <= last and len(periods) < 5000:
            numbers = segment(by_start.get(day, []), scales=scales)
            periods.append({**period_bounds(day, period), **numbers})
            day = next_start(day, period)
    return {"filter": f.to_dict(), "period": period, "source": source(facts), "periods": periods}


def _mention_rows(connection: Connection, f: StatsFilter, *extra: str) -> tuple[list[dict], bool]:
    facts = topic_facts(f, connection)
    fq = facts.query
    cols = [fq.c.topic, fq.c.polarity, *(fq.c[e] for e in extra)]
    rows = fetch(
        connection,
        select(*cols, func.sum(fq.c.n).label("n")).group_by(*cols),
    )
    return rows, facts.rollup


def topics(
    connection: Connection, f: StatsFilter, min_mentions: int = 5, confidence: float = 0.95
) -> dict[str, Any]:
    """Every topic under `f`: mentions, share of classified items, polarity split, negative share
    (of its mentions), with Wilson intervals; ranked by volume and by negative share (topics with
    at least `min_mentions`)."""
    base = summary(connection, f)
    n = base["n"]
    rows, rollup = _mention_rows(connection, classified(f))
    polarity: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SENTIMENTS, 0))
    for row in rows:
        if row["polarity"] in SENTIMENTS:
            polarity[row["topic"]][row["polarity"]] += int(row["n"])
    items = [topic_numbers(name, split, n, confidence) for name, split in polarity.items()]
    ranked = rank_topics(items, min_mentions)
    return {
        "filter": f.to_dict(),
        "n": n,
        "source": "daily aggregates" if rollup else "items",
        **ranked,
    }


def topic_by(connection: Connection, f: StatsFilter, column: str = "channel") -> dict[str, Any]:
    """Topic x `column` (lang, channel, product, sentiment, dataset or any stored dimension): for
    each cell the mentions, the share of that column value's classified items, and the negative
    share of the mentions."""
    f = classified(f)
    facts = topic_facts(f, connection, group=column)
    fq = facts.query
    group = fq.c[column] if column in GROUPABLE else fq.c.grp
    rows = fetch(
        connection,
        select(
            fq.c.topic, group.label("value"), fq.c.polarity, func.sum(fq.c.n).label("n")
        ).group_by(fq.c.topic, group, fq.c.polarity),
    )
    stat = stat_facts(f, connection, group=column)
    sq = stat.query
    value_col = sq.c[column] if column in GROUPABLE else sq.c.grp
    totals = {
        (r["value"] or MISSING): int(r["n"])
        for r in fetch(
            connection,
            select(value_col.label("value"), func.sum(sq.c.n).label("n")).group_by(value_col),
        )
    }
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(SENTIMENTS, 0))
    for row in rows:
        if row["polarity"] in SENTIMENTS:
            cells[(row["topic"], row["value"] or MISSING)][row["polarity"]] += int(row["n"])
    out = []
    for (topic, value), split in sorted(cells.items()):
        mentions = sum(split.values())
        total = totals.get(value, 0)
        out.append(
            {
                "topic": topic,
                "value": value,
                "mentions": mentions,
                "share": mentions / total if total else None,
                "negative_share": split["negative"] / mentions,
                "polarity": split,
            }
        )
    return {
        "filter": f.to_dict(),
        "column": column,
        "source": source(facts),
        "values": sorted(totals, key=lambda v: (-totals[v], v)),
        "totals": totals,
        "cells": out,
    }


def _menu(connection: Connection, f: StatsFilter, key: str) -> list[str]:
    where = [DIMENSIONS.c.dataset.in_(f.dataset)] if f.dataset else []
    query = (
        select(DIMENSIONS.c.value)
        .where(*where, DIMENSIONS.c.key == key)
        .distinct()
        .order_by(DIMENSIONS.c.value)
    )
    return [r[0] for r in connection.execute(query)]


def options(connection: Connection, f: StatsFilter) -> dict[str, Any]:
    """What the filter menus offer under the datasets of `f`: datasets, the date range,
    languages, channels, products, topics and the other stored dimensions with their values."""
    d = DAILY
    where = [d.c.dataset.in_(f.dataset)] if f.dataset else []
    datasets = [
        r[0]
        for r in connection.execute(select(TOTALS.c.dataset).distinct().order_by(TOTALS.c.dataset))
    ]
    totals_where = [TOTALS.c.dataset.in_(f.dataset)] if f.dataset else []
    first, last = connection.execute(
        select(func.min(TOTALS.c.day), func.max(TOTALS.c.day)).where(*totals_where)
    ).one()

    def distinct(column) -> list[str]:
        query = select(column).where(*where, column != "").distinct().order_by(column)
        return [r[0] for r in connection.execute(query)]

    t = TOPIC_TOTALS
    topic_where = [t.c.dataset.in_(f.dataset)] if f.dataset else []
    topics_found = [
        r[0]
        for r in connection.execute(
            select(t.c.topic).where(*topic_where).distinct().order_by(t.c.topic)
        )
    ]
    dims: dict[str, list[str]] = defaultdict(list)
    dim_where = [DIMENSIONS.c.dataset.in_(f.dataset)] if f.dataset else []
    for key, value in connection.execute(
        select(DIMENSIONS.c.key, DIMENSIONS.c.value)
        .where(*dim_where, DIMENSIONS.c.key.not_in(["channel", "product"]))
        .distinct()
        .order_by(DIMENSIONS.c.key, DIMENSIONS.c.value)
    ):
        if len(dims[key]) < 200:
            dims[key].append(value)
    return {
        "datasets": datasets,
        "first_day": as_date(first).isoformat() if first else None,
        "last_day": as_date(last).isoformat() if last else None,
        "lang": distinct(d.c.lang),
        "channel": _menu(connection, f, "channel"),
        "product": _menu(connection, f, "product"),
        "topic": topics_found,
        "dims": dict(dims),
    }
