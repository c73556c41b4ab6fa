"""The ingest's fast paths keep every item and aggregate as they were: the batch aggregates
(numpy) against a plain per-row sum, the pipelined ingest (`ingest_frames`, `ingest_file`: the
next batch validated while the database writes one) against one frame at a time, and every
aggregate table against a recomputation from the stored items, on SQLite and PostgreSQL (a
missing server skips these outside CI and fails them in CI, `feedback_helpers.database_url`)."""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from feedback_helpers import classified_frame, database_url
from sqlalchemy import select

from cxnlp.feedback import ingest as ingest_module
from cxnlp.feedback.aggregates import Deltas, rollup_rows
from cxnlp.feedback.db import open_store
from cxnlp.feedback.ingest import ingest_file, ingest_frame, ingest_frames, pipeline
from cxnlp.feedback.models import (
    CASE_ITEMS,
    CASES,
    DAILY,
    DAILY_TOPICS,
    DIMENSION_DAILY,
    DIMENSION_KEY_STATES,
    DIMENSION_TOPIC_CHANNELS,
    DIMENSION_TOPIC_TOTALS,
    DIMENSION_TOTALS,
    DIMENSIONS,
    ITEMS,
    SCALES,
    STAT_KEYS,
    STAT_MEASURES,
    TOPIC_CHANNELS,
    TOPIC_TOTALS,
    TOPICS,
    TOTALS,
)
from cxnlp.labels import PROBABILITY_COLUMNS
from cxnlp.report.scores import score_flags
from cxnlp.report.segments import micro

AGGREGATES = {
    "daily": DAILY,
    "daily_topics": DAILY_TOPICS,
    "totals": TOTALS,
    "topic_totals": TOPIC_TOTALS,
    "topic_channels": TOPIC_CHANNELS,
    "dimension_daily": DIMENSION_DAILY,
    "dimension_totals": DIMENSION_TOTALS,
    "dimension_topic_totals": DIMENSION_TOPIC_TOTALS,
    "dimension_topic_channels": DIMENSION_TOPIC_CHANNELS,
}
# Where the topic and polarity start in a key of `_plain_tables`.
_TAIL = len(STAT_KEYS)
# Item columns the store sets to the time of the ingest (different in two runs).
WHEN_STORED = {"pk", "ingested_at", "updated_at"}


# --- the batch aggregates against one += per row -----------------------------------------------


def _measures(r: dict, scales: dict, sign: float) -> list[float]:
    score, kind = r["score"], r["score_kind"]
    flags = score_flags(score, kind, scales.get(kind)) if score is not None else (0, 0, 0)
    values = {
        "n": 1.0,
        **{f"{c}_sum": float(micro(r[c])) for c in PROBABILITY_COLUMNS},
        "score_n": float(score is not None),
        "score_sum": score or 0.0,
        "score_sq_sum": score * score if score is not None else 0.0,
        "promoters": float(flags[0]),
        "detractors": float(flags[1]),
        "satisfied": float(flags[2]),
    }
    return [sign * values[m] for m in STAT_MEASURES]


def _plain_sums(rows) -> dict[tuple, list[float]]:
    """(key, measures) rows added up per key with one += per row, in order."""
    sums: dict[tuple, list[float]] = {}
    for key, values in rows:
        total = sums.setdefault(key, [0.0] * len(STAT_MEASURES))
        for j, v in enumerate(values):
            total[j] += v
    return sums


