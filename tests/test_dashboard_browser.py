"""The dashboard as a person uses it: Debian's chromium (headless, driven by Playwright) against a
live uvicorn server with auth on logs in, applies a filter, checks that the cards equal
/v1/stats for that filter, opens a drill-down and saves a screenshot (also to
$CXNLP_SCREENSHOT when set, which is how docs/dashboard.png is made). Without chromium or
Playwright it skips, saying so, or fails in CI (`ci_parts`)."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest
from feedback_helpers import classified_frame

from cxnlp.feedback.db import open_store
from cxnlp.feedback.ingest import ingest_frame

KEY = "browser-key-0123456789"


@pytest.fixture
def server(tmp_path, live_service):
    url = f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    frame = classified_frame(400, seed=7)
    with open_store(url) as store:
        ingest_frame(frame, dataset="shop", store=store, score_col="score", score_kind="nps")
    return live_service(url, KEY)


def test_log_in_filter_drill_down(browser_page, server, tmp_path):
    auth = {"Authorization": f"Bearer {KEY}"}
    page = browser_page

    # No page without a key: the dashboard sends the browser to the login form.
    page.goto(f"{server}/dashboard")
    assert page.url.endswith("/dashboard/login")
    page.fill("#key", "not-the-key")
    page.click("#login")
    assert "not valid" in page.text_content("body")
    page.fill("#key", KEY)
    page.click("#login")
    page.wait_for_selector("[data-card=n]")

    # A filter: channel app, Persian and Arabic excluded (English only).
    page.select_option("#f-channel", "app")
    page.select_option("#f-lang", "en")
    page.click("#apply")
    expected = httpx.get(
        f"{server}/v1/stats", params={"channel": "app", "lang": "en"}, headers=auth
    ).json()
    page.wait_for_function(
        "n => document.querySelector('[data-card=n]').dataset.value === String(n)",
        arg=expected["n"],
    )

    def card(name: str) -> float:
        return float(page.get_attribute(f"[data-card={name}]", "data-value"))

    assert card("n") == expected["n"]
    for label in ("positive", "neutral", "negative"):
        assert card(f"share_{label}") == pytest.approx(expected["shares"][label], abs=1e-12)
    assert card("net_sentiment") == pytest.approx(expected["net_sentiment"], abs=1e-12)
    assert card("nps") == pytest.approx(expected["scores"]["nps"]["nps"], abs=1e-9)
    assert expected["n"] < httpx.get(f"{server}/v1/stats", headers=auth).json()["n"]

    # Drill-down: click the largest topic and read its comments.
    topics = httpx.get(
        f"{server}/v1/stats/topics", params={"channel": "app", "lang": "en"}, headers=auth
    ).json()
    top = topics["ranked_by_volume"][0]
    page.click(f"#topics-volume [data-topic='{top}']")
    page.wait_for_function(
        "t => document.querySelector('#drill-title').textContent.includes(t)", arg=top
    )
    page.wait_for_selector("#comments li.comment")
    listed = httpx.get(
        f"{server}/v1/stats/items",
        params={"channel": "app", "lang": "en", "topic": top, "limit": 25},
        headers=auth,
    ).json()
    page.wait_for_function(
        "n => document.querySelectorAll('#comments li.comment').length === n",
        arg=len(listed["items"]),
    )
    ids = page.eval_on_selector_all("#comments li.comment", "els => els.map(e => e.dataset.id)")
    assert ids == [i["id"] for i in listed["items"]]
    assert page.eval_on_selector_all("#comments .text", "els => els.every(e => e.dir === 'auto')")
    count = page.text_content("#drill-count")
    assert str(listed["total"]) in count.replace(",", "")

    # Back to all items for the picture.
    page.select_option("#f-channel", "")
    page.select_option("#f-lang", "")
    page.click("#apply")
    page.wait_for_function(
        "n => document.querySelector('[data-card=n]').dataset.value === String(n)",
        arg=httpx.get(f"{server}/v1/stats", headers=auth).json()["n"],
    )
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("CXNLP_SCREENSHOT"):
        shutil.copy(shot, os.environ["CXNLP_SCREENSHOT"])


def test_the_dashboard_speaks_persian_arabic_and_english(browser_page, server, tmp_path):
    """The language switch: words and topic names from the taxonomy's translations, right to left
    for fa and ar, Jalali dates in Persian digits for fa; a screenshot per language."""
    from cxnlp.topics.taxonomy import load_taxonomy

    labels = {t.name: t.labels for t in load_taxonomy()}
    page = browser_page
    page.goto(f"{server}/dashboard/login")
    page.fill("#key", KEY)
    page.click("#login")
    page.wait_for_selector("[data-card=n]")
    for lang, direction in (("fa", "rtl"), ("ar", "rtl"), ("en", "ltr")):
        page.select_option("#ui-lang", lang)
        page.wait_for_function(
            "([l, d]) => document.documentElement.lang === l && document.documentElement.dir === d",
            arg=[lang, direction],
        )
        page.wait_for_selector("#topics-volume .topic-label")
        page.wait_for_function(
            "w => document.querySelector('[data-card=n] .label').textContent === w",
            arg={"fa": "حجم", "ar": "الحجم", "en": "Volume"}[lang],
        )
        shown = page.eval_on_selector_all(
            "#topics-volume [data-topic]",
            "els => els.map(e => [e.dataset.topic, e.querySelector('.topic-label').textContent])",
        )
        # Taxonomy topics by their label; a topic outside the taxonomy by its name.
        assert all(text == labels.get(name, {}).get(lang, name) for name, text in shown)
        assert any(name in labels for name, _ in shown)
        volume = page.text_content("[data-card=n] .value")
        periods = page.eval_on_selector_all(".period-label", "els => els.map(e => e.textContent)")
        if lang == "fa":
            assert set(volume) <= set("۰۱۲۳۴۵۶۷۸۹٬")  # Persian digits
            assert all("۱۴۰۵" in label for label in periods)  # Jalali year of 2026-09
        if lang == "en":
            assert volume.replace(",", "").isdigit()
            assert all("2026" in label for label in periods)
        shot = tmp_path / f"dashboard-{lang}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000


def test_a_comment_marks_each_topics_evidence(browser_page, server, tmp_path):
    """Each topic's evidence is marked in its comment, where its offsets put it: they count code
    points (as Python does), the browser's strings UTF-16 units, so emoji before a span must not
    shift the mark (the English comment quotes its delivery evidence twice: a mark found by its
    text would land on the quote). Markup in a comment stays text; Persian runs right to left
    through its mark; a mixed comment carries the mixed badge."""
    import json

    comments = {
        "ev-en": ("en", True, "😡 <b>late</b> “the courier came an hour late”, they said. "
                              "The food was great 🚚🙄 but the courier came an hour late",
                  [("food_quality", "positive", "The food was great"),
                   ("delivery", "negative", "the courier came an hour late")]),
        "ev-fa": ("fa", False, "غذا عالی بود 🙂 ولی پیک یک ساعت دیر رسید",
                  [("delivery", "negative", "پیک یک ساعت دیر رسید")]),
    }  # fmt: skip
    frame = classified_frame(len(comments), seed=3)
    for i, (item_id, (lang, mixed, text, topics)) in enumerate(comments.items()):
        evidence = []
        for name, polarity, quoted in topics:
            start = text.rindex(quoted)  # a code point offset, as the pipeline writes it
            span = {"start": start, "end": start + len(quoted), "text": quoted}
            evidence.append({"topic": name, "polarity": polarity, "score": 0.9, "evidence": span})
        frame.loc[i, ["id", "lang", "text", "error"]] = [item_id, lang, text, None]
        frame.loc[i, "topics"] = json.dumps(evidence, ensure_ascii=False)
        frame.loc[i, "mixed"] = mixed
    assert any(len(t[2].encode("utf-16-le")) // 2 > len(t[2]) for t in comments.values())
    with open_store(f"sqlite:///{tmp_path / 'feedback.sqlite'}") as store:
        ingest_frame(frame, dataset="evidence", store=store)

    page = browser_page
    page.goto(f"{server}/dashboard/login")
    page.fill("#key", KEY)
    page.click("#login")
    page.wait_for_selector("[data-card=n]")
    page.select_option("#f-dataset", "evidence")
    page.wait_for_function(
        "n => document.querySelectorAll('#comments li.comment').length === n", arg=len(comments)
    )
    for item_id, (lang, mixed, text, topics) in comments.items():
        li = f"#comments li[data-id='{item_id}']"
        # Each mark: its topics, its text, its class and the comment's text before it.
        marks = page.eval_on_selector_all(
            f"{li} mark",
            """els => els.map(e => {
                const before = document.createRange();
                before.setStart(e.closest('.text'), 0);
                before.setEndBefore(e);
                return [e.dataset.topics, e.textContent, e.className, before.toString()];
            })""",
        )
        assert sorted(marks) == sorted(
            [name, quoted, f"evidence {polarity}", text[: text.rindex(quoted)]]
            for name, polarity, quoted in topics
        )
        # The marks change no character of the comment, and no markup in it became an element.
        assert page.text_content(f"{li} .text") == text
        assert page.eval_on_selector(f"{li} .text", "e => e.querySelector('b') === null")
        rtl = page.eval_on_selector_all(
            f"{li} .text, {li} mark", "els => els.map(e => e.matches(':dir(rtl)'))"
        )
        assert set(rtl) == {lang == "fa"}
        assert page.eval_on_selector_all(f"{li} .badge.mixed", "els => els.length") == int(mixed)
