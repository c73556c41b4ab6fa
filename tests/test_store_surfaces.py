"""One statistics core: `cxnlp report`, `/v1/analyze` and the dashboard's stats give the same
digits on one classified file; a stored item keeps every field the API returned; an old store is
migrated to the whole-result schema with its texts searchable."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from feedback_helpers import SENTENCES, classified_frame, database_url, downgrade
from sqlalchemy import text

from cxnlp.cli import main as cxnlp_main
from cxnlp.feedback import queries as Q
from cxnlp.feedback.db import current_revision, head_revision, make_engine, open_store, upgrade
from cxnlp.feedback.ingest import ingest_file, ingest_frame
from cxnlp.feedback.models import RECORD_FIELDS
from cxnlp.feedback.records import frame_from_items, records_from_frame
from cxnlp.feedback.scales import dataset_scales
from cxnlp.labels import PROBABILITY_COLUMNS, SENTIMENTS, URGENCY_COLUMNS
from cxnlp.modeldir import CONFIG_FILE
from cxnlp.report.scores import score_specs
from cxnlp.report.stats import adjust_p_values
from cxnlp.report.summary import clean_json
from service import Settings, create_app
from service.feedback import store_items
from service.schemas import ItemResult

ALERT_KEYS = (
    "baseline_share",
    "current_share",
    "baseline_n",
    "current_n",
    "difference",
    "z",
    "p_value",
    "p_adjusted",
    "cohens_h",
    "small_sample",
    "flagged",
)


# How the test exports carry their score, as `cxnlp report`, /v1/analyze and the store are
# told (--score-col, --score-kind), and the scale of its answers.
SCORES = {
    "nps": ({"score_col": "score", "score_kind": "nps"}, (0, 10)),
    "csat on 1-7": ({"score_col": "csat:1-7=score", "score_kind": None}, (1, 7)),
}


def _request_items(scale: tuple[int, int], n: int = 240) -> list[dict]:
    rng = np.random.default_rng(7)
    low, high = scale
    items = []
    for i in range(n):
        day = pd.Timestamp("2026-09-07") + pd.Timedelta(days=int(rng.integers(0, 21)))
        items.append(
            {
                "id": f"s{i:04d}",
                "text": f"{SENTENCES[i % len(SENTENCES)]} {i}",
                "channel": str(rng.choice(["app", "web", "survey"])),
                "created_at": f"{day.date()}T{int(rng.integers(0, 24)):02d}:30:00",
                "score": int(rng.integers(low, high + 1)) if i % 3 else None,
            }
        )
    return items


@pytest.fixture(params=list(SCORES))
def analyzed(request, tiny_fast_model, tmp_path):
    """/v1/analyze's answer for the items, the same items as one classified CSV file, and how
    its score is read."""
    score, scale = SCORES[request.param]
    settings = Settings(api_keys=[], auth=False, jobs_dir=tmp_path / "jobs", max_wait_ms=1)
    items = _request_items(scale)
    with TestClient(create_app(settings, model=tiny_fast_model)) as client:
        response = client.post(
            "/v1/analyze",
            json={
                "items": items,
                "group_by": ["channel"],
                "date_col": "created_at",
                "period": "week",
                **score,
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    results = [{**given, **got} for given, got in zip(items, body["items"], strict=True)]
    path = tmp_path / "classified.csv"
    frame_from_items(results).to_csv(path, index=False)
    return body, path, score


def _report(path, tmp_path, score: dict) -> dict:
    out = tmp_path / "report.json"
    argv = ["report", str(path), "--json", str(out), "--group-by", "channel"]
    argv += ["--date-col", "created_at", "--period", "week"]
    argv += ["--score-col", score["score_col"]]
    argv += ["--score-kind", score["score_kind"]] if score["score_kind"] else []
    assert cxnlp_main(argv) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _card(segment: dict) -> dict:
    """The report's numbers of a segment, in the store's layout."""
    raw = segment["raw"]
    out = {k: segment[k] for k in ("n", "errors", "counts")}
    out.update({k: raw[k] for k in ("shares", "ci95", "net_sentiment", "ratio_pos_neg")})
    out["pcc"] = segment["pcc"]["shares"] if segment["pcc"] else None
    return out


def _store_card(stats: dict) -> dict:
    keys = ("n", "errors", "counts", "shares", "ci95", "net_sentiment", "ratio_pos_neg", "pcc")
    return clean_json({k: stats[k] for k in keys})


REPORT_ONLY = ("missing", "drivers", "column")


def _check_store_equals_report(path, tmp_path, score: dict) -> dict:
    """The store's numbers for the file at `path` against `cxnlp report`'s on the same file,
    its score read as `score` says."""
    report = _report(path, tmp_path, score)
    (spec,) = score_specs(score["score_col"], score["score_kind"])
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        ingest_file(path, dataset="shop", store=store, **score)
        with store.engine.connect() as c:
            f = Q.StatsFilter()
            summary = Q.summary(c, f)
            trend = Q.trend(c, f, "week")
            topics = Q.topics(c, f)
            alerts = Q.alerts(c, f, "week")

    assert report["classified"] > 100
    assert _store_card(summary) == _card(report["overall"])
    # What the report says of its input (the column, its scale, blanks) is not a number.
    score = {k: v for k, v in report["scores"].items() if k not in REPORT_ONLY}
    assert clean_json(summary["scores"][spec.kind]) == score
    assert score["scale"] == list(spec.scale)

    weeks = {p["start"]: _card(p) for p in report["by_period"]}
    assert {p["start"]: _store_card(p) for p in trend["periods"]} == weeks
    assert [clean_json(p["scores"][spec.kind]) for p in trend["periods"]] == [
        {k: v for k, v in p["score"].items() if k not in REPORT_ONLY} for p in report["by_period"]
    ]

    reported = {
        t["topic"]: {k: v for k, v in t.items() if k not in ("examples", "example_evidence")}
        for t in report["topics"]["items"]
    }
    assert clean_json({t["topic"]: t for t in topics["items"]}) == reported
    assert topics["ranked_by_negative_share"] == report["topics"]["ranked_by_negative_share"]

    last = max(t["period_start"] for t in alerts["tests"])
    stored = {
        (t["kind"], t["column"], t["value"]): clean_json({k: t[k] for k in ALERT_KEYS})
        for t in alerts["tests"]
        if t["period_start"] == last
    }
    expected = {
        (t["kind"], t["column"], t["value"]): {k: t[k] for k in ALERT_KEYS}
        for t in report["alerts"]["tests"]
    }
    assert len(expected) > 5
    assert stored == expected
    return report


def test_report_analyze_and_dashboard_give_the_same_numbers(analyzed, tmp_path):
    body, path, score = analyzed
    report = _check_store_equals_report(path, tmp_path, score)
    # /v1/analyze runs the report's code on the rows it classified: the same summary.
    for key in ("overall", "by_period", "topics", "scores", "alerts", "by_group"):
        assert body["summary"][key] == report[key], key


@pytest.mark.parametrize("kind", list(SCORES))
def test_report_and_dashboard_agree_on_a_classified_file(kind, tmp_path):
    # Prediction columns written directly (topics, polarities, scores): no model involved.
    frame = classified_frame(900, seed=11, days=21)
    frame["channel"] = frame["channel"].replace("", "web")
    score, (low, high) = SCORES[kind]
    frame["score"] = low + frame["score"] % (high - low + 1)  # the answers on the score's scale
    path = tmp_path / "classified.csv"
    frame.to_csv(path, index=False)
    report = _check_store_equals_report(path, tmp_path, score)
    assert len(report["topics"]["items"]) >= 5
    assert any(t["kind"] == "topic_share" for t in report["alerts"]["tests"])


def test_alerts_take_the_reports_p_value_adjustment(tmp_path):
    frame = classified_frame(900, seed=12, days=21)
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        ingest_frame(frame, dataset="shop", store=store)
        with store.engine.connect() as c:
            holm = Q.alerts(c, Q.StatsFilter(), "week")
            bh = Q.alerts(c, Q.StatsFilter(), "week", p_adjust="benjamini-hochberg")
            with pytest.raises(ValueError, match="unknown p-value adjustment 'fdr'"):
                Q.alerts(c, Q.StatsFilter(), "week", p_adjust="fdr")
    assert [t["p_value"] for t in holm["tests"]] == [t["p_value"] for t in bh["tests"]]
    last = max(t["period_start"] for t in bh["tests"])
    for kinds in (("lang", "channel"), ("topic",)):
        for method, result in (("holm", holm), ("benjamini-hochberg", bh)):
            family = [
                t for t in result["tests"] if t["period_start"] == last and t["column"] in kinds
            ]
            assert len(family) > 2
            expected = adjust_p_values([t["p_value"] for t in family], method)
            assert [t["p_adjusted"] for t in family] == expected
    assert [t["p_adjusted"] for t in holm["tests"]] != [t["p_adjusted"] for t in bh["tests"]]


WHOLE = {
    "id": "w1",
    "text": "The courier was late but the food was great, cancel my account " + "x" * 50,
    "created_at": "2026-09-08",
    "sentiment": "negative",
    "probabilities": {"negative": 0.6, "neutral": 0.1, "positive": 0.3},
    "confidence": 0.6,
    "lang": "en",
    # Listed as the model lists them: by score, ties in the taxonomy's order (not by name).
    "topics": [
        {
            "topic": "price",
            "polarity": "negative",
            "score": 0.91,
            "evidence": {"start": 0, "end": 20, "text": "The courier was late"},
        },
        {"topic": "product_quality", "polarity": "positive", "score": 0.8},
        {"topic": "delivery", "polarity": "negative", "score": 0.8},
    ],
    "mixed": True,
    "truncated": True,
    "urgency": {
        "score": 0.72,
        "level": "high",
        "evidence": [{"start": 46, "end": 63, "text": "cancel my account", "cue": "churn"}],
    },
    "error": None,
    "customer_id": "c-17",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    generator = database_url(request.param, tmp_path)
    yield next(generator)
    generator.close()


@pytest.fixture
def store(db_url):
    opened = open_store(db_url)
    yield opened
    opened.close()


def _stored_as_api(item: dict, field: str):
    """A stored item's value of one of the API's item fields: the store keeps one column per
    `cxnlp classify` output column (`p_<label>`; urgency, urgency_level, urgency_evidence)."""
    if field == "probabilities":
        if item["p_positive"] is None:
            return None
        return {s: item[c] for s, c in zip(SENTIMENTS, PROBABILITY_COLUMNS, strict=True)}
    if field == "urgency":
        keys = dict(zip(("score", "level", "evidence"), URGENCY_COLUMNS, strict=True))
        return None if item["urgency_level"] is None else {k: item[c] for k, c in keys.items()}
    return item[field]


def _assert_stored_as_returned(stored: dict, returned: dict) -> None:
    """Every field of the API's item (`ItemResult`, whatever fields it gains) equals the stored
    item's; the store keys items by their id as text."""
    assert set(returned) == set(ItemResult.model_fields)
    for field in ItemResult.model_fields:
        expected = str(returned[field]) if field == "id" else returned[field]
        assert _stored_as_api(stored, field) == expected, (returned["id"], field)


