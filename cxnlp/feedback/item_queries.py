"""The items themselves: one page of the items under a filter (the dashboard's drill-down and
search), or every item streamed (CSV export), newest first, each with every stored field
(`cxnlp.feedback.models.ITEM_FIELDS`) and its topics with polarity, score and evidence.

A text search (`StatsFilter.q`) goes through the search index (see `facts.search_clause`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import JSON, Connection, func, select
from sqlalchemy.sql import Select

from cxnlp.feedback.facts import StatsFilter, fetch, items_where, stat_facts
from cxnlp.feedback.models import ITEM_FIELDS, ITEMS, TOPIC_FIELDS, TOPICS

# What a stored item shows: the ORM's columns (the API names `item_id` `id`), then its topics.
ITEM_COLUMNS = ITEM_FIELDS
EXPORT_COLUMNS: tuple[str, ...] = (*("id" if c == "item_id" else c for c in ITEM_FIELDS), "topics")
# The export's cells that hold JSON (the item's JSON columns and its topics).
JSON_EXPORT_COLUMNS: tuple[str, ...] = (
    *(c for c in ITEM_FIELDS if isinstance(ITEMS.c[c].type, JSON)),
    "topics",
)


def _item_query(f: StatsFilter, dialect: str, probe_dimensions: bool = False) -> Select:
    return (
        select(ITEMS.c.pk, *(ITEMS.c[c] for c in ITEM_COLUMNS))
        .where(*items_where(f, dialect, probe_dimensions))
        .order_by(ITEMS.c.created_at.desc(), ITEMS.c.pk.desc())
    )


def _probe_dimensions(connection: Connection, f: StatsFilter, total: int, rows: int) -> bool:
    """Whether a page of `rows` (limit and offset) of the `total` items under `f` is found faster
    by reading the items newest first and looking up each one's dimensions (about rows * items /
    total look-ups) than by reading every item with the filtered dimensions and sorting them
    (about `total`). PostgreSQL's planner weighs this itself from the dimensions' statistics;
    SQLite keeps none."""
    if connection.dialect.name != "sqlite" or not f.dims or not total:
        return False
    stored = connection.execute(select(func.max(ITEMS.c.pk))).scalar_one() or 0
    return total * total > rows * stored


def _with_topics(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    topics: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pks = [r["pk"] for r in rows]
    for start in range(0, len(pks), 500):
        part = pks[start : start + 500]
        found = connection.execute(
            select(TOPICS.c.item_pk, *(TOPICS.c[k] for k in TOPIC_FIELDS))
            .where(TOPICS.c.item_pk.in_(part))
            # The result's own order; topics stored before 0004 (no ordinal) by score, then name.
            .order_by(TOPICS.c.item_pk, TOPICS.c.ordinal, TOPICS.c.score.desc(), TOPICS.c.topic)
        )
        for pk, *values in found:
            topic = dict(zip(TOPIC_FIELDS, values, strict=True))
            if topic.get("evidence") is None:
                topic.pop("evidence", None)  # as the API: evidence only where there is some
            topics[pk].append(topic)
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
    facts = stat_facts(f, connection)
    if facts.rollup:
        # The aggregates count every item (classified or not) as the items table would.
        fq = facts.query
        total = connection.execute(select(func.coalesce(func.sum(fq.c.n), 0))).scalar_one()
    else:
        total = connection.execute(
            select(func.count()).select_from(ITEMS).where(*items_where(f, dialect))
        ).scalar_one()
    probe = _probe_dimensions(connection, f, int(total), limit + offset)
    rows = fetch(connection, _item_query(f, dialect, probe).limit(limit).offset(offset))
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
