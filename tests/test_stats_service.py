"""The store inside the service: storing from /v1/classify and /v1/jobs, the stats API and its
auth, the dashboard's login, CSV export, and the alert webhook (a real local HTTP server)."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from feedback_helpers import classified_frame

from cxnlp.feedback.db import open_store
from cxnlp.feedback.ingest import ingest_frame

KEY = "stats-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'feedback.sqlite'}"


@pytest.fixture
def make_client(service_client, db_url):
    return lambda **overrides: service_client(
        **{"api_keys": [KEY], "database_url": db_url, **overrides}
    )


ITEMS = [
    {
        "id": "a1",
        "text": "Terrible service, the courier was two hours late",
        "channel": "app",
        "created_at": "2026-09-08",
        "score": 2,
        "tier": "gold",
    },
    {
        "id": "a2",
        "text": "Great app, fast delivery, love it",
        "channel": "web",
        "created_at": "2026-09-09",
        "score": 10,
    },
    {
        "id": "a3",
        "text": "غذا سرد بود و پیک یک ساعت دیر رسید",
        "channel": "app",
        "created_at": "2026-09-15",
        "score": 5,
    },
]


def test_classify_with_a_dataset_stores_and_updates(make_client):
    client = make_client()
    body = {"items": ITEMS, "dataset": "shop", "score_kind": "nps"}
    r = client.post("/v1/classify", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["stored"]["inserted"] == 3
    r = client.post("/v1/classify", json=body, headers=AUTH)
    assert r.json()["stored"] == {**r.json()["stored"], "inserted": 0, "updated": 3}
    stats = client.get("/v1/stats", params={"dataset": "shop"}, headers=AUTH).json()
    predicted = [i["sentiment"] for i in r.json()["items"]]
    assert stats["n"] == 3
    assert stats["counts"] == {s: predicted.count(s) for s in ("negative", "neutral", "positive")}
    assert stats["scores"]["nps"]["promoters"] == 1 and stats["scores"]["nps"]["detractors"] == 2
    by_tier = client.get("/v1/stats", params={"dim": "tier:gold"}, headers=AUTH).json()
    assert by_tier["n"] == 1 and by_tier["source"] == "daily aggregates"
    page = client.get("/v1/stats/items", params={"channel": "app"}, headers=AUTH).json()
    assert [i["id"] for i in page["items"]] == ["a3", "a1"]
    assert page["items"][0]["text"] == ITEMS[2]["text"]  # stored as sent
    assert page["items"][1]["dimensions"] == {"tier": "gold"}
    assert page["items"][0]["model_name"] == "custom"
    trend = client.get("/v1/stats/trend", params={"period": "week"}, headers=AUTH).json()
    assert [(p["period"], p["n"]) for p in trend["periods"]] == [("2026-W37", 2), ("2026-W38", 1)]


def test_classify_stores_csat_on_its_declared_scale(make_client):
    client = make_client()
    items = [{**item, "score": score} for item, score in zip(ITEMS, (6, 7, 5), strict=True)]
    body = {"items": items, "dataset": "shop", "score_kind": "csat", "score_scale": [1, 7]}
    r = client.post("/v1/classify", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    csat = client.get("/v1/stats", headers=AUTH).json()["scores"]["csat"]
    assert (csat["n"], csat["satisfied"], csat["scale"]) == (3, 2, [1, 7])
    # Refused before any work: a scale NPS cannot have, a scale without a kind.
    for bad in ({"score_kind": "nps", "score_scale": [1, 7]}, {"score_kind": None}):
        r = client.post("/v1/classify", json={**body, **bad, "dataset": "d2"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "score_scale"
    # The dataset keeps its scale.
    on_five = [{**item, "score": 3} for item in items]
    r = client.post(
        "/v1/classify", json={**body, "items": on_five, "score_scale": None}, headers=AUTH
    )
    assert r.status_code == 422 and "holds CSAT answers on 1-7" in r.json()["error"]
    assert client.get("/v1/stats", params={"dataset": "d2"}, headers=AUTH).json()["n"] == 0


def test_storing_needs_ids_and_valid_fields(make_client):
    client = make_client()
    r = client.post("/v1/classify", json={"items": [{"text": "ok"}], "store": True}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "items[0].id"
    bad = [{"id": 1, "text": "ok", "created_at": "someday"}]
    r = client.post("/v1/classify", json={"items": bad, "dataset": "d"}, headers=AUTH)
    assert r.status_code == 422 and "created_at 'someday' is not a date" in r.json()["error"]
    assert client.get("/v1/stats", headers=AUTH).json()["n"] == 0
    # Without a dataset nothing is stored and nothing changes for existing clients.
    r = client.post("/v1/classify", json={"items": [{"text": "ok"}]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["stored"] is None


def test_a_job_with_a_dataset_is_stored(make_client, tmp_path):
    client = make_client()
    frame = classified_frame(40)[["id", "created_at", "channel", "text"]]
    path = tmp_path / "upload.csv"
    frame.to_csv(path, index=False)
    with open(path, "rb") as handle:
        r = client.post(
            "/v1/jobs",
            files={"file": ("upload.csv", handle, "text/csv")},
            data={"dataset": "survey"},
            headers=AUTH,
        )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    for _ in range(200):
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert job["stored"]["inserted"] == 40 and job["dataset"] == "survey"
    stats = client.get("/v1/stats", params={"dataset": "survey"}, headers=AUTH).json()
    assert stats["n"] + stats["errors"] == 40
    page = client.get("/v1/stats/items", params={"dataset": "survey"}, headers=AUTH).json()
    models = {(i["model_name"], i["model_version"]) for i in page["items"]}
    assert models == {(job["model"], job["model_version"])} and job["model"] == "custom"


def test_stats_and_dashboard_need_a_key(make_client):
    client = make_client()
    assert client.get("/v1/stats").status_code == 401
    assert client.get("/v1/stats/items.csv").status_code == 401
    assert client.get("/v1/stats", headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert client.get("/dashboard/static/dashboard.js").status_code == 401
    assert "API key" in client.get("/dashboard/login").text
    r = client.post("/dashboard/login", data={"key": "wrong"}, follow_redirects=False)
    assert r.status_code == 401 and "not valid" in r.text
    r = client.post("/dashboard/login", data={"key": KEY}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.cookies.get("cxnlp_session")
    assert cookie and KEY not in cookie
    assert client.get("/dashboard").status_code == 200
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/v1/stats").status_code == 200
    # The cookie opens the dashboard's data only, not the model.
    assert client.post("/v1/classify", json={"items": [{"text": "x"}]}).status_code == 401
    client.post("/dashboard/logout")
    assert client.get("/v1/stats").status_code == 401


def test_dashboard_assets_ship_offline(make_client):
    client = make_client(auth=False)
    html = client.get("/dashboard").text
    assert "http://" not in html and "https://" not in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == ["/dashboard/static/common.js", "/dashboard/static/dashboard.js"]
    for src in scripts:
        r = client.get(src)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert "https://" not in r.text and "http://" not in r.text.replace(
            '"http://www.w3.org/2000/svg"', ""
        ), src
    assert "getJson(`/v1/stats" in client.get(scripts[1]).text


def test_openapi_documents_the_stats_api(make_client):
    spec = make_client().get("/openapi.json").json()
    for path in (
        "/v1/stats",
        "/v1/stats/trend",
        "/v1/stats/topics",
        "/v1/stats/items",
        "/v1/stats/alerts",
        "/v1/stats/topics/by",
        "/v1/stats/items.csv",
    ):
        assert path in spec["paths"], path
    ok = spec["paths"]["/v1/stats"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/StatsSummary")
    params = {p["name"] for p in spec["paths"]["/v1/stats"]["get"]["parameters"]}
    assert {
        "dataset",
        "start",
        "end",
        "lang",
        "channel",
        "topic",
        "sentiment",
        "dim",
        "q",
    } <= params


def test_csv_export_follows_the_filter(make_client, db_url):
    with open_store(db_url) as store:
        frame = classified_frame(120)
        ingest_frame(frame, dataset="shop", store=store)
    client = make_client()
    r = client.get(
        "/v1/stats/items.csv", params={"channel": "web", "sentiment": "negative"}, headers=AUTH
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    expected = frame[(frame["channel"] == "web") & (frame["sentiment"] == "negative")]
    assert sorted(r["id"] for r in rows) == sorted(expected["id"])
    assert {r["sentiment"] for r in rows} == {"negative"}
    assert all(isinstance(json.loads(r["topics"]), list) for r in rows)


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_webhook_gets_each_new_alert_once(make_client, db_url):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        frame = classified_frame(600, seed=6, days=14)
        late = frame["created_at"] >= "2026-09-14"
        frame.loc[late & frame["error"].isna() & (frame.index % 2 == 0), "sentiment"] = "negative"
        with open_store(db_url) as store:
            ingest_frame(frame, dataset="shop", store=store)
        client = make_client(alert_webhook=f"http://127.0.0.1:{server.server_port}/hook")
        flagged = client.get("/v1/stats/alerts", params={"dataset": "shop"}, headers=AUTH).json()
        assert flagged["flagged"], "the data should raise an alert"
        item = {"id": "x1", "text": "Great app", "created_at": "2026-09-01"}
        for _ in range(2):
            r = client.post("/v1/classify", json={"items": [item], "dataset": "shop"}, headers=AUTH)
            assert r.status_code == 200
        kinds = sorted((a["alert"]["kind"], a["alert"]["value"] or "") for a in _Hook.received)
        expected = sorted((a["kind"], a["value"] or "") for a in flagged["flagged"])
        assert kinds == expected  # once each, though two requests stored items
        assert _Hook.received[0]["alert"]["dataset"] == "shop"
        assert "p_value" in _Hook.received[0]["alert"] and "cohens_h" in _Hook.received[0]["alert"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_store_that_does_not_answer_is_a_retryable_503_on_every_store_route(make_client):
    """The routers' one way to the store (`service.feedback.in_store`): a driver error (here the
    tables are gone under a running service) is a 503 with Retry-After, never a 500."""
    from cxnlp.feedback.models import Base

    client = make_client()
    Base.metadata.drop_all(client.app.state.feedback.get().engine)
    for method, path in [
        ("GET", "/v1/stats"),
        ("GET", "/v1/stats/items"),
        ("GET", "/v1/stats/items.csv"),
        ("GET", "/v1/cases"),
        ("GET", "/v1/cases/1"),
        ("POST", "/v1/cases/1/comments"),
        ("POST", "/v1/cases/escalate"),
    ]:
        body = {"note": "x"} if method == "POST" else None
        r = client.request(method, path, json=body, headers=AUTH)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers["Retry-After"] == "1", path
        assert "the feedback store did not answer: OperationalError" in r.json()["error"], path
