"""Issue 31, the second hostile pass, in the library: exact CSV output (escaping on request),
XLSX text as strings, an output that is its own input, one text validator, one prediction
wrapper, the last complete period, XLSX rows counted before work, the webhook's URL rules."""

from __future__ import annotations

import csv
import datetime as dt
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest
from feedback_helpers import classified_frame

from cxnlp.cli import main
from cxnlp.feedback import alerts as store_alerts
from cxnlp.feedback.db import open_store
from cxnlp.feedback.ingest import ingest_frame
from cxnlp.feedback.queries import StatsFilter
from cxnlp.io.batch import classify_file, row_error
from cxnlp.io.isolate import Failed, predict_isolated
from cxnlp.io.tables import count_rows, read_table, write_table
from cxnlp.io.validate import check_names, parse_json, text_problem
from cxnlp.report.periods import last_complete_period
from cxnlp.report.summary import summarize

FORMULAS = ["=1+1", "@united lost my bag", "+98", "-not a number", '=HYPERLINK("x")']


def _raw_csv(path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def test_classify_csv_keeps_every_id_and_text_exactly(tiny_fast_model, tmp_path):
    source = tmp_path / "d.csv"
    pd.DataFrame({"id": FORMULAS, "text": FORMULAS}).to_csv(source, index=False)
    out = tmp_path / "o.csv"
    classify_file(tiny_fast_model, source, out, progress=False)
    rows = _raw_csv(out)
    assert [r[0] for r in rows[1:]] == FORMULAS
    assert [r[1] for r in rows[1:]] == FORMULAS
    safe = tmp_path / "safe.csv"
    classify_file(tiny_fast_model, source, safe, progress=False, excel_safe=True)
    escaped = [r[0] for r in _raw_csv(safe)[1:]]
    assert escaped == ["'=1+1", "'@united lost my bag", "+98", "'-not a number",
                       "'=HYPERLINK(\"x\")"]  # fmt: skip


def test_xlsx_text_cells_are_strings_never_formulas(tmp_path):
    path = tmp_path / "o.xlsx"
    write_table(pd.DataFrame({"id": FORMULAS, "n": range(len(FORMULAS))}), path)
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet
    back = read_table(path)
    assert back["id"].tolist() == FORMULAS
    assert back["n"].tolist() == list(range(len(FORMULAS)))
    assert count_rows(path) == len(FORMULAS)


def test_classify_store_then_api_is_one_item_not_two(tiny_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from service import Settings, create_app

    source = tmp_path / "d.csv"
    source.write_text("id,text\n=1+1,@united lost my bag\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'f.sqlite'}"
    argv = ["classify", str(source), "-o", str(tmp_path / "o.csv"), "--store", "--db", db]
    assert main([*argv, "--dataset", "fdup", "--model", str(tiny_model_dir), "-q"]) == 0
    settings = Settings(
        model=str(tiny_model_dir),
        auth=False,
        database_url=db,
        jobs_dir=tmp_path / "jobs",
        max_wait_ms=1,
    )
    with TestClient(create_app(settings)) as client:
        item = {"id": "=1+1", "text": "@united lost my bag"}
        r = client.post("/v1/classify", json={"dataset": "fdup", "items": [item]})
        assert r.status_code == 200, r.text
        assert r.json()["stored"]["inserted"] == 0 and r.json()["stored"]["updated"] == 1
        listed = client.get("/v1/stats/items", params={"dataset": "fdup"}).json()["items"]
    assert [(i["id"], i["text"]) for i in listed] == [("=1+1", "@united lost my bag")]


def test_excel_safe_with_store_escapes_the_file_not_the_store(tiny_model_dir, tmp_path):
    source = tmp_path / "d.csv"
    source.write_text("id,text\n@a,=bad idea\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'f.sqlite'}"
    out = tmp_path / "o.csv"
    argv = ["classify", str(source), "-o", str(out), "--store", "--db", db, "--excel-safe"]
    assert main([*argv, "--dataset", "x", "--model", str(tiny_model_dir), "-q"]) == 0
    assert _raw_csv(out)[1][:2] == ["'@a", "'=bad idea"]
    with open_store(db) as store, store.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT item_id, text FROM feedback_items").all()
    assert [tuple(r) for r in stored] == [("@a", "=bad idea")]


@pytest.mark.parametrize("name", ["same.csv", "same.xlsx"])
def test_classify_refuses_to_overwrite_its_input(tiny_model_dir, tmp_path, capsys, name):
    source = tmp_path / name
    write_table(pd.DataFrame({"text": ["Great app"]}), source)
    before = source.read_bytes()
    code = main(["classify", str(source), "-o", str(source), "--model", str(tiny_model_dir)])
    assert code == 2
    assert "is the input file itself" in capsys.readouterr().err
    assert source.read_bytes() == before
    link = tmp_path / f"link-{name}"
    link.symlink_to(source)
    with pytest.raises(ValueError, match="input file itself"):
        classify_file(lambda: None, source, link, progress=False)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "missing"),
        ("  ", "empty"),
        ("ok \ud800", "invalid_unicode"),
        ("a\x00b", "nul"),
        ("bad \ufffd bytes", "undecoded"),
        ("x" * 11, "too_long"),
    ],
)
def test_one_text_rule_for_every_surface(value, code):
    problem = text_problem(value, max_chars=10)
    assert problem is not None and problem.code == code
    assert row_error(value) == (None if code == "too_long" else problem.message)


def test_names_and_deep_json_are_refused_with_value_errors():
    with pytest.raises(ValueError, match=r"dims\.tier\[0\] .* NUL"):
        check_names({"dataset": ["ok"], "dims": {"tier": ["a\x00"]}})
    with pytest.raises(ValueError, match="lone surrogate"):
        check_names({"q": "x\ud800"})
    with pytest.raises(ValueError, match="nests too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="NUL"):
        StatsFilter(dataset=["a\x00b"])


def test_prediction_wrapper_fails_only_the_bad_text():
    calls = []

    def predict(texts, langs):
        calls.append(len(texts))
        if "boom" in texts:
            raise TypeError("secret internals")
        return [t.upper() for t in texts]

    out = predict_isolated(predict, ["a", "boom", "c"], None)
    assert out[0] == "A" and out[2] == "C" and isinstance(out[1], Failed)
    assert "TypeError" in out[1].error and "secret" not in out[1].error
    assert calls == [3, 1, 1, 1]


def test_last_complete_period_is_the_one_the_report_and_the_store_test(tmp_path):
    # Items from Monday 2026-09-07 to Wednesday 2026-10-07: the week of 10-05 is partial.
    frame = classified_frame(900, seed=3, days=31)
    frame["created_at"] = frame["created_at"].str[:10]
    end = dt.date(2026, 9, 7) + dt.timedelta(days=30)
    assert frame["created_at"].max() == end.isoformat()
    summary = summarize(frame, date_col="created_at", period="week")
    scope = summary["alerts"]["last_complete"]
    assert scope["start"] == "2026-09-28" and scope["partial"] is not None
    assert summary["alerts"]["current"].startswith("2026-09-28")
    assert scope["note"] in summary["notes"]
    db = f"sqlite:///{tmp_path / 'f.sqlite'}"
    with open_store(db) as store:
        ingest_frame(frame, dataset="d", store=store)
        with store.engine.connect() as connection:
            from cxnlp.feedback.queries import alerts

            found = alerts(connection, StatsFilter(dataset=["d"]), period="week")
    assert found["last_complete"]["start"] == scope["start"]
    assert found["last_complete"]["note"] == scope["note"]
    assert max(t["period_start"] for t in found["tests"]) == "2026-09-28"
    assert last_complete_period([dt.date(2026, 10, 5)], "week", end) is None


class _Redirecting(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self):  # noqa: N802
        self.hits.append(self.path)
        self.send_response(307)
        self.send_header("Location", "http://example.invalid/elsewhere")
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


def test_webhook_is_http_only_follows_no_redirect_and_retries(tmp_path, monkeypatch):
    from service import Settings

    for url in ("file:///etc/passwd", "ftp://example.com/x", "http://"):
        with pytest.raises(ValueError, match="http:// or https://"):
            Settings(alert_webhook=url)
        with pytest.raises(ValueError, match="http:// or https://"):
            store_alerts.post_json(url, {})
    server = HTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(OSError, match="redirect"):
            store_alerts.post_json(f"http://127.0.0.1:{server.server_port}/hook", {"a": 1})
    finally:
        server.shutdown()
    # A send failing with any error (a TypeError here) releases the alert for the next try.
    db = f"sqlite:///{tmp_path / 'f.sqlite'}"
    frame = classified_frame(900, seed=3, days=31)
    with open_store(db) as store:
        ingest_frame(frame, dataset="d", store=store)
        store_alerts.record_alerts(store, "d", period="day", alpha=0.9)

        def broken(url, payload, timeout=5.0):
            raise TypeError("not JSON serialisable")

        monkeypatch.setattr(store_alerts, "post_json", broken)
        assert store_alerts.notify(store, "http://127.0.0.1:9/hook") == 0
        with store.engine.connect() as connection:
            claimed = connection.exec_driver_sql(
                "SELECT count(*) FROM feedback_alerts WHERE notified_at IS NOT NULL"
            ).scalar()
            total = connection.exec_driver_sql("SELECT count(*) FROM feedback_alerts").scalar()
    assert total > 0 and claimed == 0
