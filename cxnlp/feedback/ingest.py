"""Analyzed items into the feedback store: from a frame of `cxnlp classify` output, from such a
file, or from the service's requests.

Each call is one transaction: either every item of it is stored (inserted, or updated in place
when its (dataset, id) is already there) or none is and the store is as it was. The per-day
aggregates are updated in the same transaction, by the difference each item makes
(`cxnlp.feedback.aggregates`; per value of the free dimensions `cxnlp.feedback.dimension_rollups`
keeps them for), so they always equal a GROUP BY over the items. Writers are
serialised (PostgreSQL advisory lock, SQLite's write lock) so that two ingests of one item never
both count it. Rows are validated first (`cxnlp.feedback.records`, `cxnlp.feedback.checks`), written by the
database's writer (`cxnlp.feedback.writers`); follow-up cases are opened in the same transaction
(`cxnlp.feedback.cases.cases_after_ingest`).

>>> import pandas as pd
>>> from cxnlp.feedback.db import open_store
>>> frame = pd.DataFrame({"id": ["a"], "text": ["late"], "sentiment": ["negative"],
...     "p_positive": [0.1], "p_neutral": [0.1], "p_negative": [0.8], "confidence": [0.8],
...     "lang": ["en"], "topics": ["[]"], "error": [None], "created_at": ["2026-09-07"]})
>>> with open_store("sqlite://") as store:
...     ingest_frame(frame, dataset="shop", store=store).inserted
1
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection

from cxnlp.feedback.aggregates import Deltas, dimension_rows, emptied, rollup_rows
from cxnlp.feedback.cases import cases_after_ingest
from cxnlp.feedback.checks import check_dimension_keys
from cxnlp.feedback.db import FeedbackStore, lock_for_writing, open_store
from cxnlp.feedback.dimension_rollups import DIMENSION_TABLES, aggregated_keys
from cxnlp.feedback.models import (
    DAILY,
    DAILY_TOPICS,
    DIMENSION_LEN,
    DIMENSIONS,
    TOPIC_CHANNELS,
    TOPIC_FIELDS,
    TOPIC_TOTALS,
    TOPICS,
    TOTALS,
)
from cxnlp.feedback.records import INDEXED_DIMENSIONS, records_from_frame, score_spec
from cxnlp.feedback.scales import declare
from cxnlp.feedback.writers import writer_for
from cxnlp.io.validate import check_name
from cxnlp.report.scores import SCORE_RANGES

logger = logging.getLogger(__name__)

_AGGREGATE_TABLES = {
    "daily": DAILY,
    "daily_topics": DAILY_TOPICS,
    "totals": TOTALS,
    "topic_totals": TOPIC_TOTALS,
    "topic_channels": TOPIC_CHANNELS,
    **DIMENSION_TABLES,
}


@dataclass
class IngestStats:
    """What one ingest did."""

    dataset: str
    rows: int
    inserted: int
    updated: int
    errors: int
    seconds: float

    @property
    def items_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


def ingest_records(
    connection: Connection,
    records: Sequence[Mapping[str, Any]],
    *,
    dataset: str,
    model_name: str | None = None,
    model_version: str | None = None,
    score_scale: tuple[float, float] | None = None,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """Write validated records (see `records_from_frame`) inside the caller's transaction;
    returns (inserted, updated). Records with the same id: the last one wins. Their scores are
    on `score_scale` (None: their kind's usual scale), which the dataset must hold them on
    (`cxnlp.feedback.scales.declare`)."""
    if not dataset or len(dataset) > DIMENSION_LEN:
        raise ValueError(f"a dataset name of 1 to {DIMENSION_LEN} characters is needed")
    check_name(dataset, "the dataset name")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    lock_for_writing(connection)
    check_dimension_keys(connection, dataset, records, INDEXED_DIMENSIONS)
    writer = writer_for(connection)
    writer.refresh_statistics()  # the lookups below are planned on them
    latest = {r["item_id"]: r for r in records}
    kinds = {r["score_kind"] for r in latest.values() if r["score_kind"]}
    wanted = {kind: score_scale or SCORE_RANGES[kind] for kind in sorted(kinds)}
    deltas = Deltas(
        declare(connection, dataset, wanted), aggregated_keys(connection, dataset, latest.values())
    )
    old = {row["pk"]: row for row in writer.old_items(dataset, list(latest))}
    old_pks = {row["item_id"]: pk for pk, row in old.items()}
    if old:
        topics: dict[int, list[tuple]] = defaultdict(list)
        for pk, topic, polarity in writer.old_topics(list(old)):
            topics[pk].append((topic, polarity))
        for pk, row in old.items():
            deltas.add(dataset, row, topics[pk], -1.0)
    item_rows = []
    for r in latest.values():
        if r["created_at"] is None:
            stored = old.get(old_pks.get(r["item_id"]))
            when = stored["created_at"] if stored else now
            r = latest[r["item_id"]] = {**r, "created_at": when, "day": _as_day(when)}
        deltas.add(dataset, r, [(t["topic"], t["polarity"]) for t in r["topics"]], 1.0)
        row = {k: v for k, v in r.items() if k != "topics"}
        row.update(
            dataset=dataset,
            model_name=model_name,
            model_version=model_version,
            ingested_at=now,
            updated_at=now,
        )
        item_rows.append(row)
    if old:
        writer.delete_topics(list(old))
    pks = writer.upsert_items(item_rows)
    writer.insert(
        TOPICS,
        [
            {"item_pk": pks[r["item_id"]], "ordinal": n, **{k: t.get(k) for k in TOPIC_FIELDS}}
            for r in latest.values()
            for n, t in enumerate(r["topics"])
        ],
    )
    tables = [(_AGGREGATE_TABLES[role], touched) for role, touched in deltas.tables()]
    for table, touched in tables:
        writer.add_to(table, rollup_rows(touched))
    if deltas.removed:
        # Keys that an update emptied (an item that moved to another day or sentiment).
        for table, touched in tables:
            writer.delete_empty(table, emptied(touched))
    writer.insert_missing(DIMENSIONS, dimension_rows(dataset, latest.values()))
    # Follow-up cases for the items that match a case rule, in the same transaction.
    cases_after_ingest(connection, dataset, latest.values(), now)
    return len(latest) - len(old_pks), len(old_pks)


def _as_day(when: dt.datetime | dt.date | str) -> dt.date:
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when)
    return when.date() if isinstance(when, dt.datetime) else when


def _store(store: FeedbackStore | str | None) -> tuple[FeedbackStore, bool]:
    if isinstance(store, FeedbackStore):
        return store, False
    return open_store(store), True


def ingest_frame(
    frame: pd.DataFrame,
    *,
    dataset: str,
    store: FeedbackStore | str | None = None,
    text_col: str = "text",
    id_col: str = "id",
    date_col: str | None = "created_at",
    score_col: str | None = None,
    score_kind: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
) -> IngestStats:
    """Store the rows of a frame of `cxnlp classify` output under `dataset`, in one transaction.
    `store` is an open store, a database URL, or None for `$CXNLP_DATABASE_URL` / the default."""
    started = time.perf_counter()
    spec = score_spec(score_col, score_kind)
    records = records_from_frame(
        frame,
        text_col=text_col,
        id_col=id_col,
        date_col=date_col,
        score_col=score_col,
        score_kind=score_kind,
    )
    target, owned = _store(store)
    try:
        with target.engine.begin() as connection:
            inserted, updated = ingest_records(
                connection,
                records,
                dataset=dataset,
                model_name=model_name,
                model_version=model_version,
                score_scale=spec.scale if spec else None,
            )
    finally:
        if owned:
            target.close()
    errors = sum(r["error"] is not None for r in records)
    stats = IngestStats(
        dataset, len(records), inserted, updated, errors, time.perf_counter() - started
    )
    logger.info("stored %d items in %s (%d new)", stats.rows, dataset, inserted)
    return stats


def ingest_file(
    path: str | Path,
    *,
    dataset: str,
    store: FeedbackStore | str | None = None,
    text_col: str = "text",
    id_col: str = "id",
    date_col: str | None = "created_at",
    score_col: str | None = None,
    score_kind: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    chunk_rows: int = 10_000,
) -> IngestStats:
    """Store a file written by `cxnlp classify` (CSV, JSONL, Parquet, XLSX) under `dataset`.

    The whole file is one transaction: a bad row anywhere (named in the error) leaves the store
    as it was. Rows whose id appears twice keep the later row.
    """
    from cxnlp.io import iter_table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    started = time.perf_counter()
    spec = score_spec(score_col, score_kind)
    target, owned = _store(store)
    rows = inserted = updated = errors = 0
    try:
        with target.engine.begin() as connection:
            offset = 0
            for chunk in iter_table(path, chunk_rows=chunk_rows):
                if offset == 0 and date_col == "created_at" and date_col not in chunk.columns:
                    logger.info("%s has no created_at column: items are dated now", path)
                records = records_from_frame(
                    chunk,
                    text_col=text_col,
                    id_col=id_col,
                    date_col=date_col,
                    score_col=score_col,
                    score_kind=score_kind,
                    row_offset=offset,
                )
                new, old = ingest_records(
                    connection,
                    records,
                    dataset=dataset,
                    model_name=model_name,
                    model_version=model_version,
                    score_scale=spec.scale if spec else None,
                )
                offset += len(chunk)
                rows += len(records)
                inserted += new
                updated += old
                errors += sum(r["error"] is not None for r in records)
    finally:
        if owned:
            target.close()
    stats = IngestStats(dataset, rows, inserted, updated, errors, time.perf_counter() - started)
    logger.info("stored %s: %d rows (%d new) in %.1f s", path, rows, inserted, stats.seconds)
    return stats
