"""The items themselves: one page of the items under a filter (the dashboard's drill-down and
search), or every item streamed (CSV export), newest first, each with every stored field
(`cxnlp.feedback.models.ITEM_FIELDS`) and its topics with polarity, score and evidence.

A text search (`StatsFilter.q`) goes through the search index (see `facts.search_clause`). On
PostgreSQL its page is read one of two ways chosen from the exact count of the matches (which the
page comes with), not from the planner's estimate (`_search_page`): PostgreSQL estimates the share
of texts holding a substring as the share of its ~100 histogram values that hold it, else 0.01%,
so a word in 111 of 1M texts is estimated at 0.01%, or at 1% when one sampled text holds it; at
1% the plain query's page is planned as a walk of the newest-first index testing every text
(about 225,000 texts read for a page of 25 of the 111), at 0.01% as the matches read through the
trigram index and sorted. Few matches are now always read through the index and sorted; many, by
a bounded walk of the newest items.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import JSON, Connection, func, select
from sqlalchemy.sql import Select

from cxnlp.feedback.facts import StatsFilter, fetch, items_where, search_clause, stat_facts
from cxnlp.feedback.models import ITEM_FIELDS, ITEMS, TOPIC_FIELDS, TOPICS

# What a stored item shows: the ORM's columns (the API names `item_id` `id`), then its topics.
ITEM_COLUMNS = ITEM_FIELDS
EXPORT_COLUMNS: tuple[str, ...] = (*("id" if c == "item_id" else c for c in ITEM_FIELDS), "topics")
# The export's cells that hold JSON (the item's JSON columns and its topics).
JSON_EXPORT_COLUMNS: tuple[str, ...] = (
    *(c for c in ITEM_FIELDS if isinstance(ITEMS.c[c].type, JSON)),
    "topics",
)
# How many items a search page walks per page row it needs, over the share of the items walked
# that match (see `_search_page`): with 2 the walk holds the page unless the matches are much
# rarer among the newest items than among all (about 50 matches expected for a page of 25).
SEARCH_WINDOW = 2


def _item_query(f: StatsFilter, dialect: str, probe_dimensions: bool = False) -> Select:
    return (
        select(ITEMS.c.pk, *(ITEMS.c[c] for c in ITEM_COLUMNS))
        .where(*items_where(f, dialect, probe_dimensions))
        .order_by(ITEMS.c.created_at.desc(), ITEMS.c.pk.desc())
    )


def _newest_first(total: int, rows: int, stored: int, factor: float = 1.0) -> bool:
    """Whether a page of `rows` (limit and offset) of the `total` items under a filter, out of
    `stored` items walked, is found reading fewer items by walking the items newest first and testing
    each (about factor * rows * stored / total of them) than by reading the `total` matches
    through their index and sorting them."""
    return total * total > factor * rows * stored


def _stored(connection: Connection) -> int:
    """About how many items are stored (the highest key: no count of the items)."""
    return connection.execute(select(func.max(ITEMS.c.pk))).scalar_one() or 0


def _probe_dimensions(connection: Connection, f: StatsFilter, total: int, rows: int) -> bool:
    """Whether a page of `rows` (limit and offset) of the `total` items under `f` is found faster
    by reading the items newest first and looking up each one's dimensions than by reading every
    item with the filtered dimensions and sorting them (`_newest_first`). PostgreSQL's planner
    weighs this itself from the dimensions' statistics; SQLite keeps none."""
    if connection.dialect.name != "sqlite" or not f.dims or not total:
        return False
    return _newest_first(total, rows, _stored(connection))


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


def _page_by_pk(connection: Connection, found: Select) -> list[dict[str, Any]]:
    """The items whose keys `found` selects (a page: `pk`, `created_at`), newest first. Sorted
    by the page's own columns, which no index orders: sorted by the items' the planner may walk
    the newest-first index to join the page's rows."""
    page = found.subquery("page")
    return fetch(
        connection,
        select(ITEMS.c.pk, *(ITEMS.c[c] for c in ITEM_COLUMNS))
        .join_from(ITEMS, page, ITEMS.c.pk == page.c.pk)
        .order_by(page.c.created_at.desc(), page.c.pk.desc()),
    )