def _plain_tables(entries, keep_dims) -> dict[str, dict[tuple, list[float]]]:
    """What `Deltas.tables` computes, the slow way: `entries` are (dataset, record, topics,
    sign, scales); coarser tables add up the finer table's sums in its order, as the ingest
    always has."""
    base, topics, dims, dim_topics = [], [], [], []
    for dataset, r, pairs, sign, scales in entries:
        key = (dataset, *(r[k] or "" for k in STAT_KEYS[1:]))
        values = _measures(r, scales, sign)
        base.append((key, values))
        dimensions = [(k, v) for k, v in r["dimensions"].items() if k in keep_dims]
        dims += [((*pair, *key), values) for pair in dimensions]
        for topic, polarity in pairs:
            topics.append(((*key, topic, polarity or ""), values))
            dim_topics += [((*pair, *key, topic, polarity or ""), values) for pair in dimensions]

    def project(table, keep, tail=_TAIL):
        return _plain_sums(
            (tuple(k[i] for i in keep) + k[tail:], values) for k, values in table.items()
        )

    total = [STAT_KEYS.index(k) for k in ("dataset", "day", "sentiment", "score_kind")]
    channel = [STAT_KEYS.index(k) for k in ("dataset", "day", "channel", "sentiment")]
    daily, daily_topics = _plain_sums(base), _plain_sums(topics)
    dim_daily, dim_topic = _plain_sums(dims), _plain_sums(dim_topics)
    tail = 2 + len(STAT_KEYS)
    return {
        "daily": daily,
        "daily_topics": daily_topics,
        "totals": project(daily, total),
        "topic_totals": project(daily_topics, total),
        "topic_channels": project(daily_topics, channel),
        "dimension_daily": dim_daily,
        "dimension_totals": project(dim_daily, [0, 1, *(2 + i for i in total)], tail),
        "dimension_topic_totals": project(dim_topic, [0, 1, *(2 + i for i in total)], tail),
        "dimension_topic_channels": project(dim_topic, [0, 1, *(2 + i for i in channel)], tail),
    }