def test_a_stored_item_keeps_every_field_the_api_returned(store):
    # What /v1/classify stores for an item: its request fields and its result, as one row.
    store_items(store, [WHOLE], dataset="api", score_kind=None, model_name="tiny")
    with store.engine.connect() as c:
        (item,) = Q.items(c, Q.StatsFilter())["items"]
    returned = {k: WHOLE[k] for k in ItemResult.model_fields}
    _assert_stored_as_returned(item, returned)
    assert item["text"] == WHOLE["text"]
    assert item["customer_id"] == WHOLE["customer_id"] and "customer_id" not in item["dimensions"]


# Texts the tiny model reads, each with an urgency cue in its language (so that the urgency
# evidence has offsets); one too long (truncated), one empty (an error), one with a numeric id.
API_ITEMS = [
    {"id": "en1", "text": "I will cancel my account, nobody calls me back", "channel": "app"},
    {"id": 2, "text": "حسابمو میبندم، پیک دیر رسید", "created_at": "2026-09-08T10:00:00"},
    {"id": "ar1", "text": "سألغي اشتراكي، الطلب وصل متأخرا", "channel": "web"},
    {"id": "long", "text": "Great food and fast delivery, thank you. " * 4},
    {"id": "empty", "text": ""},
]


def test_the_store_returns_what_classify_returned(tiny_model_dir, db_url, tmp_path):
    settings = Settings(
        api_keys=[],
        auth=False,
        jobs_dir=tmp_path / "jobs",
        model=str(tiny_model_dir),
        database_url=db_url,
        max_wait_ms=1,
        max_text_chars=100,
    )
    body = {"items": API_ITEMS, "dataset": "api", "truncate": True}
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/classify", json=body)
        assert response.status_code == 200, response.text
        page = client.get("/v1/stats/items", params={"dataset": "api", "limit": 500})
        export = client.get("/v1/stats/items.csv", params={"dataset": "api"})
    assert page.status_code == 200 and export.status_code == 200
    answer = response.json()
    returned = {str(i["id"]): i for i in answer["items"]}
    stored = {i["id"]: i for i in page.json()["items"]}
    assert set(stored) == set(returned)
    # The fixture covers what it claims: evidence, truncation, an error, fa / ar / en.
    assert returned["long"]["truncated"] and returned["empty"]["error"]
    cued = [i for i in returned.values() if i["urgency"] and i["urgency"]["evidence"]]
    assert {i["lang"] for i in cued} == {"fa", "ar", "en"}
    for item_id, item in returned.items():
        _assert_stored_as_returned(stored[item_id], item)
    sent = {str(i["id"]): i["text"] for i in API_ITEMS}
    assert {k: i["text"] for k, i in stored.items()} == sent  # the whole text, truncated or not
    version = hashlib.sha256((tiny_model_dir / CONFIG_FILE).read_bytes()).hexdigest()[:12]
    assert {(i["model_name"], i["model_version"]) for i in stored.values()} == {
        (answer["model"], version)
    }
    # The CSV export holds the same evidence, as JSON cells.
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")))}
    for item_id, item in returned.items():
        cell = rows[item_id]["urgency_evidence"]
        assert (json.loads(cell) if cell else None) == (
            item["urgency"]["evidence"] if item["urgency"] else None
        )


