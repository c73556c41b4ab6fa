"""Issue 31, the second hostile pass, on the service: the dashboard's CSV export escaped for
spreadsheets, expired AWS signatures, login throttling and server-side sessions, jobs counted,
capped, cancelled and scheduled fairly, one validator (and one prediction wrapper) on /v1,
Azure and AWS, stored names without NUL, capped dimensions."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import time
from pathlib import Path
from unittest import mock

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.jobs import Job, JobRunner
from service.loading import wrap_model

KEY, OTHER = "second-pass-key-0123", "second-pass-other-99"
AUTH = {"Authorization": f"Bearer {KEY}"}
ACCESS_KEY, SECRET = "AKIDSECONDPASS", "second-pass-secret"


class _Failing:
    """The tiny model, but it raises on any text holding "boom"; `gate` holds predict."""

    kind = "fast"

    def __init__(self, model, gate: threading.Event | None = None):
        self.model, self.gate = model, gate
        self.source_ = getattr(model, "source_", None)

    def predict(self, texts, langs=None):
        if self.gate is not None:
            self.gate.wait(30)
        if any("boom" in t for t in texts):
            raise TypeError("internal detail")
        return self.model.predict(texts, langs)


@pytest.fixture
def make_client(service_client, tiny_fast_model):
    cloud = {"azure_api": True, "aws_api": True, "aws_keys": [f"{ACCESS_KEY}:{SECRET}"]}

    def make(model=None, **overrides) -> TestClient:
        settings = {"api_keys": [KEY, OTHER], **cloud, **overrides}
        return service_client(model or _Failing(tiny_fast_model), **settings)

    return make


def _raw(client: TestClient, path: str, body: dict, headers: dict | None = None):
    # ensure_ascii: a lone surrogate goes as the JSON escape a client would send
    return client.post(
        path,
        content=json.dumps(body, ensure_ascii=True).encode(),
        headers={**(headers or AUTH), "Content-Type": "application/json"},
    )


# --- defect 2: the dashboard's CSV export ------------------------------------------------------


def test_items_csv_escapes_formulas_the_store_keeps_them(make_client):
    client = make_client()
    items = [
        {"id": "=1+1", "text": '=HYPERLINK("http://x","click")', "channel": "@web"},
        {"id": "b", "text": "@SUM(A1) was charged twice"},
        {"id": "c", "text": "-5 stars"},
    ]
    r = client.post("/v1/classify", json={"dataset": "d", "items": items}, headers=AUTH)
    assert r.status_code == 200, r.text
    r = client.get("/v1/stats/items.csv", headers=AUTH)
    assert r.status_code == 200
    rows = {row["text"]: row for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")))}
    assert set(rows) == {'\'=HYPERLINK("http://x","click")', "'@SUM(A1) was charged twice",
                         "'-5 stars"}  # fmt: skip
    assert rows['\'=HYPERLINK("http://x","click")']["id"] == "'=1+1"
    assert rows['\'=HYPERLINK("http://x","click")']["channel"] == "'@web"
    listed = client.get("/v1/stats/items", headers=AUTH).json()["items"]
    assert sorted(i["text"] for i in listed) == sorted(i["text"] for i in items)


# --- defect 3: SigV4 replays ------------------------------------------------------------------


def _signed(
    body: bytes, when: dt.datetime | None = None, operation: str = "DetectSentiment"
) -> dict[str, str]:
    """Headers botocore's own signer gives the request (at `when`, else now)."""
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url="http://testserver/",
        data=body,
        headers={
            "X-Amz-Target": f"Comprehend_20171127.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(ACCESS_KEY, SECRET), "comprehend", "us-east-1"
    )
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return dict(request.headers.items())


def test_aws_request_signed_long_ago_is_refused(make_client):
    client = make_client()
    body = json.dumps({"Text": "Great app", "LanguageCode": "en"}).encode()
    old = client.post("/", content=body, headers=_signed(body, dt.datetime(2020, 1, 1)))
    assert old.status_code == 403
    assert old.json()["__type"] == "InvalidSignatureException"
    assert "Signature expired" in old.json()["Message"]
    stale = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=16)
    assert client.post("/", content=body, headers=_signed(body, stale)).status_code == 403
    assert client.post("/", content=body, headers=_signed(body)).status_code == 200


