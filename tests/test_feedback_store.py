"""The feedback store, run against SQLite and against the local PostgreSQL server with the same
tests: migrations, upserts, transactions, and every stats view against pandas on the same rows."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from feedback_helpers import classified_frame, database_url, downgrade
from sqlalchemy import func, select

from cxnlp.feedback import dimension_rollups, facts
from cxnlp.feedback import ingest as ingest_module
from cxnlp.feedback import queries as Q
from cxnlp.feedback.db import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    make_engine,
    open_store,
    upgrade,
)
from cxnlp.feedback.facts import fetch
from cxnlp.feedback.ingest import ingest_file, ingest_frame
from cxnlp.feedback.models import (
    Base,
    DailyDimensionStat,
    DailyDimensionTopicChannel,
    DailyDimensionTopicTotal,
    DailyDimensionTotal,
    DailyStat,
    DailyTopicChannel,
    DailyTopicStat,
    DailyTopicTotal,
    DailyTotal,
    DimensionKey,
    FeedbackItem,
    ItemTopic,
    managed_by_orm,
)
from cxnlp.report.scores import score_summary
from cxnlp.report.stats import wilson_interval

SENTIMENTS = ("negative", "neutral", "positive")
DIMENSION_TABLES = (
    DailyDimensionStat,
    DailyDimensionTotal,
    DailyDimensionTopicTotal,
    DailyDimensionTopicChannel,
    DimensionKey,
)
HEAD = head_revision()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    generator = database_url(request.param, tmp_path)
    url = next(generator)
    opened = open_store(url)
    yield opened
    opened.close()
    generator.close()


def _ingest(store, frame, dataset="shop"):
    return ingest_frame(
        frame,
        dataset=dataset,
        store=store,
        score_col="score",
        score_kind="nps",
        model_name="tiny",
        model_version="abc123",
    )


def _counts(store) -> dict[str, int]:
    with store.engine.connect() as c:
        return {
            t.__tablename__: c.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (
                FeedbackItem,
                ItemTopic,
                DailyStat,
                DailyTopicStat,
                DailyTotal,
                DailyTopicTotal,
                DailyTopicChannel,
                *DIMENSION_TABLES,
            )
        }


def _snapshot(store) -> dict:
    with store.engine.connect() as c:
        f = Q.StatsFilter()
        return {
            "counts": _counts(store),
            "summary": Q.summary(c, f),
            "topics": Q.topics(c, f),
            "items": [(r["id"], r["sentiment"], r["text"]) for r in Q.iter_items(c, f)],
        }


def test_migrations_create_the_models_schema(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "version_table": VERSION_TABLE,
                "include_name": managed_by_orm,
            },
        )
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(store.engine) == HEAD
    # Opening again (a second worker, a restart) is a no-op.
    open_store(store.url).close()
    assert current_revision(store.engine) == HEAD


def test_ingest_twice_counts_once(store):
    frame = classified_frame(300)
    first = _ingest(store, frame)
    assert (first.inserted, first.updated, first.rows) == (300, 0, 300)
    before = _snapshot(store)
    second = _ingest(store, frame)
    assert (second.inserted, second.updated) == (0, 300)
    after = _snapshot(store)
    assert after == before
    assert after["counts"]["feedback_items"] == 300
    assert after["summary"]["n"] + after["summary"]["errors"] == 300


def test_resent_items_are_updated_and_aggregates_follow(store):
    frame = classified_frame(300, seed=1)
    _ingest(store, frame)
    changed = frame.copy()
    flip = changed.index[changed["sentiment"] == "positive"][:40]
    changed.loc[flip, "sentiment"] = "negative"
    changed.loc[flip, "topics"] = json.dumps([{"topic": "refunds", "polarity": "negative"}])
    changed.loc[flip, "created_at"] = "2026-11-02"
    changed.loc[flip, "channel"] = "phone"
    _ingest(store, changed)
    _check_against_pandas(store, changed, Q.StatsFilter())
    with store.engine.connect() as c:
        stored = Q.items(c, Q.StatsFilter(channel=["phone"]), limit=100)
    assert stored["total"] == 40
    assert {i["sentiment"] for i in stored["items"]} == {"negative"}
    assert {t["topic"] for i in stored["items"] for t in i["topics"]} == {"refunds"}
    assert stored["items"][0]["model_name"] == "tiny"


def test_a_resent_item_without_a_date_keeps_its_date(store):
    frame = classified_frame(5)
    _ingest(store, frame)
    undated = frame.drop(columns=["created_at"])
    _ingest(store, undated)
    with store.engine.connect() as c:
        days = {i["id"]: i["created_at"] for i in Q.iter_items(c, Q.StatsFilter())}
    assert {k: v.isoformat() for k, v in days.items()} == {
        r.id: pd.Timestamp(r.created_at).isoformat() for r in frame.itertuples()
    }


def test_duplicate_ids_in_one_batch_keep_the_last(store):
    frame = classified_frame(10)
    frame.loc[9, "id"] = frame.loc[0, "id"]
    frame.loc[9, "text"] = "the later one"
    stats = _ingest(store, frame)
    assert (stats.rows, stats.inserted) == (10, 9)
    with store.engine.connect() as c:
        found = Q.items(c, Q.StatsFilter(q="the later"))
    assert [i["id"] for i in found["items"]] == [frame.loc[0, "id"]]


def test_a_failed_write_leaves_the_store_unchanged(store, monkeypatch):
    _ingest(store, classified_frame(200, seed=2))
    before = _snapshot(store)
    resent = classified_frame(260, seed=3)  # 200 updates, 60 new

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # Fails after the items, topics and aggregates were written in the transaction.
    monkeypatch.setattr(ingest_module, "cases_after_ingest", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _ingest(store, resent)
    assert _snapshot(store) == before


def test_a_bad_row_anywhere_in_a_file_stores_nothing(store, tmp_path):
    frame = classified_frame(250)
    frame.loc[230, "created_at"] = "next tuesday"
    path = tmp_path / "classified.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="row 231: created_at 'next tuesday' is not a date"):
        ingest_file(path, dataset="shop", store=store, chunk_rows=100)
    assert _counts(store)["feedback_items"] == 0
    frame.loc[230, "created_at"] = "2026-09-09"
    frame.to_csv(path, index=False)
    stats = ingest_file(
        path, dataset="shop", store=store, chunk_rows=100, score_col="score", score_kind="nps"
    )
    assert stats.rows == 250 and _counts(store)["feedback_items"] == 250
    _check_against_pandas(store, frame, Q.StatsFilter())


def test_bad_input_is_named(store):
    frame = classified_frame(4)
    frame.loc[2, "id"] = None
    with pytest.raises(ValueError, match=r"row 3: the id \(id\) is empty"):
        _ingest(store, frame)
    frame = classified_frame(4)
    frame.loc[1, "score"] = 12
    with pytest.raises(ValueError, match="row 2: score 12.0 is not a whole number from 0 to 10"):
        _ingest(store, frame)
    with pytest.raises(ValueError, match="missing column"):
        _ingest(store, frame.drop(columns=["sentiment"]))
    assert _counts(store)["feedback_items"] == 0


# --- stats against pandas -------------------------------------------------------------------


def _reference(frame: pd.DataFrame, f: Q.StatsFilter) -> pd.DataFrame:
    """The rows of `frame` under `f`, computed with pandas."""
    data = frame.copy()
    data["day"] = pd.to_datetime(data["created_at"], format="mixed").dt.date
    data["topic_list"] = data["topics"].map(lambda v: json.loads(v) if isinstance(v, str) else [])
    keep = pd.Series(True, index=data.index)
    if f.start:
        keep &= data["day"] >= f.start
    if f.end:
        keep &= data["day"] <= f.end
    for name in ("lang", "channel", "product", "sentiment"):
        if getattr(f, name):
            keep &= data[name].isin(getattr(f, name))
    for name, values in f.dims.items():
        keep &= data[name].replace("", Q.MISSING).fillna(Q.MISSING).isin(values)
    if f.topic:
        keep &= data["topic_list"].map(lambda ts: any(t["topic"] in f.topic for t in ts))
    if f.q:
        keep &= data["text"].str.lower().str.contains(f.q.lower(), regex=False)
    return data[keep]


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _check_against_pandas(store, frame: pd.DataFrame, f: Q.StatsFilter) -> None:
    rows = _reference(frame, f)
    ok = rows[rows["error"].isna()]
    n = len(ok)
    counts = {s: int((ok["sentiment"] == s).sum()) for s in SENTIMENTS}
    with store.engine.connect() as c:
        got = Q.summary(c, f)
        assert got["n"] == n and got["errors"] == len(rows) - n
        assert got["counts"] == counts
        for s in SENTIMENTS:
            assert _close(got["ci95"][s], list(wilson_interval(counts[s], n)) if n else None)
        if n:
            assert _close(got["net_sentiment"], (counts["positive"] - counts["negative"]) / n)
            means = ok[[f"p_{s}" for s in SENTIMENTS]].mean()
            assert _close(got["pcc"], {s: means[f"p_{s}"] / means.sum() for s in SENTIMENTS})
        # Scores count on every item, classified or not, as in `cxnlp report`.
        scores = pd.to_numeric(rows["score"]).dropna().reset_index(drop=True)
        if len(scores):
            expected = score_summary(scores, "nps")
            nps = got["scores"]["nps"]
            for key in ("n", "promoters", "detractors", "passives", "nps"):
                assert _close(nps[key], expected[key]), key
            assert _close(nps["ci95"], list(expected["ci95"]))

        weekly = Q.trend(c, f, "week")["periods"]
        weeks = pd.to_datetime(ok["day"]).dt.to_period("W")
        expected_weeks = ok.groupby(weeks)["sentiment"].value_counts().unstack(fill_value=0)
        got_weeks = {p["start"]: p["counts"] for p in weekly if p["n"]}
        assert got_weeks == {
            str(w.start_time.date()): {s: int(r.get(s, 0)) for s in SENTIMENTS}
            for w, r in expected_weeks.iterrows()
        }
        monthly = Q.trend(c, f, "month")["periods"]
        assert sum(p["n"] for p in monthly) == n

        mentions = [
            (t["topic"], t["polarity"], row.channel or Q.MISSING)
            for row in ok.itertuples()
            for t in row.topic_list
        ]
        table = pd.DataFrame(mentions, columns=["topic", "polarity", "channel"])
        got_topics = {t["topic"]: t for t in Q.topics(c, f)["items"]}
        assert set(got_topics) == set(table["topic"])
        for name, group in table.groupby("topic"):
            assert got_topics[name]["mentions"] == len(group)
            negative = int((group["polarity"] == "negative").sum())
            assert _close(got_topics[name]["negative_share"], negative / len(group))
            assert _close(got_topics[name]["share"], len(group) / n)

        cells = {(x["topic"], x["value"]): x for x in Q.topic_by(c, f, "channel")["cells"]}
        per_channel = ok["channel"].replace("", Q.MISSING).value_counts()
        for (name, channel), group in table.groupby(["topic", "channel"]):
            cell = cells.pop((name, channel))
            assert cell["mentions"] == len(group)
            assert _close(cell["share"], len(group) / per_channel[channel])
        assert cells == {}

        listed = Q.items(c, f, limit=5)
        assert listed["total"] == len(rows)
        newest = pd.to_datetime(rows["created_at"], format="mixed").sort_values(ascending=False)
        assert [i["created_at"] for i in listed["items"]] == list(newest.iloc[:5])


FILTERS = [
    Q.StatsFilter(),
    Q.StatsFilter(channel=["app"]),
    Q.StatsFilter(lang=["fa", "ar"], start=dt.date(2026, 9, 10), end=dt.date(2026, 9, 24)),
    Q.StatsFilter(topic=["delivery"]),
    Q.StatsFilter(topic=["delivery", "price"], sentiment=["negative"]),
    Q.StatsFilter(dims={"tier": ["gold"]}, product=["food"]),
    Q.StatsFilter(q="delivery was late"),
]


def test_stats_equal_pandas_on_the_same_rows(store):
    frame = classified_frame(900, seed=4)
    frame["channel"] = frame["channel"].replace("", None)
    _ingest(store, frame)
    frame["channel"] = frame["channel"].fillna("")
    for f in FILTERS:
        _check_against_pandas(store, frame, f)


def _items_path(monkeypatch) -> None:
    """Views read the items whatever their filter (a dimension filter that every row passes
    then forces the items path, as before the per-dimension aggregates)."""
    monkeypatch.setattr(facts, "rollup_dimension", lambda *_, **__: None)


def test_aggregates_and_items_give_the_same_numbers(store, monkeypatch):
    _ingest(store, classified_frame(500, seed=5))
    _items_path(monkeypatch)
    with store.engine.connect() as c:
        for f in FILTERS[:4]:
            assert f.keyed_only()
            fast = Q.summary(c, f)
            slow = Q.summary(
                c, Q.StatsFilter(**{**f.__dict__, "dims": {"tier": ["gold", "silver"]}})
            )
            assert fast["source"] == "daily aggregates" and slow["source"] == "items"
            assert _close({**fast, "filter": 0, "source": 0}, {**slow, "filter": 0, "source": 0})


def _plan(connection, f: Q.StatsFilter) -> str:
    """The plan of the item count of `f` (PostgreSQL's EXPLAIN without sequential scans, where
    a table this small would be read whole; SQLite's EXPLAIN QUERY PLAN)."""
    from sqlalchemy import event, text

    from cxnlp.feedback.facts import items_where
    from cxnlp.feedback.models import ITEMS

    dialect = connection.dialect.name
    seen = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    if dialect == "postgresql":
        connection.execute(text("SET LOCAL enable_seqscan = off"))
    event.listen(connection, "before_cursor_execute", record)
    try:
        connection.execute(select(func.count()).select_from(ITEMS).where(*items_where(f, dialect)))
    finally:
        event.remove(connection, "before_cursor_execute", record)
    statement, parameters = seen[-1]  # after SQLite's BEGIN
    if dialect == "postgresql":
        return "\n".join(
            r[0] for r in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        )
    plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return "\n".join(r[3] for r in plan)


def test_dimension_filters_go_through_the_index_and_follow_updates(store):
    frame = classified_frame(400, seed=11)
    frame["region"] = np.where(
        np.arange(400) % 3 == 0, "", np.where(np.arange(400) % 2, "north", "south")
    )
    _ingest(store, frame)
    filters = [
        Q.StatsFilter(dims={"tier": ["gold"]}),
        Q.StatsFilter(dims={"tier": ["gold", "silver"], "region": ["south"]}),
        Q.StatsFilter(dims={"region": ["north", Q.MISSING]}, topic=["delivery"]),
        Q.StatsFilter(dims={"region": [Q.MISSING]}, lang=["fa"]),
    ]
    for f in filters:
        _check_against_pandas(store, frame, f)
    with store.engine.connect() as c:
        plan = _plan(c, filters[1])
    if store.dialect == "postgresql":
        assert "ix_feedback_items_dimensions" in plan, plan
    else:  # each filtered dimension is a primary-key search of its item_dimensions rows
        assert "filter_dimension_0 USING PRIMARY KEY (key=? AND value=?" in plan, plan
        assert "filter_dimension_1 USING PRIMARY KEY (key=? AND value=?" in plan, plan
    # Resent items whose dimensions changed (or went): the index follows them.
    resent = frame.iloc[:90].copy()
    resent["tier"] = "platinum"
    resent["region"] = np.where(np.arange(90) % 2, "", "east")
    _ingest(store, resent)
    frame.iloc[:90] = resent
    # A page of the many items of a dimension value is read newest first (SQLite looks each
    # one's dimensions up), a page of a few by the dimension index; both as pandas has them.
    moved = {"tier": ["platinum"], "region": ["east"]}
    for f in [*filters, Q.StatsFilter(dims=moved), Q.StatsFilter(dims=moved, lang=["fa"])]:
        _check_against_pandas(store, frame, f)


def _search_frame() -> pd.DataFrame:
    """600 rows whose texts hold words of every kind the search page reads differently on
    PostgreSQL: in half the items ("parcel", any case), in three ("zebra"), in the 120 oldest
    only ("vintage"), in a seventh (a Persian phrase), and one with LIKE's special characters."""
    frame = classified_frame(600, seed=23)
    oldest = set(frame.sort_values(["created_at", "id"]).index[:120])
    texts = []
    for i, text in enumerate(frame["text"]):
        words = [text]
        if i % 2 == 0:
            words.append("PARCEL" if i % 4 else "parcel")
        if i in (7, 150, 433):
            words.append("Zebra")
        if i in oldest:
            words.append("vintage")
        if i % 7 == 0:
            words.append("پیک دیر رسید")
        if i % 50 == 3:
            words.append("50%_off")
        texts.append(" ".join(words))
    frame["text"] = texts
    return frame


# (filter, page size, offset) and how PostgreSQL reads the page (`item_queries._search_page`):
# through the matches ("hits"), a walk of the newest items ("window"), or a walk that falls
# short and then the matches ("window+hits").
SEARCHES = [
    (Q.StatsFilter(q="zebra"), 5, 0, "hits"),
    (Q.StatsFilter(q="zebra"), 2, 1, "hits"),
    (Q.StatsFilter(q="zebra", channel=["web"]), 5, 0, "hits"),
    (Q.StatsFilter(q="parcel"), 5, 0, "window"),
    (Q.StatsFilter(q="parcel"), 5, 7, "window"),
    (Q.StatsFilter(q="Parcel", topic=["delivery"]), 5, 0, "window"),
    (Q.StatsFilter(q="parcel", dims={"tier": ["gold"]}), 5, 0, "window"),
    (Q.StatsFilter(q="parcel", product=["food"]), 5, 0, "window"),  # no aggregates: all items
    (Q.StatsFilter(q="parcel", start=dt.date(2026, 9, 14), end=dt.date(2026, 9, 20)), 5, 0, "window"),
    (Q.StatsFilter(q="parcel"), 200, 0, "hits"),
    (Q.StatsFilter(q="vintage"), 5, 0, "window+hits"),
    (Q.StatsFilter(q="vintage"), 5, 100, "hits"),
    (Q.StatsFilter(q="دیر رسید"), 5, 0, "window"),
    (Q.StatsFilter(q="دیر رسید", lang=["fa"]), 5, 0, "window"),
    (Q.StatsFilter(q="دیر رسید", lang=["fa"]), 25, 0, "hits"),
    (Q.StatsFilter(q="50%_off"), 5, 0, "hits"),
    (Q.StatsFilter(q="%_"), 5, 0, "hits"),
    (Q.StatsFilter(q="nothing like this"), 5, 0, ""),
    (Q.StatsFilter(q="parcel"), 5, 10_000, ""),  # past the last match: no page to read
]  # fmt: skip


def test_search_pages_are_the_plain_querys_rows_in_its_order(store):
    """A search page holds the rows the plain query (`_item_query`: the filter, newest first,
    LIMIT and OFFSET) gives, in its order, however PostgreSQL reads it (chosen from the count:
    few matches through the text index and sorted, many by a walk of the newest items, which
    falls back to the matches when they are older than most)."""
    from sqlalchemy import event

    from cxnlp.feedback import item_queries

    frame = _search_frame()
    _ingest(store, frame)
    seen: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        seen.append(statement)

    with store.engine.connect() as c:
        for f, limit, offset, ways in SEARCHES:
            plain = fetch(c, item_queries._item_query(f, store.dialect).limit(limit).offset(offset))
            expected = item_queries._with_topics(c, plain)
            seen.clear()
            event.listen(c, "before_cursor_execute", record)
            try:
                got = Q.items(c, f, limit=limit, offset=offset)
            finally:
                event.remove(c, "before_cursor_execute", record)
            assert got["items"] == expected, (f, limit, offset)
            matches = _reference(frame, f)
            assert got["total"] == len(matches), f
            if offset == 0 and limit >= len(matches):
                assert {i["id"] for i in got["items"]} == set(matches["id"]), f
            read = [w for w in ("window", "hits") if any(f"search_{w}" in s for s in seen)]
            assert read == (ways.split("+") if store.dialect == "postgresql" and ways else []), (
                f,
                limit,
                offset,
            )
        assert len(Q.items(c, Q.StatsFilter(q="parcel"), limit=5)["items"]) == 5


def test_a_rare_words_page_is_read_through_the_text_index_whatever_the_estimate(tmp_path):
    """PostgreSQL estimates a word's share of the texts from ~100 sampled ones (1% when one holds
    it); believing a rare word common it planned its page as a walk of the newest-first index
    testing every text (at 1M items, ~225,000 texts for 25 of 111 matches). Made to prefer that
    walk (sorting disabled), the page of a rare word still reads the matches through the trigram
    index, as the count says they are few."""
    from sqlalchemy import event, text

    from cxnlp.feedback import item_queries

    generator = database_url("postgresql", tmp_path)
    store = open_store(next(generator))
    try:
        _ingest(store, _search_frame())
        f = Q.StatsFilter(q="zebra")
        seen: list[tuple[str, object]] = []

        def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
            seen.append((statement, parameters))

        def plan(c, statement: str, parameters: object) -> str:
            return "\n".join(r[0] for r in c.exec_driver_sql(f"EXPLAIN {statement}", parameters))

        with store.engine.connect() as c:
            c.execute(text("SET LOCAL enable_sort = off"))
            c.execute(text("SET LOCAL enable_seqscan = off"))
            event.listen(c, "before_cursor_execute", record)
            try:
                got = Q.items(c, f, limit=5)
                c.execute(item_queries._item_query(f, "postgresql").limit(5))
            finally:
                event.remove(c, "before_cursor_execute", record)
            *listed, plain = seen
            page = [(s, p) for s, p in listed if "LIMIT" in s][-1]  # the page (then its topics)
            assert got["total"] == 3 and len(got["items"]) == 3
            walk = "Index Scan Backward using ix_feedback_items_created_at"
            assert walk in plan(c, *plain), plan(c, *plain)  # the plain query walks
            page_plan = plan(c, *page)
            assert walk not in page_plan and "ix_feedback_items_text_trgm" in page_plan, page_plan
    finally:
        store.close()
        generator.close()


def _without_source(view: dict) -> dict:
    return {k: v for k, v in view.items() if k != "source"}


def _dimension_views(c, f: Q.StatsFilter) -> dict:
    """Every view the dashboard shows under `f` (the comments as their count and first page)."""
    page = Q.items(c, f, limit=10)
    return {
        "summary": _without_source(Q.summary(c, f)),
        "week": _without_source(Q.trend(c, f, "week")),
        "day": _without_source(Q.trend(c, f, "day")),
        "topics": _without_source(Q.topics(c, f, min_mentions=1)),
        "by channel": _without_source(Q.topic_by(c, f, "channel")),
        "by sentiment": _without_source(Q.topic_by(c, f, "sentiment")),
        "alerts": _without_source(Q.alerts(c, f, "week")),
        "alerts by day": _without_source(Q.alerts(c, f, "day", history=6)),
        "page": (page["total"], [i["id"] for i in page["items"]]),
    }


DIMENSION_FILTERS = [
    Q.StatsFilter(dims={"tier": ["gold"]}),
    Q.StatsFilter(dims={"tier": ["gold", "silver"]}, channel=["app"]),
    Q.StatsFilter(
        dims={"tier": ["gold"]},
        lang=["fa", "ar"],
        start=dt.date(2026, 9, 10),
        end=dt.date(2026, 9, 24),
    ),
    Q.StatsFilter(dims={"region": ["north"]}, topic=["delivery"]),
    Q.StatsFilter(dims={"region": ["north", "south"]}, channel=["web"], start=dt.date(2026, 9, 20)),
    Q.StatsFilter(dims={"region": ["north", "east"]}, sentiment=["negative"]),
    Q.StatsFilter(dims={"tier": ["silver"], "product": []}, dataset=["shop"]),
]


def test_dimension_filters_read_the_dimension_aggregates_with_the_items_numbers(store, monkeypatch):
    frame = classified_frame(500, seed=14)
    frame["region"] = np.where(
        np.arange(500) % 3 == 0, "", np.where(np.arange(500) % 2, "north", "south")
    )
    _ingest(store, frame)
    # Resent items whose dimensions changed or went: their old part leaves the aggregates.
    resent = frame.iloc[:120].copy()
    resent["tier"] = np.where(np.arange(120) % 2, "silver", "gold")
    resent["region"] = np.where(np.arange(120) % 3, "east", "")
    resent["sentiment"] = "negative"
    _ingest(store, resent)
    frame.iloc[:120] = resent
    with store.engine.connect() as c:
        fast = {}
        for f in DIMENSION_FILTERS:
            assert not f.keyed_only() and facts.rollup_dimension(c, f) is not None
            assert Q.summary(c, f)["source"] == "daily aggregates"
            fast[repr(f)] = _dimension_views(c, f)
        # No per-dimension table holds topics by language, or the topic with the channel.
        assert Q.topic_by(c, DIMENSION_FILTERS[0], "lang")["source"] == "items"
        one_topic = Q.StatsFilter(dims={"tier": ["gold"]}, topic=["price"], channel=["web"])
        assert Q.summary(c, one_topic)["source"] == "items"
    _items_path(monkeypatch)
    with store.engine.connect() as c:
        for f in DIMENSION_FILTERS:
            assert Q.summary(c, f)["source"] == "items"
            slow = _dimension_views(c, f)
            for name, view in slow.items():
                assert _close(fast[repr(f)][name], view), (f, name)
    monkeypatch.undo()
    for f in DIMENSION_FILTERS[:4]:
        _check_against_pandas(store, frame, f)


MISSING_FILTERS = [
    Q.StatsFilter(dims={"tier": ["gold", Q.MISSING]}),
    Q.StatsFilter(dims={"tier": [Q.MISSING]}),
    Q.StatsFilter(dims={"tier": ["silver", Q.MISSING]}, dataset=["shop"], channel=["app"]),
    Q.StatsFilter(dims={"region": [Q.MISSING]}, dataset=["shop"], topic=["delivery"]),
    Q.StatsFilter(
        dims={"region": ["north", Q.MISSING]},
        dataset=["shop"],
        lang=["fa", "ar"],
        start=dt.date(2026, 9, 10),
        end=dt.date(2026, 9, 24),
    ),
    Q.StatsFilter(dims={"region": [Q.MISSING]}, sentiment=["negative"], dataset=["other"]),
    Q.StatsFilter(dims={"tier": [Q.MISSING]}, dataset=["other"], lang=["fa"]),
]


def test_filters_on_items_without_a_dimension_read_the_aggregates_by_complement(store, monkeypatch):
    """Items without a key = all items minus those with any of its values, per aggregate key:
    every view gives the items' numbers (counts exactly), in datasets that have the key on some
    items and in one that never had it, after resent items gained or lost it."""
    frame = classified_frame(500, seed=15)
    at = np.arange(500)
    frame["tier"] = np.where(at % 4 == 0, "", frame["tier"])
    frame["region"] = np.where(at % 3 == 0, "", np.where(at % 2, "north", "south"))
    _ingest(store, frame)
    # CES on no fixed scale, with fractions: the complement's float sums of scores round
    # differently from the items' (whole-number scores would add up exactly either way).
    other = classified_frame(200, seed=16)
    other["tier"] = np.where(np.arange(200) % 3 == 0, "", other["tier"])
    other["score"] = other["score"] * 0.37 + 1.1
    ingest_frame(other, dataset="other", store=store, score_col="score", score_kind="ces")
    resent = frame.iloc[:120].copy()
    resent["tier"] = np.where(np.arange(120) % 2, "", "gold")
    resent["region"] = np.where(np.arange(120) % 3, "east", "")
    resent["sentiment"] = "negative"
    _ingest(store, resent)
    frame.iloc[:120] = resent
    with store.engine.connect() as c:
        fast = {}
        for f in MISSING_FILTERS:
            assert facts.rollup_dimension(c, f) is not None
            assert Q.summary(c, f)["source"] == "daily aggregates"
            assert Q.summary(c, f)["n"] > 0
            fast[repr(f)] = _dimension_views(c, f)
    _items_path(monkeypatch)
    with store.engine.connect() as c:
        for f in MISSING_FILTERS:
            assert Q.summary(c, f)["source"] == "items"
            for name, view in _dimension_views(c, f).items():
                assert _close(fast[repr(f)][name], view), (f, name)
    monkeypatch.undo()
    for f in MISSING_FILTERS[2:5]:
        _check_against_pandas(store, frame, f)


def _dimension_key_states(store, dataset: str = "shop") -> dict[str, bool]:
    with store.engine.connect() as c:
        k = DimensionKey.__table__
        rows = c.execute(select(k.c.dim_key, k.c.aggregated).where(k.c.dataset == dataset))
        return {key: bool(held) for key, held in rows}


def _dimension_rows(store, key: str) -> int:
    with store.engine.connect() as c:
        return sum(
            c.execute(
                select(func.count()).select_from(t).where(t.__table__.c.dim_key == key)
            ).scalar_one()
            for t in DIMENSION_TABLES[:-1]
        )


def test_a_dimension_with_many_values_has_no_aggregates(store, monkeypatch):
    monkeypatch.setattr(dimension_rollups, "MAX_AGGREGATED_VALUES", 4)
    frame = classified_frame(200, seed=12)
    frame["store"] = [f"s{i % 4}" for i in range(200)]
    frame["order"] = [f"o{i}" for i in range(200)]  # id-like
    _ingest(store, frame)
    assert _dimension_key_states(store) == {"tier": True, "store": True, "order": False}
    assert _dimension_rows(store, "order") == 0 and _dimension_rows(store, "store") > 0
    with store.engine.connect() as c:
        assert Q.summary(c, Q.StatsFilter(dims={"order": ["o7"]}))["source"] == "items"
        assert Q.summary(c, Q.StatsFilter(dims={"store": ["s1"]}))["source"] == "daily aggregates"
    # A later batch takes `store` past the cap: its aggregates go, its filters read the items.
    more = classified_frame(60, seed=13)
    more["id"] = "m" + more["id"]
    more["store"] = [f"s{i % 6}" for i in range(60)]
    _ingest(store, more)
    assert _dimension_key_states(store)["store"] is False and _dimension_rows(store, "store") == 0
    both = pd.concat([frame, more], ignore_index=True)
    for f in (Q.StatsFilter(dims={"store": ["s1", "s5"]}), Q.StatsFilter(dims={"tier": ["gold"]})):
        _check_against_pandas(store, both, f)
    with store.engine.connect() as c:
        assert Q.summary(c, Q.StatsFilter(dims={"store": ["s1"]}))["source"] == "items"
    # A key held in one dataset but not in another: across both, the items are read.
    other = classified_frame(30, seed=15)
    other["tier"] = [f"t{i}" for i in range(30)]
    _ingest(store, other, dataset="other")
    assert _dimension_key_states(store, "other") == {"tier": False}
    with store.engine.connect() as c:
        gold = Q.StatsFilter(dims={"tier": ["gold"]})
        assert Q.summary(c, gold)["source"] == "items"
        one = Q.StatsFilter(dims={"tier": ["gold"]}, dataset=["shop"])
        assert Q.summary(c, one)["source"] == "daily aggregates"
        assert Q.summary(c, one)["n"] == Q.summary(c, gold)["n"]


def _dimension_tables(store) -> dict[str, list[tuple]]:
    with store.engine.connect() as c:
        return {
            t.__tablename__: sorted(tuple(r) for r in c.execute(select(t.__table__)))
            for t in DIMENSION_TABLES
        }


def test_migration_0008_fills_the_dimension_aggregates_as_the_ingest_keeps_them(store):
    frame = classified_frame(300, seed=16)
    frame["region"] = np.where(np.arange(300) % 4 == 0, "", np.where(np.arange(300) % 2, "n", "s"))
    _ingest(store, frame)
    resent = frame.iloc[:50].copy()
    resent["region"] = "w"
    _ingest(store, resent)
    other = classified_frame(150, seed=17)
    other["order"] = [f"o{i}" for i in range(150)]  # past the cap: no aggregates
    _ingest(store, other, dataset="other")
    csat = classified_frame(120, seed=18)  # CSAT on 1-7: satisfied counted on that scale
    csat["q2"] = (1 + csat["score"] % 7).astype("Int64")
    ingest_frame(csat.drop(columns=["score"]), dataset="csat", store=store, score_col="csat:1-7=q2")
    kept = _dimension_tables(store)
    assert any(
        r[0] == "tier" and r[2] == "csat" and r[-1] > 0 for r in kept["daily_dimension_totals"]
    )
    assert kept["daily_dimension_stats"] and ("other", "order", False) in kept["dimension_keys"]
    engine = make_engine(store.url)
    try:
        downgrade(engine, "0007")
        upgrade(engine)
    finally:
        engine.dispose()
    assert _dimension_tables(store) == kept


def test_alerts_flag_a_rise_as_the_report_does(store):
    from cxnlp.report.summary import summarize

    frame = classified_frame(800, seed=6, days=14)
    week2 = pd.to_datetime(frame["created_at"]) >= "2026-09-14"
    rng = np.random.default_rng(0)
    turn = week2 & (frame["error"].isna()) & (rng.random(len(frame)) < 0.5)
    frame.loc[turn, "sentiment"] = "negative"
    _ingest(store, frame)
    with store.engine.connect() as c:
        got = Q.alerts(c, Q.StatsFilter(), period="week")
    report = summarize(frame, date_col="created_at", period="week", group_by=["channel"])
    expected = {(t["kind"], t["column"], t["value"]): t for t in report["alerts"]["tests"]}
    headline = [t for t in got["tests"] if t["kind"] == "negative_share" and t["column"] is None]
    assert len(headline) == 1 and headline[0]["flagged"]
    assert headline[0]["period"] == "2026-W38" and headline[0]["baseline_period"] == "2026-W37"
    for t in got["tests"]:
        column = t["column"]
        value = t["value"]
        ref = expected[(t["kind"], column, value)]
        for key in ("baseline_n", "current_n", "flagged"):
            assert t[key] == ref[key], (t, key)
        for key in ("p_value", "p_adjusted", "cohens_h"):
            assert math.isclose(t[key], ref[key], rel_tol=1e-4, abs_tol=1e-6), (t, key)
    assert got["flagged"][0]["p_value"] < 0.05


def test_a_store_keeps_the_planners_statistics_fresh_after_a_bulk_ingest(tmp_path):
    """PostgreSQL plans lookups on the statistics of its last ANALYZE; with autovacuum off (as on
    the test server) a table grown from empty was never analysed, and the case-item lookup of each
    ingest batch scanned every case row. The next ingest analyses the tables that changed."""
    from sqlalchemy import text

    generator = database_url("postgresql", tmp_path)
    store = open_store(next(generator))
    try:
        _ingest(store, classified_frame(2_000, seed=4))

        def analysed() -> set[str]:
            with store.engine.connect() as c:
                return set(
                    c.execute(
                        text(
                            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = "
                            "current_schema() AND last_analyze IS NOT NULL"
                        )
                    ).scalars()
                )

        before = analysed()
        _ingest(store, classified_frame(5, seed=5), dataset="more")
        after = analysed()
        assert "feedback_items" not in before and "feedback_items" in after
        with store.engine.connect() as c:
            planned = c.execute(
                text(
                    "SELECT reltuples FROM pg_class WHERE relname = 'feedback_items' AND "
                    "relnamespace = current_schema()::regnamespace"
                )
            ).scalar_one()
        assert planned >= 2_000
    finally:
        store.close()
        generator.close()


def test_sqlite_aggregates_are_clustered_and_new_items_indexed_per_batch(tmp_path):
    """Migration 0009 (SQLite): the aggregate tables WITHOUT ROWID, and a new item's search and
    dimension index rows written by the ingest once per batch (its insert triggers are gone);
    taken back to 0008 and forward again, the store reads as before."""
    generator = database_url("sqlite", tmp_path)
    store = open_store(next(generator))
    try:
        frame = classified_frame(300, seed=19)
        frame["region"] = np.where(np.arange(300) % 2, "north", "south")
        _ingest(store, frame.iloc[:200])
        _ingest(store, frame.iloc[150:])  # 50 updates, 100 new
        with store.engine.connect() as c:
            tables = dict(
                c.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
            )
            triggers = set(
                c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars()
            )
            fts = c.exec_driver_sql("SELECT count(*) FROM feedback_items_fts").scalar_one()
            pairs = c.exec_driver_sql("SELECT count(*) FROM item_dimensions").scalar_one()
        for model in (DailyStat, DailyTopicStat, DailyTotal, *DIMENSION_TABLES[:-1]):
            assert tables[model.__tablename__].rstrip().endswith("WITHOUT ROWID"), (
                model.__tablename__
            )
        assert not {"feedback_items_fts_insert", "item_dimensions_insert"} & triggers
        assert {"feedback_items_fts_update", "item_dimensions_update"} <= triggers
        assert fts == 300 and pairs == 600  # each item's tier and region
        for f in (
            Q.StatsFilter(q="delivery was late"),
            Q.StatsFilter(dims={"tier": ["gold"], "region": ["north"]}),
        ):
            _check_against_pandas(store, frame, f)
        before = _snapshot(store)
        engine = make_engine(store.url)
        try:
            downgrade(engine, "0008")
            assert _snapshot(store) == before
            upgrade(engine)
        finally:
            engine.dispose()
        assert _snapshot(store) == before
    finally:
        store.close()
        generator.close()
