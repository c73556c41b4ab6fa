"""The cases page as a person uses it: Debian's chromium (headless, Playwright) against a live
uvicorn server with auth on: log in, read the queue (overdue first, as /v1/cases), open a case,
assign it, close it with a root cause, open the customer's history. Without chromium or
Playwright it skips, saying so, or fails in CI (`ci_parts`, the `chromium` fixture)."""

from __future__ import annotations

import datetime as dt

import httpx
import pandas as pd
import pytest
from feedback_helpers import case_row
from sqlalchemy import update

from cxnlp.feedback.db import open_store
from cxnlp.feedback.ingest import ingest_frame
from cxnlp.feedback.models import CASES

KEY = "cases-browser-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def server(tmp_path, live_service):
    url = f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    rows = [
        case_row("old", "c1", sentiment="positive", p_neg=0.9, when="2026-09-01", text="great"),
        case_row("u1", "c1", level="high", urgency=0.9, text="I will cancel my account"),
        case_row("n1", "c2", p_neg=0.95, text="bad service"),
    ]
    with open_store(url) as store:
        ingest_frame(pd.DataFrame(rows).drop(columns=["nps"]), dataset="shop", store=store)
        with store.engine.begin() as c:  # n1's case is overdue: it must come first
            c.execute(
                update(CASES).where(CASES.c.item_id == "n1").values(due_at=dt.datetime(2020, 1, 1))
            )
    return live_service(url, KEY)


def test_work_a_case_on_the_cases_page(browser_page, server, tmp_path):
    queue = httpx.get(f"{server}/v1/cases", params={"open": "true"}, headers=AUTH).json()
    assert [c["item_id"] for c in queue["cases"]] == ["n1", "u1"]
    page = browser_page
    page.goto(f"{server}/dashboard/cases")
    assert page.url.endswith("/dashboard/login")
    page.fill("#key", KEY)
    page.click("#login")
    page.wait_for_url("**/dashboard")
    page.goto(f"{server}/dashboard/cases")
    page.wait_for_selector("#queue tr[data-id]")
    ids = page.eval_on_selector_all("#queue tr[data-id]", "els => els.map(e => e.dataset.id)")
    assert ids == [str(c["id"]) for c in queue["cases"]]
    assert "overdue" in page.get_attribute("#queue tr[data-id]", "class")

    urgent = queue["cases"][1]
    page.click(f"#queue a[href='#case={urgent['id']}']")
    page.wait_for_selector("#case dl.fields")
    assert "I will cancel my account" in page.text_content("#case")
    assert "great" in page.text_content("#history")  # the customer's earlier feedback

    page.fill("#case .actions input[placeholder=owner]", "sara")
    page.click("#case .actions button:text('Assign')")
    page.wait_for_function("() => document.querySelector('#case').textContent.includes('sara')")
    page.select_option("#case .actions > div > select", "closed")
    page.fill("#case .actions input[placeholder^='root cause']", "courier lost it")
    page.select_option("#case .actions span select", "true")
    page.click("#case .actions button:text('Change status')")
    page.wait_for_function(
        "() => document.querySelector('#case-title').textContent.includes('closed')"
    )
    detail = httpx.get(f"{server}/v1/cases/{urgent['id']}", headers=AUTH).json()
    assert (detail["owner"], detail["status"], detail["root_cause"], detail["resolved"]) == (
        "sara",
        "closed",
        "courier lost it",
        True,
    )
    # The queue (open only by default) no longer lists it.
    page.wait_for_function("() => document.querySelectorAll('#queue tr[data-id]').length === 1")
    page.screenshot(path=str(tmp_path / "cases.png"), full_page=True)