def _records(n: int, seed: int) -> list[dict]:
    """Records as the ingest holds them, with CES scores that are not whole numbers (their sums
    depend on the order they are added in) and two free dimensions."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        p = rng.dirichlet([1, 1, 1]).round(6)
        day = pd.Timestamp("2026-09-07") + pd.Timedelta(days=int(rng.integers(0, 9)))
        scored = i % 4 != 0
        records.append(
            {
                "day": day.date(),
                "lang": str(rng.choice(["fa", "ar", "en"])) if i % 13 else None,
                "channel": str(rng.choice(["app", "web"])) if i % 7 else None,
                "sentiment": str(rng.choice(["negative", "neutral", "positive"])),
                "score_kind": ("ces" if i % 3 else "nps") if scored else None,
                "score": (
                    (float(rng.uniform(1, 7)) if i % 3 else float(rng.integers(0, 11)))
                    if scored
                    else None
                ),
                "p_positive": float(p[0]),
                "p_neutral": float(p[1]) if i % 17 else None,
                "p_negative": float(p[2]),
                "dimensions": {
                    **({"tier": str(rng.choice(["gold", "silver"]))} if i % 5 else {}),
                    "region": str(rng.choice(["n", "s", "e"])),
                },
                "topics": [
                    (str(t), str(rng.choice(["negative", "positive", ""])))
                    for t in rng.choice(
                        ["delivery", "price", "app"], int(rng.integers(0, 3)), False
                    )
                ],
            }
        )
    return records


@pytest.mark.parametrize("keep_dims", [set(), {"tier"}, {"tier", "region"}])
def test_batch_aggregates_equal_one_sum_per_row_to_the_last_bit(keep_dims):
    scales = {"ces": None, "nps": (0, 10)}
    old, new = _records(150, seed=1), _records(400, seed=2)
    deltas = Deltas(scales, keep_dims)
    for r in old:  # an update takes the stored items out first
        deltas.add("shop", r, r["topics"], -1.0)
    deltas.add_all("shop", new[:250], [r["topics"] for r in new[:250]], 1.0)
    deltas.add_all("other", new[250:], [r["topics"] for r in new[250:]], 1.0)
    entries = [("shop", r, r["topics"], -1.0, scales) for r in old]
    entries += [("shop", r, r["topics"], 1.0, scales) for r in new[:250]]
    entries += [("other", r, r["topics"], 1.0, scales) for r in new[250:]]
    expected = _plain_tables(entries, keep_dims)
    tables = dict(deltas.tables())
    assert deltas.removed
    for role, plain in expected.items():
        if role.startswith("dimension") and not keep_dims:
            assert role not in tables
            continue
        got = tables[role]
        # The same keys in the same order (first seen first), the same float sums bit for bit.
        assert got.keys == list(plain), role
        assert got.sums.tolist() == list(plain.values()), role
        assert len(rollup_rows(got)) == sum(any(v) for v in plain.values()), role
    assert expected["dimension_daily"] or not keep_dims


def test_aggregates_of_every_key_narrowed_later_equal_those_of_the_kept_keys():
    records = _records(300, seed=3)
    scales = {"ces": None, "nps": (0, 10)}
    narrow, every = Deltas(scales, {"tier"}), Deltas(scales, None)
    for deltas in (narrow, every):
        deltas.add_all("shop", records, [r["topics"] for r in records], 1.0)
    for (role, kept), (_, wide) in zip(narrow.tables(), every.tables(), strict=True):
        if role.startswith("dimension"):
            assert {k[0] for k in wide.keys} == {"tier", "region"}
            wide = wide.where_first({"tier"})
        assert kept.keys == wide.keys and np.array_equal(kept.sums, wide.sums), role


# --- the store: pipelined against one frame at a time, and against the items --------------------


def _store(kind, tmp_path, name):
    path = tmp_path / name
    path.mkdir()
    generator = database_url(kind, path)
    return generator, open_store(next(generator))


@pytest.fixture(params=["sqlite", "postgresql"])
def two_stores(request, tmp_path):
    made = [_store(request.param, tmp_path, name) for name in ("one", "two")]
    yield [store for _, store in made]
    for generator, store in made:
        store.close()
        generator.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    generator, opened = _store(request.param, tmp_path, "store")
    yield opened
    opened.close()
    generator.close()


def _frames() -> list[pd.DataFrame]:
    """Batches with every kind of change: new items, resent ones that moved (day, sentiment,
    channel, topics, a dimension's value), resent ones without a date (they keep theirs), a
    duplicate id, a dimension key that passes the cap on its values."""
    first = classified_frame(300, seed=21)
    first["region"] = np.where(np.arange(300) % 3 == 0, "", np.where(np.arange(300) % 2, "n", "s"))
    moved = first.iloc[:120].copy()
    moved["sentiment"] = "negative"
    moved["created_at"] = "2026-10-05T08:00:00"
    moved["channel"] = "phone"
    moved["region"] = "w"
    moved["topics"] = json.dumps([{"topic": "refunds", "polarity": "negative", "score": 0.8}])
    fresh = classified_frame(500, seed=22).iloc[300:].copy()
    fresh["region"] = "n"
    second = pd.concat([moved, fresh], ignore_index=True)
    second.loc[len(second) - 1, "id"] = second.loc[0, "id"]  # the later row wins
    undated = first.iloc[200:260].drop(columns=["created_at"]).copy()
    undated["region"] = "e"
    undated = pd.concat([undated, classified_frame(620, seed=23).iloc[600:]], ignore_index=True)
    undated["region"] = undated["region"].fillna("n")
    wide = classified_frame(160, seed=24)
    wide["id"] = [f"w{i}" for i in range(160)]
    wide["region"] = "s"
    wide["order"] = [f"o{i}" for i in range(160)]  # past the cap at once: never aggregated
    more = classified_frame(120, seed=25)
    more["id"] = [f"x{i}" for i in range(120)]
    more["region"] = [f"x{i}" for i in range(120)]  # takes region past the cap: its rows go
    return [first, second, undated, wide, more]


def _ingest_each(store, frames) -> list:
    return [
        ingest_frame(f, dataset="shop", store=store, score_col="score", score_kind="nps")
        for f in frames
    ]


def _dump(store) -> dict[str, list[tuple]]:
    """Every row of the store's tables but the times the ingest set (items by their id)."""
    with store.engine.connect() as c:
        items = [
            tuple(r[k] for k in sorted(r.keys()) if k not in WHEN_STORED)
            for r in c.execute(select(ITEMS)).mappings()
        ]
        topics = c.execute(
            select(
                ITEMS.c.dataset, ITEMS.c.item_id, *(TOPICS.c[k] for k in TOPICS.c.keys()[1:])
            ).select_from(TOPICS.join(ITEMS, ITEMS.c.pk == TOPICS.c.item_pk))
        ).all()
        tables = {name: c.execute(select(t)).all() for name, t in AGGREGATES.items()}
        others = {
            t.name: c.execute(select(t)).all() for t in (DIMENSIONS, DIMENSION_KEY_STATES, SCALES)
        }
        cases = c.execute(select(CASES.c.item_id, CASES.c.reason, CASES.c.item_count)).all()
        links = c.execute(select(CASE_ITEMS.c.item_id)).all()
    dump = {"items": items, "topics": topics, **tables, **others, "cases": cases, "links": links}
    return {name: sorted(map(tuple, rows), key=repr) for name, rows in dump.items()}


def test_pipelined_frames_store_what_one_frame_at_a_time_stores(two_stores):
    one, two = two_stores
    frames = _frames()
    each = _ingest_each(one, frames)
    together = ingest_frames(
        iter(frames), dataset="shop", store=two, score_col="score", score_kind="nps"
    )
    assert [(s.rows, s.inserted, s.updated, s.errors) for s in together] == [
        (s.rows, s.inserted, s.updated, s.errors) for s in each
    ]
    assert [(s.inserted, s.updated) for s in each] == [(300, 0), (199, 120), (20, 60), (160, 0),
        (120, 0)]  # fmt: skip
    assert _dump(two) == _dump(one)


def _stored(store):
    with store.engine.connect() as c:
        items = [dict(r) for r in c.execute(select(ITEMS)).mappings()]
        topics = defaultdict(list)
        for pk, topic, polarity in c.execute(
            select(TOPICS.c.item_pk, TOPICS.c.topic, TOPICS.c.polarity)
        ):
            topics[pk].append((topic, polarity or ""))
        scales = {
            (d, k): (lo, hi) if lo is not None else None
            for d, k, lo, hi in c.execute(select(SCALES))
        }
        aggregated = {(d, k) for d, k, on in c.execute(select(DIMENSION_KEY_STATES)) if on}
        tables = {}
        for role, t in AGGREGATES.items():
            keys = list(t.primary_key.columns)
            rows = c.execute(select(*keys, *(t.c[m] for m in STAT_MEASURES))).all()
            tables[role] = {tuple(r[: len(keys)]): r[len(keys) :] for r in rows}
    return items, topics, scales, aggregated, tables


def test_every_aggregate_equals_a_recomputation_from_the_stored_items(store):
    frames = _frames()
    ingest_frames(frames[:2], dataset="shop", store=store, score_col="score", score_kind="nps")
    csat = classified_frame(120, seed=26)  # CSAT on 1-7: satisfied counted on that scale
    csat["q2"] = (1 + csat["score"] % 7).astype("Int64")
    ingest_frame(csat.drop(columns=["score"]), dataset="csat", store=store, score_col="csat:1-7=q2")
    _ingest_each(store, frames[2:])
    items, topics, scales, aggregated, tables = _stored(store)
    expected: dict[str, dict] = defaultdict(dict)
    for item in items:
        kind = item["score_kind"]
        values = _measures(item, {kind: scales.get((item["dataset"], kind))}, 1.0)
        row = {k: item[k] or "" for k in STAT_KEYS}
        row["day"] = item["day"]
        pairs = [
            {"dim_key": k, "dim_value": v}
            for k, v in item["dimensions"].items()
            if (item["dataset"], k) in aggregated
        ]
        mentions = [{"topic": t, "polarity": p} for t, p in topics[item["pk"]]]
        for role, table in AGGREGATES.items():
            names = [c.name for c in table.primary_key.columns]
            for pair in pairs if role.startswith("dimension") else [{}]:
                for mention in mentions if "topic" in names else [{}]:
                    full = {**row, **pair, **mention}
                    key = tuple(full[k] for k in names)
                    total = expected[role].setdefault(key, [0.0] * len(STAT_MEASURES))
                    for j, v in enumerate(values):
                        total[j] += v
    for role, got in tables.items():
        want = expected[role]
        assert set(got) == set(want), role
        for key, measures in got.items():
            assert all(
                math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
                for a, b in zip(measures, want[key], strict=True)
            ), (role, key)
    assert tables["dimension_daily"] and ("shop", "tier") in aggregated
    assert not {("shop", "region"), ("shop", "order")} & aggregated


def test_a_failing_frame_stops_the_pipeline_after_the_frames_before(store, monkeypatch):
    frames = [classified_frame(50, seed=s) for s in (31, 32, 33, 34)]
    for n, f in enumerate(frames):
        f["id"] = [f"b{n}-{i}" for i in range(len(f))]
    frames[2].loc[5, "created_at"] = "next tuesday"
    with pytest.raises(ValueError, match="row 6: created_at 'next tuesday' is not a date"):
        ingest_frames(frames, dataset="shop", store=store)
    assert _ids(store) == {"b0", "b1"}

    writes = []
    real = ingest_module.write_batch

    def second_fails(connection, batch, *tail):
        writes.append(batch)
        if len(writes) == 2:
            raise RuntimeError("disk full")
        return real(connection, batch, *tail)

    monkeypatch.setattr(ingest_module, "write_batch", second_fails)
    frames[2].loc[5, "created_at"] = "2026-09-09"
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_frames(frames[2:], dataset="other", store=store)
    assert _ids(store, "other") == {"b2"}


def test_a_file_that_fails_while_written_stores_nothing(store, tmp_path, monkeypatch):
    path = tmp_path / "classified.csv"
    classified_frame(250, seed=35).to_csv(path, index=False)
    calls = []
    real = ingest_module.write_batch

    def third_fails(connection, batch, *tail):
        calls.append(batch.rows)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(connection, batch, *tail)

    monkeypatch.setattr(ingest_module, "write_batch", third_fails)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(path, dataset="shop", store=store, chunk_rows=100)
    assert calls == [100, 100, 50] and _ids(store) == set()  # no item of any chunk
    monkeypatch.setattr(ingest_module, "write_batch", real)
    stats = ingest_file(path, dataset="shop", store=store, chunk_rows=100)
    assert (stats.rows, stats.inserted) == (250, 250)


def _ids(store, dataset: str = "shop") -> set[str]:
    """The frames ("b<n>-...") whose items `dataset` holds (all 50 of each)."""
    with store.engine.connect() as c:
        ids = c.execute(select(ITEMS.c.item_id).where(ITEMS.c.dataset == dataset)).scalars()
        frames = [i.split("-")[0] for i in ids]
    assert all(frames.count(f) == 50 for f in set(frames))
    return set(frames)


# --- the pipeline itself -----------------------------------------------------------------------


@pytest.mark.parametrize("overlap", ["all", "tail"])
def test_the_next_batch_is_made_while_the_one_before_is_written(overlap):
    """ "all": item 2 is made while item 1 is still consumed; "tail": only after item 1's
    consumer said it reached its tail (and still before it returned)."""
    second_made, tail_reached = threading.Event(), threading.Event()
    log = []

    def items():
        for n in range(1, 4):
            if n == 2:
                log.append(("making 2", tail_reached.is_set()))
                second_made.set()
            yield n

    def consume(n, tail):
        log.append(("consuming", n))
        if n == 1:
            if overlap == "all":
                assert second_made.wait(10), "item 2 was not made while item 1 was written"
            tail_reached.set()
            tail()
            assert second_made.wait(10), "item 2 was not made during item 1's tail"

    pipeline(items(), consume, overlap=overlap)
    assert [e for e in log if e[0] == "consuming"] == [("consuming", n) for n in (1, 2, 3)]
    assert ("making 2", overlap == "tail") in log


def test_a_pipeline_raises_the_earliest_error_and_consumes_nothing_after_it():
    consumed = []

    def items():
        yield 1
        yield 2
        raise ValueError("bad row in item 3")

    def consume(n, tail):
        consumed.append(n)

    with pytest.raises(ValueError, match="item 3"):
        pipeline(items(), consume, overlap="all")
    assert consumed == [1, 2]  # those made before the error are written

    def failing(n, tail):
        consumed.append(n)
        if n == 2:
            raise RuntimeError("disk full")

    consumed.clear()
    with pytest.raises(RuntimeError, match="disk full"):
        pipeline(iter(range(1, 6)), failing, overlap="tail")
    assert consumed == [1, 2]