# --- defect 4: login ---------------------------------------------------------------------------


def test_failed_logins_are_throttled_per_client(make_client):
    client = make_client()
    codes = [
        client.post("/dashboard/login", data={"key": f"wrong-{n}"}).status_code for n in range(8)
    ]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    throttled = client.post("/dashboard/login", data={"key": KEY}, follow_redirects=False)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1


def test_sessions_are_random_and_logout_revokes_them(make_client):
    client = make_client()
    cookies = []
    for _ in range(2):
        r = client.post("/dashboard/login", data={"key": KEY}, follow_redirects=False)
        assert r.status_code == 303
        cookies.append(r.cookies["cxnlp_session"])
        client.cookies.clear()
    assert cookies[0] != cookies[1] and KEY not in cookies[0]
    client.cookies.set("cxnlp_session", cookies[0])
    assert client.get("/v1/stats").status_code == 200
    client.post("/dashboard/logout", follow_redirects=False)
    client.cookies.set("cxnlp_session", cookies[0])
    assert client.get("/v1/stats").status_code == 401  # the logged-out session is refused
    client.cookies.set("cxnlp_session", cookies[1])
    assert client.get("/v1/stats").status_code == 200  # the other one lives on


# --- defect 5: jobs ------------------------------------------------------------------------------


def _upload(client, rows: int, headers=AUTH, name="r.csv"):
    frame = pd.DataFrame({"id": range(rows), "text": ["Great app"] * rows})
    buffer = io.BytesIO()
    if name.endswith(".xlsx"):
        frame.to_excel(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False)
    return client.post("/v1/jobs", files={"file": (name, buffer.getvalue())}, headers=headers)


@pytest.mark.parametrize("name", ["big.csv", "big.xlsx"])
def test_job_rows_are_counted_and_capped_before_any_work(make_client, name):
    client = make_client(max_job_rows=50, max_key_rows=80)
    refused = _upload(client, 51, name=name)
    assert refused.status_code == 413 and "51 rows" in refused.json()["error"]
    assert client.app.state.cxnlp.jobs.queued == 0


def test_a_key_cannot_queue_more_rows_than_its_cap(make_client, tiny_fast_model):
    gate = threading.Event()
    client = make_client(model=_Failing(tiny_fast_model, gate), max_key_rows=80, job_workers=1)
    try:
        assert _upload(client, 50).status_code == 202
        over = _upload(client, 40)
        assert over.status_code == 429 and "CXNLP_MAX_KEY_ROWS" in over.json()["error"]
        other = {"Authorization": f"Bearer {OTHER}"}
        assert _upload(client, 40, headers=other).status_code == 202  # another key's own cap
    finally:
        gate.set()


