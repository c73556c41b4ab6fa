"""Where the dashboard's numbers come from: the `StatsFilter` every view takes, and its fact
sources: the per-day aggregates (`daily_stats`, `daily_topic_stats`, their totals) whenever the
filter only names columns they are keyed by (dataset, dates, language, channel, sentiment, and at
most one topic), the per-dimension aggregates (`daily_dimension_*`) when it adds values of one free
dimension that has them (`cxnlp.feedback.dimension_rollups`; items without it, `MISSING`, by
complement), else the items themselves (a filter on several free dimensions, a product, a text
search; dimension filters and the search go through their indexes). Both give the same
counts and sums (`STAT_MEASURES`); the aggregates are just smaller. Periods (day, week, month) are cut here too.

>>> StatsFilter(channel=["app"]).keyed_only(), StatsFilter(q="late").keyed_only()
(True, False)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
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
    column,
    exists,
    func,
    literal,
    or_,
    select,
    table,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import ColumnElement, FromClause, Select

from cxnlp.feedback.models import (
    DAILY,
    DAILY_TOPICS,
    DIMENSION_DAILY,
    DIMENSION_KEY_STATES,
    DIMENSION_LEN,
    DIMENSION_TOPIC_CHANNELS,
    DIMENSION_TOPIC_TOTALS,
    DIMENSION_TOTALS,
    ITEMS,
    REFINES,
    SCALES,
    STAT_MEASURES,
    TOPIC_CHANNELS,
    TOPIC_TOTALS,
    TOPICS,
    TOTALS,
)
from cxnlp.io.validate import check_names
from cxnlp.labels import SENTIMENTS, STORE_PERIODS, probability_column
from cxnlp.report.rows import MISSING_GROUP
from cxnlp.report.scores import DETRACTOR_MAX, PROMOTER_MIN, satisfied_min
from cxnlp.report.segments import MICRO

# SQLite's FTS5 trigram index of the item texts (created by migration 0003, kept by triggers).
FTS = table("feedback_items_fts", column("rowid"), column("text"))
# SQLite's index of the items' dimensions (migration 0007, kept by triggers): (key, value, item_pk).
ITEM_DIMENSIONS = table("item_dimensions", column("key"), column("value"), column("item_pk"))
MISSING = MISSING_GROUP
# Columns the aggregates are keyed by; a filter on any other dimension reads the items.
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
        return not self.free_dims() and self.plain_keys(max_topics)

    def plain_keys(self, max_topics: int = 1) -> bool:
        """Whether the aggregates' keys can answer this filter but for its free dimensions."""
        return not self.q and not self.product and len(self.topic) <= max_topics

    def free_dims(self) -> dict[str, list[str]]:
        """The free dimensions this filter restricts (a key without values restricts nothing)."""
        return {k: v for k, v in self.dims.items() if v}

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


def values_clause(column: ColumnElement, values: Sequence[str], blank: Any) -> ColumnElement:
    present = [v for v in values if v != MISSING]
    clauses = [column.in_(present)] if present else []
    if MISSING in values:
        clauses.append(column.is_(None) if blank is None else column == blank)
    return or_(*clauses)


def rollup_where(table, f: StatsFilter) -> list[ColumnElement]:
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
            where.append(values_clause(table.c[name], values, ""))
    return where


def needs_fine(f: StatsFilter, group: str | None, fine: bool) -> bool:
    """Whether a view needs the aggregates by language and channel (else the totals do)."""
    return fine or bool(f.lang or f.channel) or group in ("lang", "channel")


def rollup_keys(table, topic: bool = False) -> list[ColumnElement]:
    names = ("dataset", "day", *KEYED, "score_kind", *(("topic", "polarity") if topic else ()))
    return [table.c[k] if k in table.c else literal("", String).label(k) for k in names]


def dimension(name: str, dialect: str) -> ColumnElement:
    if name in (*FILTERABLE, "dataset"):
        return ITEMS.c[name]
    if dialect == "postgresql":
        return ITEMS.c.dimensions.op("->>")(literal(name, String))
    return func.json_extract(ITEMS.c.dimensions, literal(f'$."{name}"', String))


