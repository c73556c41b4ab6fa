"""What the dashboard and `/v1/stats` read from the feedback store: every number is a SQL
aggregate (GROUP BY in the database) under one `StatsFilter`.

Counts come from the per-day aggregates (`daily_stats`, `daily_topic_stats`) whenever the filter
only names columns they are keyed by (dataset, dates, language, channel, sentiment, and at most
one topic); a filter on another stored dimension or a text search reads the items
themselves. Both give the same numbers (the tests check it); the aggregates are just smaller.

Shares are of classified items (items whose classification failed count as `errors`), with 95%
Wilson intervals; NPS / CSAT / CES by `cxnlp.report.scores.score_from_sums`, as `cxnlp report` computes them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, Select

from cxnlp.feedback.models import (
    DAILY,
    DAILY_TOPICS,
    DIMENSIONS,
    ITEMS,
    STAT_MEASURES,
    TOPIC_TOTALS,
    TOPICS,
    TOTALS,
)
from cxnlp.io.validate import check_names
from cxnlp.labels import (
    OUTPUT_PROBABILITY_COLUMNS,
    SENTIMENTS,
    STORE_PERIODS,
    probability_column,
)
from cxnlp.report.alerts import share_test
from cxnlp.report.periods import last_complete
from cxnlp.report.scores import DETRACTOR_MAX, PROMOTER_MIN, SATISFIED_MIN, score_from_sums
from cxnlp.report.stats import holm_adjust, wilson_interval

MISSING = "(missing)"
# Columns the aggregates are keyed by; any other dimension is read from the items' JSON.
KEYED = ("lang", "channel", "sentiment")
GROUPABLE = ("lang", "channel", "sentiment", "dataset")
# Item columns a filter may name directly (the rest are `dims`).
FILTERABLE = ("lang", "channel", "product", "sentiment")


@dataclass
class StatsFilter:
    """The rows every view counts. Empty lists mean no restriction; several values of one
    field are alternatives (OR), fields combine with AND. `end` is inclusive. `dims` holds other
    stored dimensions ({"touchpoint": ["web"]}); `q` searches the texts (case-insensitive)."""

    dataset: list[str] = field(default_factory=list)
    start: dt.date | None = None
    end: dt.date | None = None
    lang: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    product: list[str] = field(default_factory=list)
    sentiment: list[str] = field(default_factory=list)
    topic: list[str] = field(default_factory=list)
    dims: dict[str, list[str]] = field(default_factory=dict)
    q: str | None = None

    def __post_init__(self) -> None:
        for name in ("channel", "product"):
            if name in self.dims:
                getattr(self, name).extend(self.dims.pop(name))
        bad = [s for s in self.sentiment if s not in SENTIMENTS]
        if bad:
            raise ValueError(f"unknown sentiment {bad[0]!r}; expected one of {list(SENTIMENTS)}")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        check_names(self.to_dict())  # a NUL or a lone surrogate: no database answers them

    def keyed_only(self, max_topics: int = 1) -> bool:
        """Whether the per-day aggregates can answer this filter."""
        return not self.dims and not self.q and not self.product and len(self.topic) <= max_topics

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "lang": self.lang,
            "channel": self.channel,
            "product": self.product,
            "sentiment": self.sentiment,
            "topic": self.topic,
            "dims": self.dims,
            "q": self.q,
        }


# --- fact sources ---------------------------------------------------------------------------


def _values_clause(column: ColumnElement, values: Sequence[str], blank: Any) -> ColumnElement:
    present = [v for v in values if v != MISSING]
    clauses = [column.in_(present)] if present else []
    if MISSING in values:
        clauses.append(column.is_(None) if blank is None else column == blank)
    return or_(*clauses)


def _rollup_where(table, f: StatsFilter) -> list[ColumnElement]:
    where = []
    if f.dataset:
        where.append(table.c.dataset.in_(f.dataset))
    if f.start:
        where.append(table.c.day >= f.start)
    if f.end:
        where.append(table.c.day <= f.end)
    for name in KEYED:
        values = getattr(f, name)
        if values:  # the totals tables are only chosen when lang and channel are not filtered
            where.append(_values_clause(table.c[name], values, ""))
    return where


def _fine(f: StatsFilter, group: str | None, fine: bool) -> bool:
    """Whether a view needs the aggregates by language and channel (else the totals do)."""
    return fine or bool(f.lang or f.channel) or group in ("lang", "channel")


def _rollup_keys(table, topic: bool = False) -> list[ColumnElement]:
    names = ("dataset", "day", *KEYED, "score_kind", *(("topic", "polarity") if topic else ()))
    return [table.c[k] if k in table.c else literal("", String).label(k) for k in names]


def _dimension(name: str, dialect: str) -> ColumnElement:
    if name in (*FILTERABLE, "dataset"):
        return ITEMS.c[name]
    if dialect == "postgresql":
        return ITEMS.c.dimensions.op("->>")(literal(name, String))
    return func.json_extract(ITEMS.c.dimensions, literal(f'$."{name}"', String))


def _search(q: str, dialect: str) -> ColumnElement:
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if dialect == "postgresql":
        return ITEMS.c.text.ilike(pattern, escape="\\")
    return func.lower(ITEMS.c.text).like(pattern.lower(), escape="\\")


def _items_where(f: StatsFilter, dialect: str) -> list[ColumnElement]:
    c = ITEMS.c
    where = []
    if f.dataset:
        where.append(c.dataset.in_(f.dataset))
    if f.start:
        where.append(c.day >= f.start)
    if f.end:
        where.append(c.day <= f.end)
    for name in FILTERABLE:
        values = getattr(f, name)
        if values:
            where.append(_values_clause(c[name], values, None))
    for name, values in f.dims.items():
        if values:
            where.append(_values_clause(_dimension(name, dialect), values, None))
    if f.topic:
        t = TOPICS.alias("filter_topics")
        where.append(exists().where(t.c.item_pk == c.pk, t.c.topic.in_(f.topic)))
    if f.q:
        where.append(_search(f.q, dialect))
    return where


def _micro(column: ColumnElement) -> ColumnElement:
    # As `cxnlp.feedback.ingest.micro`: millionths, rounded half away from zero in both databases
    # (probabilities are non-negative, so floor(x + 0.5)).
    return cast(func.floor(func.coalesce(column, 0.0) * 1_000_000 + 0.5), BigInteger)


def _item_measures() -> list[ColumnElement]:
    c = ITEMS.c
    scored = c.score.is_not(None)
    return [
        literal(1, Integer).label("n"),
        *(_micro(c[p]).label(f"{p}_sum") for p in OUTPUT_PROBABILITY_COLUMNS),
        case((scored, 1), else_=0).label("score_n"),
        func.coalesce(c.score, 0.0).label("score_sum"),
        func.coalesce(c.score * c.score, 0.0).label("score_sq_sum"),
        case((and_(c.score_kind == "nps", c.score >= PROMOTER_MIN), 1), else_=0).label("promoters"),
        case((and_(c.score_kind == "nps", c.score <= DETRACTOR_MAX), 1), else_=0).label(
            "detractors"
        ),
        case((and_(c.score_kind == "csat", c.score >= SATISFIED_MIN), 1), else_=0).label(
            "satisfied"
        ),
    ]


def _item_keys(dialect: str, group: str | None = None) -> list[ColumnElement]:
    c = ITEMS.c
    keys = [
        c.dataset,
        c.day,
        func.coalesce(c.lang, "").label("lang"),
        func.coalesce(c.channel, "").label("channel"),
        func.coalesce(c.sentiment, "").label("sentiment"),
        func.coalesce(c.score_kind, "").label("score_kind"),
    ]
    if group and group not in GROUPABLE:
        keys.append(func.coalesce(_dimension(group, dialect), "").label("grp"))
    return keys


@dataclass
class _Facts:
    """A subquery with the key columns and the STAT_MEASURES columns (one row per item, or per
    aggregate row), and whether it is the aggregates."""

    query: Any
    rollup: bool


def _stat_facts(
    f: StatsFilter, dialect: str, group: str | None = None, fine: bool = False
) -> _Facts:
    """One row per item (or per aggregate row) under `f`; `fine`: with lang and channel."""
    custom_group = group is not None and group not in GROUPABLE
    if f.keyed_only() and not custom_group:
        if _fine(f, group, fine):
            table = DAILY_TOPICS if f.topic else DAILY
        else:
            table = TOPIC_TOTALS if f.topic else TOTALS
        where = _rollup_where(table, f)
        if f.topic:
            where.append(table.c.topic == f.topic[0])
        q = select(*_rollup_keys(table), *(table.c[m] for m in STAT_MEASURES)).where(*where)
        return _Facts(q.subquery("facts"), True)
    q = select(*_item_keys(dialect, group), *_item_measures()).where(*_items_where(f, dialect))
    return _Facts(q.subquery("facts"), False)


def _topic_facts(f: StatsFilter, dialect: str, group: str | None = None) -> _Facts:
    """One row per (item, topic) (or per aggregate row) under `f`, with `topic` and `polarity`."""
    custom_group = group is not None and group not in GROUPABLE
    if f.keyed_only(max_topics=0) and not custom_group:
        t = DAILY_TOPICS if _fine(f, group, False) else TOPIC_TOTALS
        keys = _rollup_keys(t, topic=True)
        q = select(*keys, *(t.c[m] for m in STAT_MEASURES)).where(*_rollup_where(t, f))
        return _Facts(q.subquery("facts"), True)
    mention = TOPICS
    q = (
        select(
            *_item_keys(dialect, group),
            mention.c.topic,
            func.coalesce(mention.c.polarity, "").label("polarity"),
            *_item_measures(),
        )
        .select_from(ITEMS.join(mention, mention.c.item_pk == ITEMS.c.pk))
        .where(*_items_where(f, dialect))
    )
    return _Facts(q.subquery("facts"), False)


def _sums(facts) -> list[ColumnElement]:
    return [func.coalesce(func.sum(facts.c[m]), 0).label(m) for m in STAT_MEASURES]


def _period_start(column: ColumnElement, period: str, dialect: str) -> ColumnElement:
    if period not in STORE_PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {list(STORE_PERIODS)}")
    if period == "day":
        return column
    if dialect == "postgresql":
        return cast(func.date_trunc(period, column), Date)
    if period == "month":
        return func.strftime("%Y-%m-01", column)
    # SQLite: back to the Monday of the week (%w is 0 on Sunday).
    back = cast((cast(func.strftime("%w", column), Integer) + 6) % 7, String)
    return func.date(column, literal("-", String) + back + literal(" days", String))


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def period_bounds(start: dt.date, period: str) -> dict[str, str]:
    """The label, first and last day of the period that starts on `start`."""
    if period == "day":
        end, label = start, start.isoformat()
    elif period == "week":
        end = start + dt.timedelta(days=6)
        year, week, _ = start.isocalendar()
        label = f"{year}-W{week:02d}"
    else:
        following = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        end, label = following - dt.timedelta(days=1), start.strftime("%Y-%m")
    return {"period": label, "start": start.isoformat(), "end": end.isoformat()}


def _next_start(start: dt.date, period: str) -> dt.date:
    if period == "day":
        return start + dt.timedelta(days=1)
    if period == "week":
        return start + dt.timedelta(days=7)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _floor(day: dt.date, period: str) -> dt.date:
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


# --- numbers from sums ----------------------------------------------------------------------


def _segment(rows: Sequence[dict[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    """Headline numbers of grouped rows, each with `sentiment`, `score_kind` and the sums."""
    counts = dict.fromkeys(SENTIMENTS, 0)
    errors = 0
    p_sums = dict.fromkeys(SENTIMENTS, 0)  # millionths: exact, whatever order rows come in
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(STAT_MEASURES, 0.0))
    for row in rows:
        sentiment = row["sentiment"]
        if sentiment in counts:
            counts[sentiment] += int(row["n"])
            for s in SENTIMENTS:
                p_sums[s] += int(row[f"{probability_column(s)}_sum"])
        else:
            errors += int(row["n"])
        if row["score_kind"] and row["score_n"]:
            for m in STAT_MEASURES:
                kinds[row["score_kind"]][m] += float(row[m])
    n = sum(counts.values())
    shares = {s: counts[s] / n if n else None for s in SENTIMENTS}
    total_p = sum(p_sums.values())
    pcc = {s: p_sums[s] / total_p for s in SENTIMENTS} if n and total_p else None
    return {
        "n": n,
        "errors": errors,
        "counts": counts,
        "shares": shares,
        "ci95": {
            s: list(ci) if (ci := wilson_interval(counts[s], n, confidence)) else None
            for s in SENTIMENTS
        },
        "net_sentiment": shares["positive"] - shares["negative"] if n else None,
        "ratio_pos_neg": counts["positive"] / counts["negative"] if counts["negative"] else None,
        "pcc": pcc,
        "scores": {k: score_from_sums(k, v, confidence) for k, v in sorted(kinds.items())},
    }


def _rows(connection: Connection, query: Select) -> list[dict[str, Any]]:
    return [dict(r) for r in connection.execute(query).mappings()]


# --- views ----------------------------------------------------------------------------------


def summary(connection: Connection, f: StatsFilter) -> dict[str, Any]:
    """Headline cards: volume, errors, sentiment counts and shares with Wilson intervals, net
    sentiment, positive:negative, PCC shares, and NPS / CSAT / CES per score kind stored."""
    facts = _stat_facts(f, connection.dialect.name)
    fq = facts.query
    rows = _rows(
        connection,
        select(fq.c.sentiment, fq.c.score_kind, *_sums(fq)).group_by(
            fq.c.sentiment, fq.c.score_kind
        ),
    )
    return {"filter": f.to_dict(), "source": _source(facts), **_segment(rows)}


def _source(facts: _Facts) -> str:
    return "daily aggregates" if facts.rollup else "items"


def trend(connection: Connection, f: StatsFilter, period: str = "week") -> dict[str, Any]:
    """The headline numbers per period (every period from the first to the last, empty ones
    included)."""
    dialect = connection.dialect.name
    facts = _stat_facts(f, dialect)
    fq = facts.query
    start = _period_start(fq.c.day, period, dialect).label("period_start")
    rows = _rows(
        connection,
        select(start, fq.c.sentiment, fq.c.score_kind, *_sums(fq)).group_by(
            start, fq.c.sentiment, fq.c.score_kind
        ),
    )
    by_start: dict[dt.date, list[dict]] = defaultdict(list)
    for row in rows:
        by_start[_as_date(row["period_start"])].append(row)
    periods = []
    if by_start:
        first, last = min(by_start), max(by_start)
        if f.start:
            first = min(first, _floor(f.start, period))
        if f.end:
            last = max(last, _floor(f.end, period))
        day = first
        while day <= last and len(periods) < 5000:
            periods.append({**period_bounds(day, period), **_segment(by_start.get(day, []))})
            day = _next_start(day, period)
    return {"filter": f.to_dict(), "period": period, "source": _source(facts), "periods": periods}


def _mention_rows(connection: Connection, f: StatsFilter, *extra: str) -> tuple[list[dict], bool]:
    facts = _topic_facts(f, connection.dialect.name)
    fq = facts.query
    cols = [fq.c.topic, fq.c.polarity, *(fq.c[e] for e in extra)]
    rows = _rows(
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
    rows, rollup = _mention_rows(connection, _classified(f))
    polarity: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SENTIMENTS, 0))
    for row in rows:
        if row["polarity"] in SENTIMENTS:
            polarity[row["topic"]][row["polarity"]] += int(row["n"])
    items = []
    for name, split in polarity.items():
        mentions = sum(split.values())
        ci = wilson_interval(mentions, n, confidence) if n and mentions <= n else None
        neg_ci = wilson_interval(split["negative"], mentions, confidence)
        items.append(
            {
                "topic": name,
                "mentions": mentions,
                "share": mentions / n if n else None,
                "ci95": list(ci) if ci else None,
                "polarity": split,
                "negative_share": split["negative"] / mentions,
                "negative_ci95": list(neg_ci) if neg_ci else None,
            }
        )
    items.sort(key=lambda i: (-i["mentions"], i["topic"]))
    by_negative = sorted(
        (i for i in items if i["mentions"] >= min_mentions),
        key=lambda i: (-i["negative_share"], -i["mentions"], i["topic"]),
    )
    return {
        "filter": f.to_dict(),
        "n": n,
        "source": "daily aggregates" if rollup else "items",
        "items": items,
        "ranked_by_volume": [i["topic"] for i in items],
        "ranked_by_negative_share": [i["topic"] for i in by_negative],
        "min_mentions_for_negative_rank": min_mentions,
    }


def _classified(f: StatsFilter) -> StatsFilter:
    """`f` restricted to classified items (topics exist only for them)."""
    if f.sentiment:
        return f
    return StatsFilter(**{**f.__dict__, "sentiment": list(SENTIMENTS), "dims": dict(f.dims)})


def topic_by(connection: Connection, f: StatsFilter, column: str = "channel") -> dict[str, Any]:
    """Topic x `column` (lang, channel, product, sentiment, dataset or any stored dimension): for
    each cell the mentions, the share of that column value's classified items, and the negative
    share of the mentions."""
    dialect = connection.dialect.name
    f = _classified(f)
    facts = _topic_facts(f, dialect, group=column)
    fq = facts.query
    group = fq.c[column] if column in GROUPABLE else fq.c.grp
    rows = _rows(
        connection,
        select(
            fq.c.topic, group.label("value"), fq.c.polarity, func.sum(fq.c.n).label("n")
        ).group_by(fq.c.topic, group, fq.c.polarity),
    )
    stat = _stat_facts(f, dialect, group=column)
    sq = stat.query
    value_col = sq.c[column] if column in GROUPABLE else sq.c.grp
    totals = {
        (r["value"] or MISSING): int(r["n"])
        for r in _rows(
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
        "source": _source(facts),
        "values": sorted(totals, key=lambda v: (-totals[v], v)),
        "totals": totals,
        "cells": out,
    }


ITEM_COLUMNS = (
    "dataset",
    "item_id",
    "created_at",
    "text",
    "lang",
    "channel",
    "product",
    "dimensions",
    "sentiment",
    *OUTPUT_PROBABILITY_COLUMNS,
    "confidence",
    "score",
    "score_kind",
    "error",
    "model_name",
    "model_version",
)


def _item_query(f: StatsFilter, dialect: str) -> Select:
    return (
        select(ITEMS.c.pk, *(ITEMS.c[c] for c in ITEM_COLUMNS))
        .where(*_items_where(f, dialect))
        .order_by(ITEMS.c.created_at.desc(), ITEMS.c.pk.desc())
    )


def _with_topics(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    topics: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pks = [r["pk"] for r in rows]
    for start in range(0, len(pks), 500):
        part = pks[start : start + 500]
        found = connection.execute(
            select(TOPICS.c.item_pk, TOPICS.c.topic, TOPICS.c.polarity, TOPICS.c.score)
            .where(TOPICS.c.item_pk.in_(part))
            .order_by(TOPICS.c.item_pk, TOPICS.c.score.desc())
        )
        for pk, topic, polarity, score in found:
            topics[pk].append({"topic": topic, "polarity": polarity, "score": score})
    out = []
    for row in rows:
        row = dict(row)
        row["topics"] = topics.get(row.pop("pk"), [])
        row["id"] = row.pop("item_id")
        out.append(row)
    return out


def items(
    connection: Connection, f: StatsFilter, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """One page of the items under `f`, newest first, with their topics, and how many there are."""
    dialect = connection.dialect.name
    if f.keyed_only():
        # The aggregates count every item (classified or not) as the items table would.
        fq = _stat_facts(f, dialect).query
        total = connection.execute(select(func.coalesce(func.sum(fq.c.n), 0))).scalar_one()
    else:
        total = connection.execute(
            select(func.count()).select_from(ITEMS).where(*_items_where(f, dialect))
        ).scalar_one()
    rows = _rows(connection, _item_query(f, dialect).limit(limit).offset(offset))
    return {
        "filter": f.to_dict(),
        "total": int(total),
        "limit": limit,
        "offset": offset,
        "items": _with_topics(connection, rows),
    }


def iter_items(connection: Connection, f: StatsFilter, batch: int = 2000) -> Iterator[dict]:
    """Every item under `f`, newest first, streamed in batches (for CSV export)."""
    dialect = connection.dialect.name
    result = connection.execution_options(stream_results=True, yield_per=batch).execute(
        _item_query(f, dialect)
    )
    for part in result.mappings().partitions(batch):
        yield from _with_topics(connection, [dict(r) for r in part])


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
        "first_day": _as_date(first).isoformat() if first else None,
        "last_day": _as_date(last).isoformat() if last else None,
        "lang": distinct(d.c.lang),
        "channel": _menu(connection, f, "channel"),
        "product": _menu(connection, f, "product"),
        "topic": topics_found,
        "dims": dict(dims),
    }


# --- alerts ---------------------------------------------------------------------------------


def alerts(
    connection: Connection,
    f: StatsFilter,
    period: str = "week",
    alpha: float = 0.05,
    history: int = 12,
    segments: Sequence[str] = ("lang", "channel"),
) -> dict[str, Any]:
    """Period-over-period rises, as `cxnlp.report.alerts` tests them for the last period of a report,
    for each of the last `history` periods with classified items against the one before: the
    negative share (overall: judged on its own p-value; per language and channel: one family,
    Holm-adjusted), and the share of items mentioning each topic (one family). A rise is flagged
    when significant at `alpha` after adjustment and not a small sample (fewer than 5 expected
    items on a side). Each test has the two shares and sizes, the difference, z, p-value,
    adjusted p-value and Cohen's h."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    dialect = connection.dialect.name
    f = _classified(f)
    facts = _stat_facts(f, dialect, fine=True)
    fq = facts.query
    start = _period_start(fq.c.day, period, dialect).label("period_start")
    seg_cols = [c for c in segments if c in KEYED]
    coarse = _stat_facts(f, dialect).query
    coarse_start = _period_start(coarse.c.day, period, dialect).label("period_start")
    overall: dict[dt.date, dict[str, int]] = defaultdict(lambda: {"n": 0, "negative": 0})
    by_segment: dict[tuple, dict[str, int]] = defaultdict(lambda: {"n": 0, "negative": 0})
    for col in seg_cols:
        query = select(start, fq.c[col], fq.c.sentiment, func.sum(fq.c.n).label("n")).group_by(
            start, fq.c[col], fq.c.sentiment
        )
        for row in _rows(connection, query):
            day = _as_date(row["period_start"])
            cell = by_segment[(day, col, row[col] or MISSING)]
            cell["n"] += int(row["n"])
            cell["negative"] += int(row["n"]) if row["sentiment"] == "negative" else 0
    query = select(coarse_start, coarse.c.sentiment, func.sum(coarse.c.n).label("n")).group_by(
        coarse_start, coarse.c.sentiment
    )
    for row in _rows(connection, query):
        day = _as_date(row["period_start"])
        overall[day]["n"] += int(row["n"])
        overall[day]["negative"] += int(row["n"]) if row["sentiment"] == "negative" else 0
    tfacts = _topic_facts(f, dialect)
    tq = tfacts.query
    tstart = _period_start(tq.c.day, period, dialect).label("period_start")
    mentions: dict[tuple[dt.date, str], int] = defaultdict(int)
    for row in _rows(
        connection,
        select(tstart, tq.c.topic, func.sum(tq.c.n).label("n")).group_by(tstart, tq.c.topic),
    ):
        mentions[(_as_date(row["period_start"]), row["topic"])] += int(row["n"])
    filled = sorted(day for day, cell in overall.items() if cell["n"])
    # Only complete periods are tested, as the report does (cxnlp.report.periods).
    chosen = _last_complete(connection, coarse, filled, period)
    filled = [day for day in filled if chosen["start"] and day.isoformat() <= chosen["start"]]
    all_tests = []
    for before, now in list(zip(filled, filled[1:], strict=False))[-history:]:
        all_tests.extend(
            _period_tests(before, now, period, overall, by_segment, mentions, seg_cols, alpha)
        )
    flagged = [t for t in all_tests if t["flagged"]]
    flagged.sort(key=lambda t: (t["period_start"], t["p_adjusted"]), reverse=True)
    return {
        "filter": f.to_dict(),
        "period": period,
        "alpha": alpha,
        "source": _source(facts),
        "flagged": flagged,
        "tests": all_tests,
        "last_complete": chosen,
    }