def test_delete_cancels_queued_and_running_jobs(make_client, tiny_fast_model):
    gate = threading.Event()
    client = make_client(model=_Failing(tiny_fast_model, gate), job_workers=1, job_chunk_rows=5)
    running = _upload(client, 20).json()["id"]
    queued = _upload(client, 20).json()["id"]
    other = {"Authorization": f"Bearer {OTHER}"}
    assert client.delete(f"/v1/jobs/{queued}", headers=other).status_code == 404  # not its job
    r = client.delete(f"/v1/jobs/{queued}", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    deadline = time.monotonic() + 20
    while client.get(f"/v1/jobs/{running}", headers=AUTH).json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.delete(f"/v1/jobs/{running}", headers=AUTH).status_code == 200
    gate.set()
    while client.get(f"/v1/jobs/{running}", headers=AUTH).json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    info = client.get(f"/v1/jobs/{running}", headers=AUTH).json()
    assert info["status"] == "cancelled" and info["rows_done"] < 20
    assert client.get(f"/v1/jobs/{running}/result", headers=AUTH).status_code == 409


def test_jobs_of_another_key_are_not_starved(tiny_fast_model, tmp_path):
    order: list[str] = []

    class Recording:
        source_ = None

        def predict(self, texts, langs=None):
            order.append(texts[0].split()[0])
            return tiny_fast_model.predict(texts, langs)

    runner = JobRunner(tmp_path / "jobs", lambda _name: wrap_model(Recording()), workers=1)
    runner.jobs_dir.mkdir(parents=True)
    jobs = []
    for n, owner in enumerate(["a", "a", "a", "b"]):
        job_id, folder = runner.new_job_dir()
        path = folder / "input.csv"
        pd.DataFrame({"text": [f"{owner}{n} great"]}).to_csv(path, index=False)
        job = Job(job_id, "in.csv", str(path), str(folder / "out.csv"), "text", "id", owner=owner)
        job.created_at = n
        jobs.append(runner.submit(job))
    runner.start()
    deadline = time.monotonic() + 30
    while any(j.status in ("queued", "running") for j in jobs):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runner.close()
    # a0 ran first; then b's job went before a's later ones.
    assert order[:2] == ["a0", "b3"] and sorted(order[2:]) == ["a1", "a2"]


# --- defect 6: one validator, one prediction wrapper, no 500 ----------------------------------


def _aws(client, operation: str, payload: dict | bytes):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/", content=body, headers=_signed(body, operation=operation))


def test_lone_surrogate_and_deep_json_on_aws_are_4xx(make_client):
    client = make_client()
    surrogate = b'{"Text": "ok \\ud800", "LanguageCode": "en"}'
    r = _aws(client, "DetectSentiment", surrogate)
    assert r.status_code == 400 and "lone surrogate" in r.json()["Message"]
    batch = b'{"TextList": ["Great app", "x\\udfff"], "LanguageCode": "en"}'
    r = _aws(client, "BatchDetectSentiment", batch)
    assert r.status_code == 200
    assert [e["Index"] for e in r.json()["ErrorList"]] == [1]
    assert [x["Index"] for x in r.json()["ResultList"]] == [0]
    deep = b'{"Text": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = _aws(client, "DetectSentiment", deep)
    assert r.status_code == 400 and r.json()["__type"] == "SerializationException"


def test_azure_and_v1_give_the_same_per_item_error(make_client):
    client = make_client()
    v1 = _raw(client, "/v1/classify", {"items": [{"id": "1", "text": "\ud800"}]})
    expected = v1.json()["items"][0]["error"]
    assert "lone surrogate" in expected
    body = {
        "kind": "SentimentAnalysis",
        "analysisInput": {"documents": [{"id": "1", "text": "\ud800"}, {"id": "2", "text": "ok"}]},
    }
    r = _raw(client, "/language/:analyze-text?api-version=2023-04-01", body,
             {"Ocp-Apim-Subscription-Key": KEY})  # fmt: skip
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [d["id"] for d in results["documents"]] == ["2"]
    (error,) = results["errors"]
    assert error["id"] == "1" and expected in error["error"]["innererror"]["message"]


def test_a_text_the_model_fails_on_fails_alone_on_the_cloud_routes(make_client):
    client = make_client()
    body = {"documents": [{"id": "1", "text": "boom here"}, {"id": "2", "text": "Great app"}]}
    r = client.post("/text/analytics/v3.1/sentiment", json=body,
                    headers={"Ocp-Apim-Subscription-Key": KEY})  # fmt: skip
    assert r.status_code == 200, r.text
    assert [d["id"] for d in r.json()["documents"]] == ["2"]
    assert r.json()["errors"][0]["id"] == "1"
    assert "TypeError" in r.json()["errors"][0]["error"]["message"]
    assert "internal detail" not in r.text
    r = _aws(client, "BatchDetectSentiment", {"TextList": ["boom", "Great"], "LanguageCode": "en"})
    assert r.status_code == 200
    assert r.json()["ErrorList"][0]["Index"] == 0
    assert r.json()["ErrorList"][0]["ErrorCode"] == "INTERNAL_SERVER_ERROR"
    assert r.json()["ResultList"][0]["Index"] == 1


def _store_cases(client) -> None:
    item = {"id": "a", "text": "Great app"}
    cases = [
        {"dataset": "a\x00b", "items": [item]},
        {"dataset": "d", "items": [{**item, "tier\x00": "x"}]},
        {"dataset": "d", "items": [{**item, "tier": "x\x00"}]},
        {"dataset": "d", "items": [{**item, "id": "a\x00"}]},
        {"dataset": "d", "items": [{**item, "id": "a\ud800"}]},
    ]
    for body in cases:
        r = _raw(client, "/v1/classify", body)
        assert r.status_code == 422, (body, r.status_code, r.text)
    r = _raw(client, "/v1/classify", cases[0])
    assert r.json()["detail"][0]["field"] == "dataset" and "NUL" in r.json()["error"]
    r = client.post("/v1/jobs", files={"file": ("f.csv", b"text\nGreat app\n", "text/csv")},
                    data={"dataset": "a\x00"}, headers=AUTH)  # fmt: skip
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "dataset" and "NUL" in r.json()["error"]
    for params in (
        {"dataset": "a\x00"},
        {"dim": "tier:x\x00"},
        {"q": "x\x00"},
        {"channel": "\x00"},
        {"topic": "\x00"},
        {"lang": "\x00"},
    ):
        for path in ("/v1/stats", "/v1/stats/items.csv", "/v1/stats/alerts", "/v1/stats/options"):
            r = client.get(path, params=params, headers=AUTH)
            assert r.status_code == 422, (path, params, r.status_code, r.text)
    r = client.get("/v1/stats/topics/by", params={"column": "tier\x00"}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "query.column" and "NUL" in r.json()["error"]
    r = client.post("/v1/classify", json={"dataset": "d", "items": [item]}, headers=AUTH)
    assert r.status_code == 200, r.text
    export = client.get("/v1/stats/items.csv", headers=AUTH)
    assert export.status_code == 200 and len(export.text.strip().splitlines()) == 2


def test_nul_and_surrogates_in_stored_names_are_4xx_on_sqlite(make_client):
    _store_cases(make_client())


def test_nul_and_surrogates_in_stored_names_are_4xx_on_postgresql(make_client, tmp_path):
    from feedback_helpers import database_url

    urls = database_url("postgresql", tmp_path)
    url = next(urls)
    try:
        _store_cases(make_client(database_url=url))
    finally:
        next(urls, None)


# --- defect 8: dimensions per dataset -----------------------------------------------------------


def test_unknown_fields_cannot_grow_the_dimensions_without_bound(make_client):
    client = make_client()
    items = [
        {"id": str(n), "text": "Great app", **{f"f{n}_{k}": "v" for k in range(20)}}
        for n in range(250)
    ]
    r = client.post("/v1/classify", json={"dataset": "d", "items": items}, headers=AUTH)
    assert r.status_code == 422 and "dimension fields" in r.json()["error"]
    assert client.get("/v1/stats/options", headers=AUTH).json()["dims"] == {}
    few = [{"id": str(n), "text": "Great app", "tier": "gold"} for n in range(5)]
    r = client.post("/v1/classify", json={"dataset": "d", "items": few}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert client.get("/v1/stats/options", headers=AUTH).json()["dims"] == {"tier": ["gold"]}


# --- defect 11: no test writes the default store in the checkout -------------------------------


def test_tests_never_write_the_default_store_in_the_checkout():
    import os

    from test_api_fuzz import app as fuzz_app  # noqa: F401 - its settings are checked

    url = os.environ.get("CXNLP_DATABASE_URL", "")
    assert url and "cxnlp-feedback.sqlite" not in url
    repo = Path(__file__).resolve().parent.parent
    assert str(repo) not in url or "/tmp" in url
    from test_api_fuzz import SETTINGS

    assert SETTINGS.database_url and not SETTINGS.database_url.endswith("cxnlp-feedback.sqlite")