def test_every_record_field_is_a_column(tmp_path):
    frame = frame_from_items([WHOLE])
    (record,) = records_from_frame(frame)
    assert set(record) == {*RECORD_FIELDS, "topics"}
    # A classified file keeps the urgency evidence as a JSON cell, read back as a list.
    frame.to_csv(tmp_path / "classified.csv", index=False)
    (read,) = records_from_frame(pd.read_csv(tmp_path / "classified.csv"))
    assert read["urgency_evidence"] == WHOLE["urgency"]["evidence"] == record["urgency_evidence"]
    with pytest.raises(ValueError, match="row 1: urgency_evidence 'cancel' is not a JSON list"):
        records_from_frame(frame.assign(urgency_evidence="cancel"))


def _insert_old_item(
    engine, item_id: str, body: str, dataset: str = "old", dimensions: str = "{}"
) -> None:
    """An item written with 0001's columns only (as an old version of cxnlp wrote it: the
    ingest of this one writes tables of later migrations)."""
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO feedback_items (dataset, item_id, text, created_at, day, dimensions, "
                f"ingested_at, updated_at) VALUES ('{dataset}', '{item_id}', '{body}', "
                f"'2026-09-01 00:00:00', '2026-09-01', '{dimensions}', '2026-09-01 00:00:00', "
                "'2026-09-01 00:00:00')"
            )
        )


