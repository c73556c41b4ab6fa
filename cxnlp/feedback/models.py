"""The tables of the feedback store (SQLAlchemy 2 declarative; the schema itself is created and
changed by the Alembic migrations in `cxnlp/feedback/migrations`, which must match these).

- `feedback_items`: one row per analyzed item, unique on (dataset, item_id); the export's own
  columns live in `dimensions` (JSON; JSONB in PostgreSQL), `channel` and `product` also as
  indexed columns. A filter on a dimension goes through an index kept outside the ORM
  (migration 0007, `DIMENSION_INDEX_OBJECTS`): a GIN `jsonb_path_ops` index of `dimensions` in
  PostgreSQL, an `item_dimensions` (key, value, item_pk) table kept by triggers in SQLite.
- `item_topics`: one row per (item, topic) with its polarity, for topic queries without JSON.
- `daily_stats` / `daily_topic_stats`: per-day pre-aggregates by language, channel, sentiment
  and score kind (and topic, polarity); `daily_totals` / `daily_topic_totals` the same without
  language and channel (a few rows per day, for views that do not filter on those), and
  `daily_topic_channels` the topic aggregates without language and score kind (topic x channel),
  kept in step with the items by every ingest (in the same transaction), so that dashboard views
  read thousands of rows, not millions. Their key columns hold "" where the item has no value (a primary key cannot be NULL).
- `daily_dimension_stats`, `daily_dimension_totals`, `daily_dimension_topic_totals`,
  `daily_dimension_topic_channels`: the same per value of each free dimension (`dim_key`,
  `dim_value`), for views filtered on one; `dimension_keys` says which keys they hold (a key with
  too many values has none: `cxnlp.feedback.dimension_rollups`).
- `feedback_dimensions`: the (key, value) pairs seen per dataset, for the filter menus (every
  value of a key the per-dimension aggregates hold).
- `score_scales`: the scale of each dataset's scores of a kind (CSAT on 1-7, say), declared once.
- `feedback_alerts`: alerts already raised, so that the webhook is called once per alert.

`FeedbackItem` is the one declaration of an item's columns: the ingest's records, the writers'
column lists, the drill-down and CSV columns and the API's item schema are all derived from it
(`ITEM_FIELDS`, `RECORD_FIELDS`, `AGGREGATE_INPUTS`). A column's `info` says who sets it:
`STORE_SET` columns come from the store (keys, model identity, timestamps), `INTERNAL` ones are
never shown, and `AGGREGATED` ones feed the per-day aggregates (an update reads them back to take
the item's old contribution out).

Later tables keyed by an item (e.g. follow-up cases) reference (dataset, item_id), which is stable
across re-ingests, rather than `feedback_items.pk`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cxnlp.labels import PROBABILITY_COLUMNS
from cxnlp.report.scores import SCORE_MEASURES

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Count = BigInteger().with_variant(Integer(), "sqlite")

DIMENSION_LEN = 200
ID_LEN = 300
# The item's dimensions: JSONB in PostgreSQL, so that a GIN index answers a filter on one.
DimensionsJSON = JSON().with_variant(JSONB(), "postgresql")

# Column roles (`mapped_column(info=...)`); see the module docstring.
STORE_SET = {"store_set": True}
INTERNAL = {"store_set": True, "internal": True}
AGGREGATED = {"aggregated": True}


class Base(DeclarativeBase):
    pass


class FeedbackItem(Base):
    __tablename__ = "feedback_items"
    __table_args__ = (
        UniqueConstraint("dataset", "item_id", name="uq_feedback_items_dataset_item"),
        Index("ix_feedback_items_dataset_day", "dataset", "day"),
        Index("ix_feedback_items_dataset_channel", "dataset", "channel"),
        Index("ix_feedback_items_dataset_sentiment", "dataset", "sentiment"),
        # The drill-down lists newest first.
        Index("ix_feedback_items_created_at", "created_at", "pk"),
        # A customer's history (cases page, recovery metrics).
        Index("ix_feedback_items_customer", "dataset", "customer_id", "created_at"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True, info=INTERNAL)
    dataset: Mapped[str] = mapped_column(String(DIMENSION_LEN), info=STORE_SET)
    item_id: Mapped[str] = mapped_column(String(ID_LEN))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())
    text: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(16), info=AGGREGATED)
    day: Mapped[dt.date] = mapped_column(Date(), info={**AGGREGATED, "internal": True})
    channel: Mapped[str | None] = mapped_column(String(DIMENSION_LEN), info=AGGREGATED)
    product: Mapped[str | None] = mapped_column(String(DIMENSION_LEN))
    # The customer the item is about (`cxnlp.labels.CUSTOMER_ID_COLUMN`): follow-up cases.
    customer_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    # Free dimensions feed the per-dimension aggregates (`daily_dimension_*`).
    dimensions: Mapped[dict[str, Any]] = mapped_column(
        DimensionsJSON, default=dict, info=AGGREGATED
    )
    sentiment: Mapped[str | None] = mapped_column(String(16), info=AGGREGATED)
    p_positive: Mapped[float | None] = mapped_column(Float, info=AGGREGATED)
    p_neutral: Mapped[float | None] = mapped_column(Float, info=AGGREGATED)
    p_negative: Mapped[float | None] = mapped_column(Float, info=AGGREGATED)
    confidence: Mapped[float | None] = mapped_column(Float)
    # True where the text has confidently positive and negative clauses (None: not read by clause).
    mixed: Mapped[bool | None] = mapped_column(Boolean)
    # True when only the text's first characters were classified (the stored text is whole).
    truncated: Mapped[bool | None] = mapped_column(Boolean)
    # How urgently the text needs a human (`cxnlp.labels.URGENCY_COLUMNS`): score 0-1, level and
    # evidence, a list of {"start", "end", "text", "cue"} (offsets into the text): the API's
    # `urgency` object, one column per key as `cxnlp classify` writes them.
    urgency: Mapped[float | None] = mapped_column(Float)
    urgency_level: Mapped[str | None] = mapped_column(String(8))
    urgency_evidence: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float, info=AGGREGATED)
    score_kind: Mapped[str | None] = mapped_column(String(8), info=AGGREGATED)
    error: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(DIMENSION_LEN), info=STORE_SET)
    model_version: Mapped[str | None] = mapped_column(String(64), info=STORE_SET)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime(), info=INTERNAL)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(), info=INTERNAL)


class ItemTopic(Base):
    __tablename__ = "item_topics"
    __table_args__ = (Index("ix_item_topics_topic", "topic", "item_pk"),)

    item_pk: Mapped[int] = mapped_column(
        BigId, ForeignKey("feedback_items.pk", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)
    polarity: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    # {"start", "end", "text"}: the clause or cue the topic was read from.
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The topic's place in the item's result (the model lists them by score; ties keep its order).
    ordinal: Mapped[int | None] = mapped_column(Integer, info=INTERNAL)


# The key of the per-day aggregates, and the sums kept for each key.
STAT_KEYS = ("dataset", "day", "lang", "channel", "sentiment", "score_kind")
# Counts and sums from which `cxnlp.report` computes every number (see `cxnlp.report.segments`
# and `cxnlp.report.scores.SCORE_MEASURES`): the `_Measures` columns.
STAT_MEASURES = ("n", *(f"{c}_sum" for c in PROBABILITY_COLUMNS), *SCORE_MEASURES)
TOPIC_KEYS = (*STAT_KEYS, "topic", "polarity")


# The aggregate tables are stored in their primary key's order in SQLite (WITHOUT ROWID): an
# upsert then changes one b-tree, not the table and its key's index (migration 0009).
CLUSTERED = {"sqlite_with_rowid": False}


def _key(length: int = DIMENSION_LEN) -> Mapped[str]:
    return mapped_column(String(length), primary_key=True, default="")


class _Measures:
    n: Mapped[int] = mapped_column(Count, default=0)
    # Sums of probabilities in millionths (classify output has six decimals): integers, so that
    # taking an updated item's old contribution out restores the sum exactly.
    p_positive_sum: Mapped[int] = mapped_column(Count, default=0)
    p_neutral_sum: Mapped[int] = mapped_column(Count, default=0)
    p_negative_sum: Mapped[int] = mapped_column(Count, default=0)
    score_n: Mapped[int] = mapped_column(Count, default=0)
    score_sum: Mapped[float] = mapped_column(Float, default=0.0)
    score_sq_sum: Mapped[float] = mapped_column(Float, default=0.0)
    promoters: Mapped[int] = mapped_column(Count, default=0)
    detractors: Mapped[int] = mapped_column(Count, default=0)
    satisfied: Mapped[int] = mapped_column(Count, default=0)


class DailyStat(_Measures, Base):
    __tablename__ = "daily_stats"
    __table_args__ = CLUSTERED

    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    lang: Mapped[str] = _key(16)
    channel: Mapped[str] = _key()
    sentiment: Mapped[str] = _key(16)
    score_kind: Mapped[str] = _key(8)


class DailyTopicStat(_Measures, Base):
    __tablename__ = "daily_topic_stats"
    __table_args__ = (Index("ix_daily_topic_stats_topic", "topic", "dataset", "day"), CLUSTERED)

    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    lang: Mapped[str] = _key(16)
    channel: Mapped[str] = _key()
    sentiment: Mapped[str] = _key(16)
    score_kind: Mapped[str] = _key(8)
    topic: Mapped[str] = _key(100)
    polarity: Mapped[str] = _key(16)


class DailyTotal(_Measures, Base):
    """`daily_stats` without language and channel: what an unfiltered view reads."""

    __tablename__ = "daily_totals"
    __table_args__ = CLUSTERED

    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    sentiment: Mapped[str] = _key(16)
    score_kind: Mapped[str] = _key(8)


class DailyTopicTotal(_Measures, Base):
    """`daily_topic_stats` without language and channel."""

    __tablename__ = "daily_topic_totals"
    __table_args__ = CLUSTERED

    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    sentiment: Mapped[str] = _key(16)
    score_kind: Mapped[str] = _key(8)
    topic: Mapped[str] = _key(100)
    polarity: Mapped[str] = _key(16)


class DailyTopicChannel(_Measures, Base):
    """`daily_topic_stats` without language and score kind: what a topic view by channel (topic x
    channel, topics of one channel) reads, a fifth of the rows or less."""

    __tablename__ = "daily_topic_channels"
    __table_args__ = CLUSTERED

    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    channel: Mapped[str] = _key()
    sentiment: Mapped[str] = _key(16)
    topic: Mapped[str] = _key(100)
    polarity: Mapped[str] = _key(16)


# The key of the per-dimension aggregates: a free dimension's key and value (first: a view filters
# on them), then the key of the aggregate they refine.
DIMENSION_KEYS = ("dim_key", "dim_value")


class DailyDimensionStat(_Measures, Base):
    """`daily_stats` per value of a free dimension (an item's `dimensions` entry): what a view
    filtered on one such dimension reads (`dimension_keys` says which keys have them)."""

    __tablename__ = "daily_dimension_stats"
    __table_args__ = CLUSTERED

    dim_key: Mapped[str] = _key()
    dim_value: Mapped[str] = _key()
    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    lang: Mapped[str] = _key(16)
    channel: Mapped[str] = _key()
    sentiment: Mapped[str] = _key(16)
    score_kind: Mapped[str] = _key(8)


class DailyDimensionTotal(_Measures, Base):
    """`daily_dimension_stats` without language and channel (`daily_totals` per dimension value)."""

    __tablename__ = "daily_dimension_totals"
    __table_args__ = CLUSTERED

    dim_key: Mapped[str] = _key()
    dim_value: Mapped[str] = _key()
    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    sentiment: Mapped[str] = _key(16)
    score_kind: Mapped[str] = _key(8)


class DailyDimensionTopicTotal(_Measures, Base):
    """`daily_topic_totals` per dimension value."""

    __tablename__ = "daily_dimension_topic_totals"
    __table_args__ = CLUSTERED

    dim_key: Mapped[str] = _key()
    dim_value: Mapped[str] = _key()
    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    sentiment: Mapped[str] = _key(16)
    score_kind: Mapped[str] = _key(8)
    topic: Mapped[str] = _key(100)
    polarity: Mapped[str] = _key(16)


class DailyDimensionTopicChannel(_Measures, Base):
    """`daily_topic_channels` per dimension value."""

    __tablename__ = "daily_dimension_topic_channels"
    __table_args__ = CLUSTERED

    dim_key: Mapped[str] = _key()
    dim_value: Mapped[str] = _key()
    dataset: Mapped[str] = _key()
    day: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    channel: Mapped[str] = _key()
    sentiment: Mapped[str] = _key(16)
    topic: Mapped[str] = _key(100)
    polarity: Mapped[str] = _key(16)


class DimensionKey(Base):
    """Each free dimension key of a dataset, and whether the per-dimension aggregates hold it
    (`cxnlp.feedback.dimension_rollups`): a key with more than `MAX_AGGREGATED_VALUES` values,
    or a key or value longer than `DIMENSION_LEN` (stored here cut to that length), has none, for
    good, and a filter on it reads the items."""

    __tablename__ = "dimension_keys"

    dataset: Mapped[str] = _key()
    dim_key: Mapped[str] = _key()
    aggregated: Mapped[bool] = mapped_column(Boolean)


class FeedbackDimension(Base):
    __tablename__ = "feedback_dimensions"

    dataset: Mapped[str] = _key()
    key: Mapped[str] = _key()
    value: Mapped[str] = _key()


class ScoreScale(Base):
    """The scale each dataset's scores of a kind are on (lowest, highest answer; NULL for a CES
    without a declared one), declared by the first ingest of that kind (`cxnlp.feedback.scales`):
    CSAT's top two boxes are counted on it, and every later ingest must declare the same."""

    __tablename__ = "score_scales"

    dataset: Mapped[str] = _key()
    score_kind: Mapped[str] = _key(8)
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)