def _rollup_total(connection: Connection, f: StatsFilter) -> int | None:
    """How many items are under `f`, where the aggregates can tell (else None)."""
    facts = stat_facts(f, connection)
    if not facts.rollup:
        return None
    fq = facts.query
    return int(connection.execute(select(func.coalesce(func.sum(fq.c.n), 0))).scalar_one())


def _search_page(
    connection: Connection, f: StatsFilter, total: int, limit: int, offset: int
) -> list[dict[str, Any]]:
    """A page of the `total` items under `f` (a text search, PostgreSQL), newest first, read in
    a way PostgreSQL's planner cannot turn around (each way's own part is a MATERIALIZED CTE,
    which the planner neither merges into the page's order nor reads through another index):

    - many matches (`_newest_first` by `SEARCH_WINDOW`, of the items under the rest of `f`,
      counted by the aggregates where they can, else all stored): the newest `SEARCH_WINDOW *
      rows * rest / total` items under the rest of `f` (the newest-first index), each text
      tested; when they hold fewer than the page needs (the matches are older than most), as
      with few;
    - few: every match (the trigram index, or whatever index the count used), sorted.

    Either way the rows are those of the plain query (`_item_query`), in its order."""
    dialect = connection.dialect.name
    newest = (ITEMS.c.created_at.desc(), ITEMS.c.pk.desc())
    rows = limit + offset
    rest = StatsFilter(**{**f.__dict__, "q": None, "dims": dict(f.dims)})
    # The items under the rest of `f` hold every match: with as many, a walk is no shorter
    # (then they are not counted).
    walked = total
    if _newest_first(total, rows, walked, SEARCH_WINDOW):
        rolled = _rollup_total(connection, rest)
        walked = _stored(connection) if rolled is None else rolled
    if _newest_first(total, rows, walked, SEARCH_WINDOW):
        window = (
            select(ITEMS.c.pk, ITEMS.c.created_at, ITEMS.c.text)
            .where(*items_where(rest, dialect))
            .order_by(*newest)
            .limit(max(rows, math.ceil(SEARCH_WINDOW * rows * walked / total)))
            .cte("search_window")
            .prefix_with("MATERIALIZED")
        )
        found = (
            select(window.c.pk, window.c.created_at)
            .where(search_clause(f.q, dialect, window.c.text))
            .order_by(window.c.created_at.desc(), window.c.pk.desc())
            .limit(limit)
            .offset(offset)
        )
        page = _page_by_pk(connection, found)
        # The window is the first items in the page's order: its matches are the first matches
        # whenever they fill the page (or are all of them).
        if len(page) >= min(limit, total - offset):
            return page
    hits = (
        select(ITEMS.c.pk, ITEMS.c.created_at)
        .where(*items_where(f, dialect))
        .cte("search_hits")
        .prefix_with("MATERIALIZED")
    )
    found = (
        select(hits.c.pk, hits.c.created_at)
        .order_by(hits.c.created_at.desc(), hits.c.pk.desc())
        .limit(limit)
        .offset(offset)
    )
    return _page_by_pk(connection, found)


def items(
    connection: Connection, f: StatsFilter, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """One page of the items under `f`, newest first, with their topics, and how many there are."""
    dialect = connection.dialect.name
    # The aggregates count every item (classified or not) as the items table would.
    total = _rollup_total(connection, f)
    if total is None:
        total = connection.execute(
            select(func.count()).select_from(ITEMS).where(*items_where(f, dialect))
        ).scalar_one()
    if f.q and dialect == "postgresql":
        rows = _search_page(connection, f, int(total), limit, offset) if total > offset else []
    else:
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
