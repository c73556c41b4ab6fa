"""The follow-up queue's routes (/v1/cases*) on a real SQLite store, through an app built with a
tiny model: listing (overdue first, filters), a case with its feedback and the customer's
history, assign / comment / status with closing rules and custom statuses, the CSV export,
escalation with the webhook, recovery, auth and the OpenAPI page."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pandas as pd
import pytest
from feedback_helpers import case_row
from sqlalchemy import update

from cxnlp.feedback import alerts
from cxnlp.feedback.cases import CASE_FIELDS, RULES_ENV
from cxnlp.feedback.db import open_store
from cxnlp.feedback.ingest import ingest_frame
from cxnlp.feedback.models import CASES

KEY = "cases-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAST = dt.datetime(2020, 1, 1)


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'feedback.sqlite'}"


@pytest.fixture
def client(service_client, db_url, monkeypatch):
    monkeypatch.delenv(RULES_ENV, raising=False)
    return service_client(
        api_keys=[KEY], database_url=db_url, alert_webhook="http://hook.invalid/cases"
    )


def ingest(db_url, rows, score=False):
    frame = pd.DataFrame(rows)
    kwargs = {"score_col": "nps", "score_kind": "nps"} if score else {}
    if not score:
        frame = frame.drop(columns=["nps"])
    with open_store(db_url) as store:
        ingest_frame(frame, dataset="shop", store=store, **kwargs)


def make_overdue(db_url, item_id):
    with open_store(db_url) as store, store.engine.begin() as c:
        c.execute(update(CASES).where(CASES.c.item_id == item_id).values(due_at=PAST))


def queue(client, **params):
    r = client.get("/v1/cases", params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def seed(db_url):
    """Three cases: c1 urgent (p1, logistics), c2 a confident negative (p3), c3 a detractor
    routed to billing (p2); c1 also has an earlier positive item that is in no case."""
    delivery = [{"topic": "delivery", "polarity": "negative", "score": 0.9}]
    price = [{"topic": "price", "polarity": "negative", "score": 0.8}]
    ingest(
        db_url,
        [
            case_row("old", "c1", sentiment="positive", p_neg=0.9, when="2026-09-01",
                     text="loved it last time"),
            case_row("u1", "c1", level="high", urgency=0.9, topics=delivery,
                     text="cancel my account now"),
            case_row("n1", "c2", p_neg=0.95, text="bad"),
            case_row("d1", "c3", p_neg=0.6, score=3, topics=price, text="too expensive"),
        ],
        score=True,
    )  # fmt: skip


def test_cases_list_puts_overdue_first_and_filters(client, db_url):
    seed(db_url)
    page = queue(client)
    assert page["total"] == 3
    assert [c["item_id"] for c in page["cases"]] == ["u1", "d1", "n1"]  # by priority
    make_overdue(db_url, "n1")
    page = queue(client)
    assert [c["item_id"] for c in page["cases"]] == ["n1", "u1", "d1"]
    assert [c["overdue"] for c in page["cases"]] == [True, False, False]
    assert [c["item_id"] for c in queue(client, overdue="true")["cases"]] == ["n1"]
    assert [c["item_id"] for c in queue(client, priority="p1")["cases"]] == ["u1"]
    assert [c["team"] for c in queue(client, team="billing")["cases"]] == ["billing"]
    assert queue(client, team="billing")["cases"][0]["reason"] == "detractor"
    assert queue(client, status=["contacted"])["total"] == 0
    assert queue(client, customer_id="c2")["cases"][0]["item_id"] == "n1"
    page = queue(client, limit=1, offset=1)
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)
    assert [c["item_id"] for c in page["cases"]] == ["u1"]


def test_cases_need_a_key(client, db_url):
    assert client.get("/v1/cases").status_code == 401
    r = client.post("/v1/cases/1/comments", json={"note": "x"})
    assert r.status_code == 401


def test_case_detail_has_feedback_and_customer_history(client, db_url):
    seed(db_url)
    (case,) = queue(client, customer_id="c1")["cases"]
    r = client.get(f"/v1/cases/{case['id']}", headers=AUTH)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert [f["item_id"] for f in detail["feedback"]] == ["u1"]
    assert detail["feedback"][0]["text"] == "cancel my account now"
    assert [e["kind"] for e in detail["events"]] == ["opened"]
    history = detail["history"]
    assert history["customer_id"] == "c1"
    assert [f["item_id"] for f in history["feedback"]] == ["u1", "old"]  # newest first
    assert [c["id"] for c in history["cases"]] == [case["id"]]
    r = client.get("/v1/cases/customers/c1", params={"dataset": "shop"}, headers=AUTH)
    assert r.json() == history
    assert client.get("/v1/cases/999", headers=AUTH).status_code == 404
    assert client.get("/v1/cases/0", headers=AUTH).status_code == 422


def test_assign_comment_and_status_changes_are_recorded(client, db_url):
    seed(db_url)
    case_id = queue(client, customer_id="c1")["cases"][0]["id"]
    url = f"/v1/cases/{case_id}"
    r = client.post(f"{url}/assign", json={"owner": "sara", "actor": "lead"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["owner"] == "sara"
    assert queue(client, owner="sara")["cases"][0]["id"] == case_id
    r = client.post(f"{url}/status", json={"status": "contacted", "actor": "sara"}, headers=AUTH)
    assert r.json()["status"] == "contacted" and r.json()["first_response_at"] is not None
    r = client.post(f"{url}/comments", json={"note": "refund promised"}, headers=AUTH)
    assert r.json()["events"][-1]["note"] == "refund promised"
    assert client.post(f"{url}/comments", json={"note": ""}, headers=AUTH).status_code == 422
    r = client.post(f"{url}/status", json={"status": "closed"}, headers=AUTH)
    assert r.status_code == 422 and "root_cause" in r.json()["error"]
    r = client.post(f"{url}/status", json={"status": "done"}, headers=AUTH)
    assert r.status_code == 422 and "'contacted'" in r.json()["error"]  # lists the statuses
    closing = {"status": "closed", "root_cause": "courier lost parcel", "resolved": False}
    r = client.post(f"{url}/status", json=closing, headers=AUTH)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert (detail["status"], detail["resolved"], detail["root_cause"]) == (
        "closed",
        False,
        "courier lost parcel",
    )
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in detail["events"]] == [
        ("opened", None, "open"),
        ("assigned", None, None),
        ("status", "open", "contacted"),
        ("comment", None, None),
        ("status", "contacted", "closed"),
    ]
    assert queue(client, open="true")["total"] == 2
    # A new urgent message of c1 opens a new case; reopening the closed one now clashes.
    ingest(db_url, [case_row("u2", "c1", level="high", urgency=0.9)])
    r = client.post(f"{url}/status", json={"status": "open"}, headers=AUTH)
    assert r.status_code == 409


def test_custom_statuses_come_from_the_rules_file(client, db_url, tmp_path, monkeypatch):
    from importlib import resources

    import yaml

    raw = yaml.safe_load(resources.files("cxnlp.data").joinpath("case_rules.yaml").read_text())
    raw["statuses"] = ["open", "waiting_on_customer", "closed"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv(RULES_ENV, str(path))
    seed(db_url)
    assert client.get("/v1/cases/rules", headers=AUTH).json()["statuses"] == raw["statuses"]
    case_id = queue(client)["cases"][0]["id"]
    r = client.post(
        f"/v1/cases/{case_id}/status", json={"status": "waiting_on_customer"}, headers=AUTH
    )
    assert r.status_code == 200 and r.json()["status"] == "waiting_on_customer"
    r = client.post(f"/v1/cases/{case_id}/status", json={"status": "contacted"}, headers=AUTH)
    assert r.status_code == 422
    # A broken rules file is the server's error, said as such (never a 500).
    monkeypatch.setenv(RULES_ENV, str(tmp_path / "missing.yaml"))
    r = client.get("/v1/cases/rules", headers=AUTH)
    assert r.status_code == 503 and "case rules cannot be read" in r.json()["error"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("statuses: [closed]\n", encoding="utf-8")
    monkeypatch.setenv(RULES_ENV, str(bad))
    r = client.post(f"/v1/cases/{case_id}/status", json={"status": "closed"}, headers=AUTH)
    assert r.status_code == 503 and "priorities" in r.json()["error"]


def test_cases_csv_export_is_spreadsheet_safe(client, db_url):
    seed(db_url)
    case_id = queue(client)["cases"][0]["id"]
    owner = '=HYPERLINK("http://x","y")'
    client.post(f"/v1/cases/{case_id}/assign", json={"owner": owner}, headers=AUTH)
    r = client.get("/v1/cases/export.csv", params={"priority": ["p1"]}, headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert tuple(rows[0]) == CASE_FIELDS
    assert [row["item_id"] for row in rows] == ["u1"]
    assert rows[0]["owner"] == "'" + owner
    everything = client.get("/v1/cases/export.csv", headers=AUTH).text
    assert len(list(csv.DictReader(io.StringIO(everything.lstrip("\ufeff"))))) == 3


def test_escalation_run_flags_overdue_cases_once_and_posts(client, db_url, monkeypatch):
    posted = []
    monkeypatch.setattr(alerts, "post_json", lambda url, body, timeout=5.0: posted.append(url))
    seed(db_url)
    make_overdue(db_url, "d1")
    r = client.post("/v1/cases/escalate", headers=AUTH)
    assert r.status_code == 200, r.text
    (case,) = r.json()["escalated"]
    assert case["item_id"] == "d1" and case["escalation_owner"] == "cx_lead"
    assert posted == ["http://hook.invalid/cases"]
    assert client.post("/v1/cases/escalate", headers=AUTH).json()["escalated"] == []
    detail = client.get(f"/v1/cases/{case['id']}", headers=AUTH).json()
    assert detail["escalated"] and detail["events"][-1]["kind"] == "escalated"


def test_recovery_route_compares_followed_up_customers(client, db_url):
    seed(db_url)
    found = {c["customer_id"]: c["id"] for c in queue(client)["cases"]}
    client.post(f"/v1/cases/{found['c1']}/status", json={"status": "resolved"}, headers=AUTH)
    closing = {"status": "closed", "root_cause": "late courier", "resolved": True}
    client.post(f"/v1/cases/{found['c1']}/status", json=closing, headers=AUTH)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    ingest(db_url, [case_row("u9", "c1", sentiment="positive", p_neg=0.9, when=later),
                    case_row("n9", "c2", p_neg=0.95, when=later)])  # fmt: skip
    r = client.get("/v1/cases/recovery", params={"dataset": "shop"}, headers=AUTH)
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["recovered"]["wrote_again"] == 1 and m["not_followed_up"]["wrote_again"] == 1
    assert m["difference"]["sentiment_change"] > 1.5
    assert m["root_causes"] == [
        {"topic": "delivery", "root_cause": "late courier", "cases": 1, "resolved_share": 1.0}
    ]
    teams = {t["team"]: t for t in m["teams"]}
    assert set(teams) == {"logistics", "billing", "customer_care"}
    assert teams["billing"]["median_hours_to_first_response"] is None  # no response yet
    assert teams["logistics"]["median_hours_to_resolution"] is not None
    assert client.get("/v1/cases/recovery", headers=AUTH).status_code == 422


def test_cases_routes_are_documented(client):
    spec = client.get("/openapi.json").json()
    paths = {p: v for p, v in spec["paths"].items() if p.startswith("/v1/cases")}
    assert set(paths) >= {
        "/v1/cases",
        "/v1/cases/export.csv",
        "/v1/cases/{case_id}",
        "/v1/cases/{case_id}/assign",
        "/v1/cases/{case_id}/comments",
        "/v1/cases/{case_id}/status",
        "/v1/cases/escalate",
        "/v1/cases/recovery",
        "/v1/cases/customers/{customer_id}",
    }
    for ops in paths.values():
        for op in ops.values():
            assert op["tags"] == ["cases"] and op["summary"]
    listed = paths["/v1/cases"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["$ref"].endswith("/CasesPage")


def test_cases_page_is_served_behind_the_login(client):
    r = client.get("/dashboard/cases", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    r = client.get("/dashboard/cases", headers=AUTH)
    assert r.status_code == 200 and "/dashboard/static/cases.js" in r.text
    assert 'data-auth="true"' in r.text  # the template was filled
    js = client.get("/dashboard/static/cases.js", headers=AUTH)
    assert js.status_code == 200 and "/v1/cases" in js.text
    assert client.get("/dashboard/static/cases.js").status_code == 401