class FeedbackAlert(Base):
    __tablename__ = "feedback_alerts"
    __table_args__ = (
        UniqueConstraint(
            "dataset", "period_kind", "period", "kind", "column_name", "value", name="uq_alert"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(DIMENSION_LEN))
    period_kind: Mapped[str] = mapped_column(String(8))
    period: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    column_name: Mapped[str] = mapped_column(String(DIMENSION_LEN), default="")
    value: Mapped[str] = mapped_column(String(DIMENSION_LEN), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime())
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime())


class FollowUpCase(Base):
    """A follow-up case opened by a rule of `cxnlp/data/case_rules.yaml` (see
    `cxnlp.feedback.cases`). `open_key` is "<customer>|<reason>" while the case is not closed and
    NULL after: unique per dataset, so a customer has one open case per reason (NULLs never clash
    in SQLite or PostgreSQL)."""

    __tablename__ = "follow_up_cases"
    __table_args__ = (
        UniqueConstraint("dataset", "open_key", name="uq_follow_up_cases_open"),
        # The queue: open cases by priority, then deadline.
        Index("ix_follow_up_cases_queue", "is_open", "priority_rank", "due_at"),
        Index("ix_follow_up_cases_customer", "dataset", "customer_id"),
        Index("ix_follow_up_cases_team", "team", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(DIMENSION_LEN))
    item_id: Mapped[str] = mapped_column(String(ID_LEN))
    customer_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    open_key: Mapped[str | None] = mapped_column(String(2 * ID_LEN))
    reason: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str | None] = mapped_column(String(100))
    team: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(DIMENSION_LEN))
    escalation_owner: Mapped[str | None] = mapped_column(String(DIMENSION_LEN))
    priority: Mapped[str] = mapped_column(String(16))
    priority_rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    is_open: Mapped[bool] = mapped_column(Boolean)
    sentiment: Mapped[str | None] = mapped_column(String(16))
    urgency: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    item_count: Mapped[int] = mapped_column(Integer, default=1)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime())
    due_at: Mapped[dt.datetime] = mapped_column(DateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime())
    first_response_at: Mapped[dt.datetime | None] = mapped_column(DateTime())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime())
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(DateTime())
    root_cause: Mapped[str | None] = mapped_column(String(DIMENSION_LEN))
    resolved: Mapped[bool | None] = mapped_column(Boolean)