def _last_complete(
    connection: Connection, facts: Any, starts: Sequence[dt.date], period: str
) -> dict[str, Any]:
    """`cxnlp.report.periods.last_complete` over the periods with items, the data ending on
    the last day with items under the filter."""
    data_end = connection.execute(select(func.max(facts.c.day))).scalar()
    return last_complete(
        starts,
        period,
        _as_date(data_end) if data_end is not None else None,
        lambda day: period_bounds(day, period)["period"],
    )


def _period_tests(
    before: dt.date,
    now: dt.date,
    period: str,
    overall: dict,
    by_segment: dict,
    mentions: dict,
    seg_cols: Sequence[str],
    alpha: float,
) -> list[dict[str, Any]]:
    label, base = period_bounds(now, period), period_bounds(before, period)

    def test(kind: str, column: str | None, value: str | None, x1, n1, x2, n2) -> dict | None:
        result = share_test(kind, column, value, x1, n1, x2, n2)
        if result is None:
            return None
        periods = {"period": label["period"], "period_start": label["start"]}
        return {**periods, "baseline_period": base["period"], **result}

    then, cur = overall[before], overall[now]
    tests = []
    headline = test(
        "negative_share", None, None, then["negative"], then["n"], cur["negative"], cur["n"]
    )
    if headline is not None:
        tests.append({**headline, "p_adjusted": headline["p_value"]})
    segment_tests = []
    for col in seg_cols:
        values = {v for (day, c, v) in by_segment if day == now and c == col}
        for value in sorted(values):
            a, b = by_segment.get((before, col, value)), by_segment[(now, col, value)]
            if a is None:
                continue
            segment_tests.append(
                test("negative_share", col, value, a["negative"], a["n"], b["negative"], b["n"])
            )
    topic_tests = []
    for topic in sorted({t for (day, t) in mentions if day == now}):
        topic_tests.append(
            test(
                "topic_share",
                "topic",
                topic,
                mentions.get((before, topic), 0),
                then["n"],
                mentions[(now, topic)],
                cur["n"],
            )
        )
    for family in (segment_tests, topic_tests):
        family = [t for t in family if t is not None]
        for t, p in zip(family, holm_adjust([t["p_value"] for t in family]), strict=True):
            tests.append({**t, "p_adjusted": p})
    for t in tests:
        t["flagged"] = t["difference"] > 0 and t["p_adjusted"] < alpha and not t["small_sample"]
    return tests
