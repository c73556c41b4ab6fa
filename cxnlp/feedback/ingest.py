"""Analyzed items into the feedback store: from a frame of `cxnlp classify` output, from such a
file, or from the service's requests.

Each call (`ingest_frame`; `ingest_file`; each frame of `ingest_frames`) is one transaction:
either every item of it is stored (inserted, or updated in place
when its (dataset, id) is already there) or none is and the store is as it was. The per-day
aggregates are updated in the same transaction, by the difference each item makes
(`cxnlp.feedback.aggregates`; per value of the free dimensions `cxnlp.feedback.dimension_rollups`
keeps them for), so they always equal a GROUP BY over the items. Writers are
serialised (PostgreSQL advisory lock, SQLite's write lock) so that two ingests of one item never
both count it. Rows are validated first (`cxnlp.feedback.records`, `cxnlp.feedback.checks`) and
what needs no database is computed (`prepare_batch`: the aggregates' changes of new items among
it), then written by the database's writer (`write_batch`, `cxnlp.feedback.writers`); follow-up
cases are opened in the same transaction (`cxnlp.feedback.cases.cases_after_ingest`). Several
batches in a row (`ingest_frames`, the chunks of `ingest_file`) are a `pipeline`: the next batch
is prepared while a second thread writes the one before.

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
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection

from cxnlp.feedback.aggregates import Deltas, Rollup, dimension_rows
from cxnlp.feedback.cases import cases_after_ingest
from cxnlp.feedback.checks import check_dimension_keys
from cxnlp.feedback.db import FeedbackStore, lock_for_writing, open_store
from cxnlp.feedback.dimension_rollups import DIMENSION_TABLES, aggregated_keys
from cxnlp.feedback.models import (
    DAILY,
    DAILY_TOPICS,
    DIMENSION_LEN,
    TOPIC_CHANNELS,
    TOPIC_FIELDS,
    TOPIC_TOTALS,
    TOTALS,
)
from cxnlp.feedback.records import INDEXED_DIMENSIONS, records_from_frame, score_spec
from cxnlp.feedback.scales import Scale, declare
from cxnlp.feedback.writers import BatchWrite, writer_for
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


@dataclass
class Batch:
    """One transaction's share of an ingest: validated records (the last of each id, in order)
    and what is computed from them without the database (`prepare_batch`); `write_batch`
    stores it."""

    dataset: str
    records: list[dict[str, Any]]
    rows: int  # the records given, before the last of each id was kept
    errors: int
    model_name: str | None
    model_version: str | None
    now: dt.datetime
    wanted: dict[str, Scale]  # the scale of each score kind the records hold
    topics: list[tuple]  # `TOPIC_ROW`s
    menu: list[dict[str, Any]]  # the filter menus' values (`dimension_rows`)
    # Where every record has a date: the item rows, and the aggregates' changes they bring (as
    # if no item was stored before; every dimension key, narrowed once the store says which
    # have per-dimension aggregates). None where one has none (its date may be the stored one).
    items: list[dict[str, Any]] | None
    tables: list[tuple[str, Rollup]] | None


def _topic_pairs(records: Sequence[Mapping[str, Any]]) -> list[list[tuple]]:
    return [[(t["topic"], t["polarity"]) for t in r["topics"]] for r in records]


def _item_rows(batch: Batch, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    store_set = {
        "dataset": batch.dataset,
        "model_name": batch.model_name,
        "model_version": batch.model_version,
        "ingested_at": batch.now,
        "updated_at": batch.now,
    }
    rows = []
    for r in records:
        row = dict(r)
        del row["topics"]
        row.update(store_set)
        rows.append(row)
    return rows


def prepare_batch(
    records: Sequence[Mapping[str, Any]],
    *,
    dataset: str,
    model_name: str | None = None,
    model_version: str | None = None,
    score_scale: tuple[float, float] | None = None,
    now: dt.datetime | None = None,
) -> Batch:
    """The part of an ingest that needs no database, for validated records (see
    `records_from_frame`): records with the same id, the last one wins. Their scores are on
    `score_scale` (None: their kind's usual scale)."""
    if not dataset or len(dataset) > DIMENSION_LEN:
        raise ValueError(f"a dataset name of 1 to {DIMENSION_LEN} characters is needed")
    check_name(dataset, "the dataset name")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    latest = list({r["item_id"]: r for r in records}.values())
    kinds = {r["score_kind"] for r in latest if r["score_kind"]}
    batch = Batch(
        dataset=dataset,
        records=latest,
        rows=len(records),
        errors=sum(r["error"] is not None for r in records),
        model_name=model_name,
        model_version=model_version,
        now=now,
        wanted={kind: score_scale or SCORE_RANGES[kind] for kind in sorted(kinds)},
        topics=[
            (r["item_id"], n, *map(t.get, TOPIC_FIELDS))
            for r in latest
            for n, t in enumerate(r["topics"])
        ],
        menu=dimension_rows(dataset, latest),
        items=None,
        tables=None,
    )
    if all(r["created_at"] is not None for r in latest):
        batch.items = _item_rows(batch, latest)
        # The scales the store will hold for these kinds: `declare` refuses any other.
        deltas = Deltas(batch.wanted, None)
        deltas.add_all(dataset, latest, _topic_pairs(latest), 1.0)
        batch.tables = deltas.tables()
    return batch


def write_batch(
    connection: Connection, batch: Batch, on_tail: Callable[[], None] | None = None
) -> tuple[int, int]:
    """Store `batch` inside the caller's transaction; returns (inserted, updated). The dataset
    must hold its scores on the scales they were prepared on (`cxnlp.feedback.scales.declare`).
    `on_tail` is called before the last statements, which need no Python (SQLite's index rows,
    `pipeline`)."""
    dataset = batch.dataset
    lock_for_writing(connection)
    check_dimension_keys(connection, dataset, batch.records, INDEXED_DIMENSIONS)
    writer = writer_for(connection)
    writer.refresh_statistics()  # the lookups below are planned on them
    scales = declare(connection, dataset, batch.wanted)
    aggregated = aggregated_keys(connection, dataset, batch.records)
    ids = [r["item_id"] for r in batch.records]
    old = {row["pk"]: row for row in writer.old_items(dataset, ids)}
    records, items, tables, removed = batch.records, batch.items, batch.tables, False
    if old or tables is None:
        # Stored items change: their old contribution out, then every new one in (as one += per
        # item would, in this order: the same floating-point sums as before).
        old_pks = {row["item_id"]: pk for pk, row in old.items()}
        deltas = Deltas(scales, aggregated)
        topics: dict[int, list[tuple]] = defaultdict(list)
        if old:
            for pk, topic, polarity in writer.old_topics(list(old)):
                topics[pk].append((topic, polarity))
        for pk, row in old.items():
            deltas.add(dataset, row, topics[pk], -1.0)
        if items is None:
            records = []
            for r in batch.records:
                if r["created_at"] is None:
                    stored = old.get(old_pks.get(r["item_id"]))
                    when = stored["created_at"] if stored else batch.now
                    r = {**r, "created_at": when, "day": _as_day(when)}
                records.append(r)
            items = _item_rows(batch, records)
        deltas.add_all(dataset, records, _topic_pairs(records), 1.0)
        tables, removed = deltas.tables(), deltas.removed
    else:
        tables = [
            (role, rollup.where_first(aggregated) if role in DIMENSION_TABLES else rollup)
            for role, rollup in tables
        ]
    if old:
        writer.delete_topics(list(old))
    aggregates = [(_AGGREGATE_TABLES[role], rollup) for role, rollup in tables]
    writer.write_batch(BatchWrite(items, batch.topics, aggregates, removed, batch.menu))
    # Follow-up cases for the items that match a case rule, in the same transaction.
    cases_after_ingest(connection, dataset, records, batch.now)
    if on_tail is not None:
        on_tail()
    writer.finish()
    return len(records) - len(old), len(old)


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
    batch = prepare_batch(
        records,
        dataset=dataset,
        model_name=model_name,
        model_version=model_version,
        score_scale=score_scale,
        now=now,
    )
    return write_batch(connection, batch)


_DONE = object()
# How `pipeline` overlaps the making of a batch with the writing of the one before, by database:
# PostgreSQL's server writes while Python validates ("all"); SQLite writes in this process, row
# by row, each row taking Python's lock back (a thread writing rows while another runs Python
# waits for the lock at every row), so only its last statements and the commit, which need no
# Python, overlap ("tail").
OVERLAP = {"postgresql": "all", "sqlite": "tail"}


def pipeline(
    items: Iterable[Any],
    consume: Callable[[Any, Callable[[], None]], None],
    *,
    overlap: str | None,
) -> None:
    """`consume(item, tail)` for each of `items` in order. `overlap` None: one after another in
    this thread. "all": `consume` runs in a second thread, one item behind, so that the next
    item is made (read, validated, its aggregates computed) while the one before is written.
    "tail": the same, but the next item is only made once `consume` calls `tail()` (or returns).
    Either side's first error stops it: the items made before are consumed, no later one; the
    error of the earliest item is raised."""
    if overlap is None:
        for item in items:
            consume(item, lambda: None)
        return
    if overlap not in ("all", "tail"):
        raise ValueError(f"overlap must be None, 'all' or 'tail', not {overlap!r}")
    handoff: queue.Queue = queue.Queue(maxsize=1)
    failed: list[BaseException] = []

    def work() -> None:
        while (task := handoff.get()) is not _DONE:
            item, tailing = task
            try:
                if not failed:
                    consume(item, tailing.set)
            except BaseException as exc:  # noqa: BLE001 - raised by the caller's thread
                failed.append(exc)
            finally:
                tailing.set()

    worker = threading.Thread(target=work, name="cxnlp-ingest-writer", daemon=True)
    worker.start()
    error: BaseException | None = None
    try:
        for item in items:
            if failed:
                break
            tailing = threading.Event()
            handoff.put((item, tailing))
            if overlap == "tail":
                tailing.wait()
    except BaseException as exc:  # noqa: BLE001 - raised below, after the writer stopped
        error = exc
    finally:
        handoff.put(_DONE)
        worker.join()
    if failed:
        raise failed[0]
    if error is not None:
        raise error


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
    (stats,) = ingest_frames(
        [frame],
        dataset=dataset,
        store=store,
        text_col=text_col,
        id_col=id_col,
        date_col=date_col,
        score_col=score_col,
        score_kind=score_kind,
        model_name=model_name,
        model_version=model_version,
    )
    return stats


def ingest_frames(
    frames: Iterable[pd.DataFrame],
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
) -> list[IngestStats]:
    """Store each frame as `ingest_frame` would, one after another: each frame one transaction,
    committed in order. The next frame is validated and its aggregates computed while the one
    before is written (`pipeline`: in PostgreSQL all of it, in SQLite its last statements and
    commit). A frame that fails (a bad row, the
    database) stores nothing and stops the ingest there: the frames before it are stored, no
    later one. `frames` may be a generator (one frame in memory at a time, and one waiting)."""
    spec = score_spec(score_col, score_kind)
    target, owned = _store(store)
    done: list[IngestStats] = []

    def prepared() -> Iterator[tuple[float, Batch]]:
        for frame in frames:
            started = time.perf_counter()
            records = records_from_frame(
                frame,
                text_col=text_col,
                id_col=id_col,
                date_col=date_col,
                score_col=score_col,
                score_kind=score_kind,
            )
            batch = prepare_batch(
                records,
                dataset=dataset,
                model_name=model_name,
                model_version=model_version,
                score_scale=spec.scale if spec else None,
            )
            yield started, batch

    def write(item: tuple[float, Batch], tail: Callable[[], None]) -> None:
        started, batch = item
        with target.engine.begin() as connection:
            inserted, updated = write_batch(connection, batch, tail)
        seconds = time.perf_counter() - started
        done.append(IngestStats(dataset, batch.rows, inserted, updated, batch.errors, seconds))
        logger.info("stored %d items in %s (%d new)", batch.rows, dataset, inserted)

    try:
        pipeline(prepared(), write, overlap=OVERLAP.get(target.dialect))
    finally:
        if owned:
            target.close()
    return done


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
    as it was. Rows whose id appears twice keep the later row. It is read `chunk_rows` rows at a
    time; the next chunk is read and validated while the one before is written (`pipeline`).
    """
    from cxnlp.io import iter_table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    started = time.perf_counter()
    spec = score_spec(score_col, score_kind)
    target, owned = _store(store)
    totals = {"rows": 0, "inserted": 0, "updated": 0, "errors": 0}

    def prepared() -> Iterator[Batch]:
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
            offset += len(chunk)
            yield prepare_batch(
                records,
                dataset=dataset,
                model_name=model_name,
                model_version=model_version,
                score_scale=spec.scale if spec else None,
            )

    try:
        with target.engine.begin() as connection:

            def write(batch: Batch, tail: Callable[[], None]) -> None:
                new, old = write_batch(connection, batch, tail)
                totals["rows"] += batch.rows
                totals["inserted"] += new
                totals["updated"] += old
                totals["errors"] += batch.errors

            # The connection is the writer's alone until the pipeline returns.
            pipeline(prepared(), write, overlap=OVERLAP.get(target.dialect))
    finally:
        if owned:
            target.close()
    stats = IngestStats(dataset, **totals, seconds=time.perf_counter() - started)
    logger.info(
        "stored %s: %d rows (%d new) in %.1f s", path, stats.rows, stats.inserted, stats.seconds
    )
    return stats