class CaseItem(Base):
    """The feedback items of a case (the one that opened it and later ones from the same customer
    for the same reason); an item is in at most one case, so a resend opens nothing new."""

    __tablename__ = "case_items"
    __table_args__ = (Index("ix_case_items_case", "case_id"),)

    dataset: Mapped[str] = mapped_column(String(DIMENSION_LEN), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    case_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("follow_up_cases.id", ondelete="CASCADE")
    )
    linked_at: Mapped[dt.datetime] = mapped_column(DateTime())


class CaseEvent(Base):
    """Every change of a case, timestamped: opened, status, assigned, comment, escalated, linked."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case", "case_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("follow_up_cases.id", ondelete="CASCADE")
    )
    at: Mapped[dt.datetime] = mapped_column(DateTime())
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(DIMENSION_LEN))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)


# The Core tables behind the ORM classes, for the bulk statements of ingest and queries.
ITEMS = FeedbackItem.__table__
TOPICS = ItemTopic.__table__
DAILY = DailyStat.__table__
DAILY_TOPICS = DailyTopicStat.__table__
TOTALS = DailyTotal.__table__
TOPIC_TOTALS = DailyTopicTotal.__table__
TOPIC_CHANNELS = DailyTopicChannel.__table__
DIMENSIONS = FeedbackDimension.__table__
DIMENSION_DAILY = DailyDimensionStat.__table__
DIMENSION_TOTALS = DailyDimensionTotal.__table__
DIMENSION_TOPIC_TOTALS = DailyDimensionTopicTotal.__table__
DIMENSION_TOPIC_CHANNELS = DailyDimensionTopicChannel.__table__
DIMENSION_KEY_STATES = DimensionKey.__table__
# The aggregate each per-dimension table refines: the same key and measures, without
# `DIMENSION_KEYS`.
REFINES = {
    DIMENSION_DAILY: DAILY,
    DIMENSION_TOTALS: TOTALS,
    DIMENSION_TOPIC_TOTALS: TOPIC_TOTALS,
    DIMENSION_TOPIC_CHANNELS: TOPIC_CHANNELS,
}
assert all(
    [c.name for c in fine.primary_key.columns]
    == [*DIMENSION_KEYS, *(c.name for c in base.primary_key.columns)]
    for fine, base in REFINES.items()
)
SCALES = ScoreScale.__table__
CASES = FollowUpCase.__table__
CASE_ITEMS = CaseItem.__table__
CASE_EVENTS = CaseEvent.__table__

# What an item shows (drill-down, CSV, API), in the table's order; `day` is `created_at`'s date.
ITEM_FIELDS: tuple[str, ...] = tuple(c.name for c in ITEMS.c if not c.info.get("internal"))
# What a validated record of `cxnlp.feedback.records` holds (besides its topics).
RECORD_FIELDS: tuple[str, ...] = tuple(c.name for c in ITEMS.c if not c.info.get("store_set"))
# What an update reads back of the stored item to take its old contribution out of the aggregates.
AGGREGATE_INPUTS: tuple[str, ...] = (
    "pk",
    "item_id",
    "created_at",
    *(c.name for c in ITEMS.c if c.info.get("aggregated")),
)
# A stored topic's fields besides its item and place: what the API's topic holds.
TOPIC_FIELDS: tuple[str, ...] = tuple(
    c.name for c in TOPICS.c if c.name != "item_pk" and not c.info.get("internal")
)

# Index objects that live outside the ORM, one kind per database: the text search's (migration
# 0003) and the dimension filter's (0007). Autogenerate leaves them alone.
SEARCH_OBJECTS = ("feedback_items_fts", "ix_feedback_items_text_trgm")
DIMENSION_INDEX_OBJECTS = ("item_dimensions", "ix_feedback_items_dimensions")


def managed_by_orm(name: str | None, kind: str, *_: object) -> bool:
    """Alembic's `include_name`: False for the search and dimension indexes (and SQLite's FTS5
    shadow tables)."""
    return not (name and name.startswith((*SEARCH_OBJECTS, *DIMENSION_INDEX_OBJECTS)))