def dimension_clause(
    name: str, values: Sequence[str], dialect: str, n: int = 0, probe: bool = False
) -> ColumnElement:
    """Items whose dimension `name` is one of `values`, through the dimension index (migration
    0007): PostgreSQL's GIN index answers a containment test per value; in SQLite the item is
    joined with its `item_dimensions` row (alias number `n`: one per filtered dimension; an item
    has one value per key, so the join repeats no item), or with `probe` that row is looked up for
    each item read (when the items are read in another index's order and most of them pass: a
    page of the newest). `MISSING` among the values (items without the dimension) asks for what
    no index holds: those items are read from their JSON."""
    present = [v for v in values if v != MISSING]
    if MISSING in values or dialect not in ("postgresql", "sqlite"):
        return values_clause(dimension(name, dialect), values, None)
    if dialect == "postgresql":
        return or_(*(ITEMS.c.dimensions.op("@>")(literal({name: v}, JSONB)) for v in present))
    d = ITEM_DIMENSIONS.alias(f"filter_dimension_{n}")
    on = and_(d.c.item_pk == ITEMS.c.pk, d.c.key == name, d.c.value.in_(present))
    return exists().where(on) if probe else on


def search_clause(q: str, dialect: str, text: ColumnElement | None = None) -> ColumnElement:
    """Items whose text holds `q` (case-insensitive), through the search index: PostgreSQL's
    pg_trgm GIN index answers ILIKE, SQLite's FTS5 trigram table answers LIKE (both need 3
    characters or more to use the index; shorter queries scan). On PostgreSQL the test is of
    `text` where given (the item texts of a subquery, which no index answers)."""
    special = any(ch in q for ch in "\\%_")
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    escape = "\\" if special else None
    if dialect == "postgresql":
        return (ITEMS.c.text if text is None else text).ilike(pattern, escape=escape)
    if dialect == "sqlite":
        # FTS5 cannot use its index for LIKE with an ESCAPE clause: only add one when needed.
        hits = select(FTS.c.rowid).where(FTS.c.text.like(pattern, escape=escape))
        return ITEMS.c.pk.in_(hits)
    return func.lower(ITEMS.c.text).like(pattern.lower(), escape=escape)


def items_where(
    f: StatsFilter, dialect: str, probe_dimensions: bool = False
) -> list[ColumnElement]:
    """The conditions on the items of `f` (`probe_dimensions`: see `dimension_clause`)."""
    c = ITEMS.c
    where = []
    if f.dataset:
        where.append(c.dataset.in_(f.dataset))
    # The dates as a range of `created_at` (whose date `day` is): the index the drill-down lists
    # newest first by answers any period with a range scan, an old week as fast as the last.
    if f.start:
        where.append(c.created_at >= dt.datetime.combine(f.start, dt.time.min))
    if f.end:
        where.append(c.created_at < dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time.min))
    for name in FILTERABLE:
        values = getattr(f, name)
        if values:
            where.append(values_clause(c[name], values, None))
    for n, (name, values) in enumerate(f.dims.items()):
        if values:
            where.append(dimension_clause(name, values, dialect, n, probe_dimensions))
    if f.topic:
        t = TOPICS.alias("filter_topics")
        where.append(exists().where(t.c.item_pk == c.pk, t.c.topic.in_(f.topic)))
    if f.q:
        where.append(search_clause(f.q, dialect))
    return where


def micro_sql(column: ColumnElement) -> ColumnElement:
    """`cxnlp.report.segments.micro` in SQL: millionths, floor(x + 0.5) in both databases."""
    return cast(func.floor(func.coalesce(column, 0.0) * MICRO + 0.5), BigInteger)