def test_an_old_store_is_migrated_and_its_texts_found(store):
    engine = make_engine(store.url)
    # A store at 0001 (before the whole result), with one item written as 0001 wrote it.
    with engine.begin() as c:
        for table in ("item_topics", "feedback_items"):
            c.execute(text(f"DELETE FROM {table}"))
    downgrade(engine, "0001")
    _insert_old_item(engine, "o1", "پیک دیر رسید و غذا سرد بود")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as c:
        found = Q.items(c, Q.StatsFilter(q="غذا سرد"))
        missed = Q.items(c, Q.StatsFilter(q="غذا گرم"))
    engine.dispose()
    assert [i["id"] for i in found["items"]] == ["o1"] and found["items"][0]["mixed"] is None
    assert found["items"][0]["urgency_evidence"] is None
    assert missed["total"] == 0


def test_a_store_without_urgency_evidence_is_migrated(store):
    # An item stored whole, then the schema taken back to 0003 (no urgency evidence, no topic
    # order) and forward again: what 0003 kept reads back, topics by score then name.
    store_items(store, [WHOLE], dataset="api", score_kind=None, model_name="tiny")
    engine = make_engine(store.url)
    downgrade(engine, "0003")
    # The search index still follows new items at 0003 (0004's downgrade kept its triggers).
    _insert_old_item(engine, "o2", "the parcel never arrived")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as c:
        (item,) = Q.items(c, Q.StatsFilter(dataset=["api"]))["items"]
        found = Q.items(c, Q.StatsFilter(q="never arrived"))
    engine.dispose()
    assert [i["id"] for i in found["items"]] == ["o2"]
    assert item["urgency_evidence"] is None
    assert (item["urgency"], item["urgency_level"]) == (0.72, "high")
    by_score = sorted(WHOLE["topics"], key=lambda t: (-t["score"], t["topic"]))
    assert item["topics"] == by_score != WHOLE["topics"]


