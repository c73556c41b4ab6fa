"""Which free dimensions (an item's `dimensions` entries: the export's extra columns) have
per-dimension aggregates (`daily_dimension_*`), decided per dataset and key at ingest, and how
those aggregates are filled from the stored items (migration 0008).

A key has them while its values stay few: at most `MAX_AGGREGATED_VALUES` distinct values (ever
seen: `feedback_dimensions` holds every value of such a key), each, and the key itself, at most
`DIMENSION_LEN` characters. A key that goes past that (an id-like column) loses them for good:
its rows are deleted and `dimension_keys` marks it, and a filter on it reads the items through
the dimension index instead. With the cap on a dataset's keys (`checks.MAX_DIMENSION_KEYS`) the
per-dimension aggregates hold at most MAX_DIMENSION_KEYS * MAX_AGGREGATED_VALUES times the rows
of the aggregates they refine.

The ingest keeps the aggregates in step with the items (`cxnlp.feedback.aggregates.Deltas`, given
`aggregated_keys`); `fill` computes them from the items with the same SQL measures as a view that
reads the items (`cxnlp.feedback.facts.item_measures`), so both give the same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, true, update
from sqlalchemy.sql import FromClause

from cxnlp.feedback.aggregates import MENU_VALUES_PER_BATCH
from cxnlp.feedback.facts import ITEM_DIMENSIONS, item_keys, item_measures, with_scales
from cxnlp.feedback.models import (
    DIMENSION_DAILY,
    DIMENSION_KEY_STATES,
    DIMENSION_LEN,
    DIMENSION_TOPIC_CHANNELS,
    DIMENSION_TOPIC_TOTALS,
    DIMENSION_TOTALS,
    DIMENSIONS,
    ITEMS,
    STAT_MEASURES,
    TOPICS,
)

# Distinct values a dataset's dimension key may have and keep its per-dimension aggregates.
MAX_AGGREGATED_VALUES = 100
# Every value of an aggregated key reaches the filter menus' table (a batch records up to
# MENU_VALUES_PER_BATCH values per key), which is where the values are counted.
assert MAX_AGGREGATED_VALUES < MENU_VALUES_PER_BATCH
# The per-dimension aggregate tables by the role `Deltas.tables` gives them.
DIMENSION_TABLES = {
    "dimension_daily": DIMENSION_DAILY,
    "dimension_totals": DIMENSION_TOTALS,
    "dimension_topic_totals": DIMENSION_TOPIC_TOTALS,
    "dimension_topic_channels": DIMENSION_TOPIC_CHANNELS,
}
_KEYS = DIMENSION_KEY_STATES


def _fits(key: str, values: Iterable[str]) -> bool:
    values = set(values)
    return (
        len(key) <= DIMENSION_LEN
        and len(values) <= MAX_AGGREGATED_VALUES
        and all(len(v) <= DIMENSION_LEN for v in values)
    )


def aggregated_keys(
    connection: Connection, dataset: str, records: Iterable[Mapping[str, Any]]
) -> frozenset[str]:
    """The dimension keys of `dataset` with per-dimension aggregates once `records` are stored:
    a key they bring first is recorded (with or without them), a key they take past the cap loses
    them (its rows are deleted). Run before the batch's filter-menu values are recorded."""
    states = dict(
        connection.execute(
            select(_KEYS.c.dim_key, _KEYS.c.aggregated).where(_KEYS.c.dataset == dataset)
        ).all()
    )
    brought: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for key, value in r["dimensions"].items():
            brought[key].add(value)
    first: dict[str, bool] = {}
    losing: set[str] = set()
    for key, values in brought.items():
        name = key[:DIMENSION_LEN]
        fits = _fits(key, values)
        if name in states:
            if states[name] and not fits:
                losing.add(name)
        else:
            first[name] = first.get(name, True) and fits
    # Values the store has seen of the aggregated keys the batch brings: does any go past the cap?
    kept = [k for k in brought if states.get(k) and k not in losing]
    if kept:
        seen: dict[str, set[str]] = defaultdict(set)
        for key, value in connection.execute(
            select(DIMENSIONS.c.key, DIMENSIONS.c.value).where(
                DIMENSIONS.c.dataset == dataset, DIMENSIONS.c.key.in_(kept)
            )
        ):
            seen[key].add(value)
        losing.update(k for k in kept if len(seen[k] | brought[k]) > MAX_AGGREGATED_VALUES)
    if first:
        connection.execute(
            insert(_KEYS),
            [{"dataset": dataset, "dim_key": k, "aggregated": v} for k, v in first.items()],
        )
    if losing:
        connection.execute(
            update(_KEYS)
            .where(_KEYS.c.dataset == dataset, _KEYS.c.dim_key.in_(sorted(losing)))
            .values(aggregated=False)
        )
        for table in DIMENSION_TABLES.values():
            connection.execute(
                delete(table).where(table.c.dataset == dataset, table.c.dim_key.in_(losing))
            )
    aggregated = {k for k, v in states.items() if v} | {k for k, v in first.items() if v}
    return frozenset(aggregated - losing)