def item_measures() -> list[ColumnElement]:
    c = ITEMS.c
    scored = c.score.is_not(None)
    return [
        literal(1, Integer).label("n"),
        *(
            micro_sql(c[probability_column(s)]).label(f"{probability_column(s)}_sum")
            for s in SENTIMENTS
        ),
        case((scored, 1), else_=0).label("score_n"),
        func.coalesce(c.score, 0.0).label("score_sum"),
        func.coalesce(c.score * c.score, 0.0).label("score_sq_sum"),
        # `cxnlp.report.scores.score_flags` in SQL.
        case((and_(c.score_kind == "nps", c.score >= PROMOTER_MIN), 1), else_=0).label("promoters"),
        case((and_(c.score_kind == "nps", c.score <= DETRACTOR_MAX), 1), else_=0).label(
            "detractors"
        ),
        # Satisfied: CSAT's top two boxes on its dataset's scale (`satisfied_min`), joined in
        # by `with_scales`.
        case(
            (
                and_(
                    c.score_kind == "csat",
                    c.score >= func.coalesce(SCALES.c.high - 1, satisfied_min(None)),
                ),
                1,
            ),
            else_=0,
        ).label("satisfied"),
    ]


def with_scales(source: FromClause) -> FromClause:
    """`source` (the items, or the items joined with their topics) with each item's score scale
    (`score_scales`), which `item_measures` reads."""
    c = ITEMS.c
    on = and_(SCALES.c.dataset == c.dataset, SCALES.c.score_kind == c.score_kind)
    return source.outerjoin(SCALES, on)


def item_keys(dialect: str, group: str | None = None) -> list[ColumnElement]:
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
        keys.append(func.coalesce(dimension(group, dialect), "").label("grp"))
    return keys


@dataclass
class Facts:
    """A subquery with the key columns and the STAT_MEASURES columns (one row per item, or per
    aggregate row), and whether it is the aggregates."""

    query: Any
    rollup: bool


def rollup_dimension(
    connection: Connection, f: StatsFilter, max_topics: int = 1
) -> tuple[str, list[str]] | None:
    """The free dimension (key, values) of `f` when the per-dimension aggregates can answer it:
    one key, which has them in every dataset of `f` (`dimension_keys`); `MISSING` among the
    values (items without the key) is read by complement (`_missing_rows`)."""
    dims = f.free_dims()
    if len(dims) != 1 or not f.plain_keys(max_topics):
        return None
    ((key, values),) = dims.items()
    if len(key) > DIMENSION_LEN:
        return None
    k = DIMENSION_KEY_STATES
    where = [k.c.dim_key == key, k.c.aggregated.is_(False)]
    if f.dataset:
        where.append(k.c.dataset.in_(f.dataset))
    without = connection.execute(select(k.c.dataset).where(*where).limit(1)).first()
    return None if without else (key, values)


def _rollup_rows(
    table, f: StatsFilter, topic: bool, *where: ColumnElement, sign: int = 1
) -> Select:
    """The rows of aggregate `table` under `f` (and `where`), their measures times `sign`."""
    if f.topic and not topic:
        where = (*where, table.c.topic == f.topic[0])
    measures = [(table.c[m] if sign > 0 else -table.c[m]).label(m) for m in STAT_MEASURES]
    return select(*rollup_keys(table, topic), *measures).where(*rollup_where(table, f), *where)


def _missing_rows(table, f: StatsFilter, key: str, topic: bool) -> Select:
    """The rows of the items without dimension `key` under `f`, by complement: the aggregate
    that `table` refines (over every item) minus `table`'s rows of every value of `key`, per
    key of that aggregate. Right because every measure is a count or a sum, an item holds at
    most one value per key (`dimensions` is a JSON object of strings), and `rollup_dimension`
    checked that every item with `key` in the datasets read is in `table`. Keys left without
    items (every item there has the key) are dropped, as the items would have no row there."""
    signed = union_all(
        _rollup_rows(REFINES[table], f, topic),
        _rollup_rows(table, f, topic, table.c.dim_key == key, sign=-1),
    ).subquery("signed")
    keys = [signed.c[k.name] for k in rollup_keys(table, topic)]
    measures = [cast(func.sum(signed.c[m]), table.c[m].type).label(m) for m in STAT_MEASURES]
    return select(*keys, *measures).group_by(*keys).having(func.sum(signed.c.n) > 0)