def test_csat_is_counted_on_its_datasets_declared_scale(store):
    frame = classified_frame(300, seed=5)
    frame["q2"] = (1 + frame["score"] % 7).astype("Int64")  # CSAT answers on 1-7
    ingest_frame(frame, dataset="shop", store=store, score_col="csat:1-7=q2")
    answers = frame["q2"].dropna()
    food = frame.loc[frame["product"] == "food", "q2"].dropna()
    with store.engine.connect() as c:
        keyed = Q.summary(c, Q.StatsFilter())
        by_items = Q.summary(c, Q.StatsFilter(product=["food"]))
    csat = keyed["scores"]["csat"]
    assert keyed["source"] == "daily aggregates" and by_items["source"] == "items"
    # The top two boxes of 1-7 are 6 and 7, from the aggregates and from the items alike.
    assert (csat["n"], csat["satisfied"]) == (len(answers), int((answers >= 6).sum()))
    assert csat["scale"] == [1, 7] and csat["mean"] == pytest.approx(answers.mean())
    assert by_items["scores"]["csat"]["satisfied"] == int((food >= 6).sum())
    assert by_items["scores"]["csat"]["scale"] == [1, 7]

    # The dataset keeps its scale: answers declared on 1-5 are refused, nothing is written.
    with pytest.raises(ValueError, match="holds CSAT answers on 1-7; these are declared on 1-5"):
        ingest_frame(frame.assign(q2=3), dataset="shop", store=store, score_col="csat=q2")
    with store.engine.connect() as c:
        assert Q.summary(c, Q.StatsFilter())["scores"]["csat"] == csat

    # Another dataset on 1-5: each is counted on its own scale; together they have no mean.
    kiosk = classified_frame(60, seed=6).assign(id=lambda d: "k" + d["id"])
    kiosk["q2"] = (1 + kiosk["score"] % 5).astype("Int64")
    ingest_frame(kiosk, dataset="kiosk", store=store, score_col="q2", score_kind="csat")
    with store.engine.connect() as c:
        both = Q.summary(c, Q.StatsFilter())["scores"]["csat"]
        alone = Q.summary(c, Q.StatsFilter(dataset=["kiosk"]))["scores"]["csat"]
    satisfied = int((answers >= 6).sum()) + int((kiosk["q2"].dropna() >= 4).sum())
    assert both["satisfied"] == satisfied and "mean" not in both and "scale" not in both
    assert "different scales" in both["note"]
    assert alone["scale"] == [1, 5] and "note" not in alone


def test_a_store_before_score_scales_records_the_usual_ones(store):
    frame = classified_frame(120, seed=8)
    ingest_frame(frame, dataset="shop", store=store, score_col="score", score_kind="nps")
    frame["q2"] = 1 + frame["score"] % 5
    ingest_frame(frame, dataset="desk", store=store, score_col="csat=q2")
    ingest_frame(frame, dataset="plain", store=store)
    engine = make_engine(store.url)
    downgrade(engine, "0004")
    upgrade(engine)
    with engine.connect() as c:
        found = {d: dataset_scales(c, d) for d in ("shop", "desk", "plain")}
    engine.dispose()
    assert found == {"shop": {"nps": (0, 10)}, "desk": {"csat": (1, 5)}, "plain": {}}
    # Declared from the stored answers: CSAT on another scale is refused in that dataset.
    with pytest.raises(ValueError, match="holds CSAT answers on 1-5"):
        ingest_frame(frame, dataset="desk", store=store, score_col="csat:1-7=q2")


def test_the_topic_channel_aggregates_are_filled_for_an_older_store(store):
    frame = classified_frame(400, seed=9)
    ingest_frame(frame, dataset="shop", store=store)
    # An update that moves items to another channel and sentiment.
    moved = frame.iloc[:60].assign(channel="phone", sentiment="negative")
    ingest_frame(moved, dataset="shop", store=store)
    by_channel = Q.StatsFilter(channel=["phone", "app"])
    with store.engine.connect() as c:
        before = (Q.topic_by(c, Q.StatsFilter(), "channel"), Q.topics(c, by_channel))
        kept = _topic_channel_rows(c)
    engine = make_engine(store.url)
    downgrade(engine, "0005")
    upgrade(engine)
    engine.dispose()
    with store.engine.connect() as c:
        after = (Q.topic_by(c, Q.StatsFilter(), "channel"), Q.topics(c, by_channel))
        # Kept in step by the ingests, and rebuilt from daily_topic_stats by the migration.
        assert _topic_channel_rows(c) == kept == _topic_channel_rows(c, rebuilt=True)
    assert after == before and before[0]["cells"]