def _pairs(dialect: str) -> tuple[FromClause, Any, Any, Any]:
    """An item's (key, value) pairs as a FROM item: (it, the ON clause joining it to the items,
    its key column, its value column)."""
    if dialect == "postgresql":
        pairs = (
            func.jsonb_each_text(ITEMS.c.dimensions)
            .table_valued("key", "value")
            .lateral("dimension_pairs")
        )
        return pairs, true(), pairs.c.key, pairs.c.value
    if dialect == "sqlite":  # the dimension index (migration 0007) holds them
        d = ITEM_DIMENSIONS
        return d, d.c.item_pk == ITEMS.c.pk, d.c.key, d.c.value
    raise ValueError(f"the feedback store supports SQLite and PostgreSQL, not {dialect}")


def fill(connection: Connection) -> None:
    """Record every dataset's dimension keys (`dimension_keys`), the values of the aggregated
    ones in `feedback_dimensions`, and fill the per-dimension aggregates from the stored items
    (the tables must be empty)."""
    dialect = connection.dialect.name
    pairs, on, key, value = _pairs(dialect)
    name = func.substr(key, 1, DIMENSION_LEN)
    fits = and_(
        func.count(value.distinct()) <= MAX_AGGREGATED_VALUES,
        func.max(func.length(value)) <= DIMENSION_LEN,
        func.max(func.length(key)) <= DIMENSION_LEN,
    )
    per_key = (
        select(ITEMS.c.dataset, name, fits)
        .select_from(ITEMS.join(pairs, on))
        .group_by(ITEMS.c.dataset, name)
    )
    connection.execute(insert(_KEYS).from_select(["dataset", "dim_key", "aggregated"], per_key))
    held = and_(_KEYS.c.dataset == ITEMS.c.dataset, _KEYS.c.dim_key == key, _KEYS.c.aggregated)
    menu = (
        select(ITEMS.c.dataset, key.label("key"), value.label("value"))
        .select_from(ITEMS.join(pairs, on).join(_KEYS, held))
        .distinct()
        .subquery("menu")
    )
    recorded = (
        select(DIMENSIONS.c.key)
        .where(
            DIMENSIONS.c.dataset == menu.c.dataset,
            DIMENSIONS.c.key == menu.c.key,
            DIMENSIONS.c.value == menu.c.value,
        )
        .exists()
    )
    connection.execute(
        insert(DIMENSIONS).from_select(
            ["dataset", "key", "value"],
            select(menu.c.dataset, menu.c.key, menu.c.value).where(~recorded),
        )
    )
    for table in DIMENSION_TABLES.values():
        topics = "topic" in table.c
        source = ITEMS.join(TOPICS, TOPICS.c.item_pk == ITEMS.c.pk) if topics else ITEMS
        topic_keys = (
            [TOPICS.c.topic, func.coalesce(TOPICS.c.polarity, "").label("polarity")]
            if topics
            else []
        )
        facts = (
            select(
                key.label("dim_key"),
                value.label("dim_value"),
                *item_keys(dialect),
                *topic_keys,
                *item_measures(),
            )
            .select_from(with_scales(source).join(pairs, on).join(_KEYS, held))
            .subquery("facts")
        )
        keys = [facts.c[column.name] for column in table.primary_key.columns]
        sums = [func.sum(facts.c[m]) for m in STAT_MEASURES]
        connection.execute(
            insert(table).from_select(
                [*(k.name for k in keys), *STAT_MEASURES],
                select(*keys, *sums).group_by(*keys),
            )
        )