def _rollup_facts(table, f: StatsFilter, dimension: tuple[str, list[str]] | None, topic: bool):
    if dimension is None:
        return Facts(_rollup_rows(table, f, topic).subquery("facts"), True)
    key, values = dimension
    present = [v for v in values if v != MISSING]
    parts = []
    if present:
        parts.append(
            _rollup_rows(table, f, topic, table.c.dim_key == key, table.c.dim_value.in_(present))
        )
    if MISSING in values:
        parts.append(_missing_rows(table, f, key, topic))
    q = parts[0] if len(parts) == 1 else union_all(*parts)
    return Facts(q.subquery("facts"), True)


def stat_facts(
    f: StatsFilter, connection: Connection, group: str | None = None, fine: bool = False
) -> Facts:
    """One row per item (or per aggregate row) under `f`; `fine`: with lang and channel."""
    dialect = connection.dialect.name
    custom_group = group is not None and group not in GROUPABLE
    fine = needs_fine(f, group, fine)
    if f.keyed_only() and not custom_group:
        if fine:
            table = DAILY_TOPICS if f.topic else DAILY
        else:
            table = TOPIC_TOTALS if f.topic else TOTALS
        return _rollup_facts(table, f, None, topic=False)
    # By dimension value: no table by language or channel holds the topic too.
    if not custom_group and not (fine and f.topic):
        dimension = rollup_dimension(connection, f)
        if dimension is not None:
            if fine:
                table = DIMENSION_DAILY
            else:
                table = DIMENSION_TOPIC_TOTALS if f.topic else DIMENSION_TOTALS
            return _rollup_facts(table, f, dimension, topic=False)
    q = (
        select(*item_keys(dialect, group), *item_measures())
        .select_from(with_scales(ITEMS))
        .where(*items_where(f, dialect))
    )
    return Facts(q.subquery("facts"), False)


def topic_facts(f: StatsFilter, connection: Connection, group: str | None = None) -> Facts:
    """One row per (item, topic) (or per aggregate row) under `f`, with `topic` and `polarity`."""
    dialect = connection.dialect.name
    custom_group = group is not None and group not in GROUPABLE
    by_lang = bool(f.lang) or group == "lang"
    if f.keyed_only(max_topics=0) and not custom_group:
        if not needs_fine(f, group, False):
            t = TOPIC_TOTALS
        elif by_lang:
            t = DAILY_TOPICS
        else:  # by channel: the smaller table without language and score kind
            t = TOPIC_CHANNELS
        return _rollup_facts(t, f, None, topic=True)
    # By dimension value: no table by language holds the topics.
    if not custom_group and not by_lang:
        dimension = rollup_dimension(connection, f, max_topics=0)
        if dimension is not None:
            fine = needs_fine(f, group, False)
            t = DIMENSION_TOPIC_CHANNELS if fine else DIMENSION_TOPIC_TOTALS
            return _rollup_facts(t, f, dimension, topic=True)
    mention = TOPICS
    q = (
        select(
            *item_keys(dialect, group),
            mention.c.topic,
            func.coalesce(mention.c.polarity, "").label("polarity"),
            *item_measures(),
        )
        .select_from(with_scales(ITEMS.join(mention, mention.c.item_pk == ITEMS.c.pk)))
        .where(*items_where(f, dialect))
    )
    return Facts(q.subquery("facts"), False)


def sums(facts) -> list[ColumnElement]:
    return [func.coalesce(func.sum(facts.c[m]), 0).label(m) for m in STAT_MEASURES]


def period_start(column: ColumnElement, period: str, dialect: str) -> ColumnElement:
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


def as_date(value: Any) -> dt.date:
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


def next_start(start: dt.date, period: str) -> dt.date:
    if period == "day":
        return start + dt.timedelta(days=1)
    if period == "week":
        return start + dt.timedelta(days=7)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def floor_period(day: dt.date, period: str) -> dt.date:
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def fetch(connection: Connection, query: Select) -> list[dict[str, Any]]:
    return [dict(r) for r in connection.execute(query).mappings()]


def source(facts: Facts) -> str:
    return "daily aggregates" if facts.rollup else "items"


def classified(f: StatsFilter) -> StatsFilter:
    """`f` restricted to classified items (topics exist only for them)."""
    if f.sentiment:
        return f
    return StatsFilter(**{**f.__dict__, "sentiment": list(SENTIMENTS), "dims": dict(f.dims)})