def _topic_channel_rows(connection, rebuilt: bool = False) -> list[tuple]:
    keys = "dataset, day, channel, sentiment, topic, polarity"
    source = (
        f"SELECT {keys}, SUM(n) AS n FROM daily_topic_stats GROUP BY {keys} HAVING SUM(n) > 0"
        if rebuilt
        else f"SELECT {keys}, n FROM daily_topic_channels"
    )
    return sorted(tuple(map(str, r)) for r in connection.execute(text(source)))


def test_an_older_store_gets_the_dimension_index(store):
    frame = classified_frame(300, seed=10)
    frame["region"] = np.where(np.arange(300) % 4 == 0, "", "north")
    nps = {"score_col": "score", "score_kind": "nps"}
    ingest_frame(frame, dataset="shop", store=store, **nps)
    filters = [
        Q.StatsFilter(dims={"tier": ["gold"], "region": ["north"]}),
        Q.StatsFilter(dims={"region": [Q.MISSING]}),
    ]

    def read() -> list:
        with store.engine.connect() as c:
            return [(Q.summary(c, f), Q.items(c, f, limit=300)) for f in filters]

    before = read()
    engine = make_engine(store.url)
    downgrade(engine, "0006")
    # An item stored at 0006 (JSON dimensions, no index) is indexed by the migration.
    _insert_old_item(engine, "late", "late", "shop", '{"tier": "gold", "region": "north"}')
    upgrade(engine)
    with engine.connect() as c:
        if store.dialect == "sqlite":
            pairs = c.execute(text("SELECT count(*) FROM item_dimensions")).scalar_one()
            # Every item's tier, three in four items' region, and the late item's two.
            assert pairs == 300 + 225 + 2
        else:
            kind = c.execute(text("SELECT pg_typeof(dimensions) FROM feedback_items LIMIT 1"))
            assert kind.scalar_one() == "jsonb"
    engine.dispose()
    after = read()
    late = [i for i in after[0][1]["items"] if i["id"] == "late"]
    assert len(late) == 1 and after[0][1]["total"] == before[0][1]["total"] + 1
    assert after[1] == before[1] and before[1][1]["total"] == 75


def test_postgres_stores_in_two_schemas_share_pg_trgm_and_do_not_wait_for_each_other(tmp_path):
    """pg_trgm lives in `public` (0003), not in the first store's schema, so dropping that
    schema leaves the other store's trigram index; the write lock is per schema."""
    from cxnlp.feedback.db import _PG_LOCK, lock_for_writing

    first, second = database_url("postgresql", tmp_path), database_url("postgresql", tmp_path)
    a, b = open_store(next(first)), open_store(next(second))
    try:

        def trigram_index(store) -> list[str]:
            with store.engine.connect() as c:
                return list(
                    c.execute(
                        text(
                            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                            "AND indexname = 'ix_feedback_items_text_trgm'"
                        )
                    ).scalars()
                )

        with a.engine.connect() as c:
            where = c.execute(
                text(
                    "SELECT extnamespace::regnamespace::text FROM pg_extension "
                    "WHERE extname = 'pg_trgm'"
                )
            ).scalar_one()
        assert where == "public"
        for store in (a, b):
            (index,) = trigram_index(store)
            assert index.endswith("USING gin (text public.gin_trgm_ops)")

        probe = text("SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema(), :k))")

        with a.engine.connect() as holder, b.engine.connect() as other, a.engine.connect() as same:
            holder.begin()
            lock_for_writing(holder)
            assert other.execute(probe, {"k": _PG_LOCK}).scalar_one() is True
            assert same.execute(probe, {"k": _PG_LOCK}).scalar_one() is False
            holder.rollback()
            other.rollback()
            same.rollback()

        a.close()
        first.close()  # drops the first store's schema
        assert trigram_index(b) != []
        ingest_frame(classified_frame(20, seed=1), dataset="shop", store=b)
        with b.engine.connect() as c:
            assert Q.items(c, Q.StatsFilter(q="delivery was late"))["total"] > 0
    finally:
        a.close()
        b.close()
        second.close()
