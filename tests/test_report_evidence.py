"""The report shows how each text was read: `mixed` (overall and per language) and each topic's
evidence marked inside the quoted texts, escaped, in right-to-left text and after characters
outside the Basic Multilingual Plane (an emoji is one code point in Python, two UTF-16 units in
a browser)."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from cxnlp.labels import SENTIMENTS
from cxnlp.report.evidence import evidence_spans, locate_evidence
from cxnlp.report.html import render_html
from cxnlp.report.summary import summarize
from cxnlp.report.topics import EXAMPLE_CHARS


def topic(text: str, name: str, polarity: str, quoted: str, after: int = 0) -> dict:
    """A topic whose evidence is `quoted`, found in `text` (from `after`) by Python: code points."""
    start = text.index(quoted, after)
    evidence = {"start": start, "end": start + len(quoted), "text": quoted}
    return {"topic": name, "polarity": polarity, "score": 0.9, "evidence": evidence}


def row(text: str, sentiment: str, lang: str, topics: list[dict], mixed: object) -> dict:
    p = {f"p_{s}": 0.8 if s == sentiment else 0.1 for s in SENTIMENTS}
    return {"text": text, "sentiment": sentiment, **p, "lang": lang, "error": None,
            "topics": json.dumps(topics, ensure_ascii=False), "mixed": mixed}  # fmt: skip


class Marks(HTMLParser):
    """Every <mark> of a page: its attributes and text; and whether a mark held another."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[dict] = []
        self.depth = 0
        self.nested = False

    def handle_starttag(self, tag, attrs):
        if tag == "mark":
            self.nested |= self.depth > 0
            self.depth += 1
            self.marks.append({**dict(attrs), "text": ""})

    def handle_endtag(self, tag):
        if tag == "mark":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.marks[-1]["text"] += data


def section(page: str, heading: str) -> str:
    """The page after its <h3> `heading` up to the next <h2> or <h3>."""
    return re.split("<h[23]", page.split(f"<h3>{heading}</h3>", 1)[1], maxsplit=1)[0]


def marks_of(page: str) -> Marks:
    parser = Marks()
    parser.feed(page)
    return parser


EN = "😡😡 <b>ouch</b> The food was great but the courier came an hour late"
FA = "غذا عالی بود 🙂 ولی پیک یک ساعت دیر رسید"
AR = "الخدمة ممتازة 👍 والتوصيل سريع"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            row(EN, "negative", "en", [
                topic(EN, "food_quality", "positive", "The food was great"),
                topic(EN, "delivery", "negative", "the courier came an hour late"),
            ], True),
            row(FA, "negative", "fa", [topic(FA, "delivery", "negative", "پیک یک ساعت دیر رسید")], "False"),
            row(AR, "positive", "ar", [topic(AR, "delivery", "positive", "والتوصيل سريع")], ""),
        ]
    )  # fmt: skip


def test_mixed_is_counted_among_the_texts_read_by_clause_overall_and_per_language(frame):
    summary = summarize(frame)
    flags = {"True": True, "False": False, "": None}
    read = [flags.get(str(v), v) for v in frame["mixed"]]
    assert summary["mixed"]["read"] == sum(v is not None for v in read)
    assert summary["mixed"]["mixed"] == sum(v is True for v in read)
    assert summary["mixed"]["share"] == pytest.approx(
        summary["mixed"]["mixed"] / summary["mixed"]["read"]
    )
    assert summary["mixed"]["by_lang"]["en"]["mixed"] == 1
    assert (
        summary["mixed"]["by_lang"]["fa"]["read"],
        summary["mixed"]["by_lang"]["fa"]["mixed"],
    ) == (1, 0)
    assert summary["mixed"]["by_lang"]["ar"]["read"] == 0
    page = render_html(summary)
    tile = page.split('id="mixed-tile"><b>', 1)[1].split("</b>", 1)[0]
    assert tile == f"{100 * summary['mixed']['share']:.1f}%"
    assert f"{summary['mixed']['mixed']} of {summary['mixed']['read']} texts" in page
    # The same table through CSV: the flags come back as strings and read the same.
    assert (
        summarize(pd.read_csv(io.StringIO(frame.to_csv(index=False))))["mixed"]
        == (summary["mixed"])
    )


def test_a_table_without_mixed_reports_no_mixed(frame):
    summary = summarize(frame.drop(columns=["mixed"]))
    assert "mixed" not in summary
    assert 'id="mixed' not in render_html(summary)


def test_each_topics_evidence_is_marked_exactly_in_the_quoted_texts(frame):
    summary = summarize(frame)
    delivery = next(i for i in summary["topics"]["items"] if i["topic"] == "delivery")
    # Its negative examples, most negative first; each with the delivery evidence of that text.
    assert len(delivery["examples"]) == len(delivery["example_evidence"]) == 2
    for quote, spans in zip(delivery["examples"], delivery["example_evidence"], strict=True):
        (span,) = spans
        source = frame[frame["text"] == quote].iloc[0]
        (wanted,) = [t for t in json.loads(source["topics"]) if t["topic"] == "delivery"]
        assert quote[span["start"] : span["end"]] == wanted["evidence"]["text"]
        assert (span["topic"], span["polarity"]) == ("delivery", "negative")

    page = render_html(summary)
    parsed = marks_of(page)
    assert not parsed.nested
    evidence = {
        (t["topic"], t["evidence"]["text"], t["polarity"])
        for cell in frame.loc[frame["sentiment"] == "negative", "topics"]
        for t in json.loads(cell)
    }
    shown = {(m["data-topics"], m["text"], m["class"]) for m in parsed.marks}
    # Every evidence of a negative text is marked (topic examples and most negative texts), and
    # nothing else is: the positive Arabic text is no negative example.
    assert shown == evidence
    # User text is escaped, inside and outside the marks.
    assert "<b>ouch</b>" not in page and "&lt;b&gt;ouch&lt;/b&gt;" in page
    # The mixed text is tagged among the most negative texts; the Persian one is not.
    quotes = section(page, "Most negative texts").split("</blockquote>")
    assert any("😡😡" in q and '<span class="tag">mixed</span>' in q for q in quotes)
    assert not any("پیک" in q and 'class="tag"' in q for q in quotes)


def test_evidence_cut_by_the_quote_is_marked_as_far_as_the_quote_goes():
    text = "x" * (EXAMPLE_CHARS - 10) + " the courier came an hour late, and cold"
    frame = pd.DataFrame(
        [row(text, "negative", "en", [topic(text, "delivery", "negative", "the courier came an hour late")], False)]
    )  # fmt: skip
    summary = summarize(frame)
    (quote,) = summary["topics"]["items"][0]["examples"]
    assert len(quote) == EXAMPLE_CHARS
    parsed = marks_of(section(render_html(summary), "Negative examples for the largest topics"))
    (mark,) = parsed.marks
    assert mark["text"] == quote[text.index("the courier") :]
    assert 0 < len(mark["text"]) < len("the courier came an hour late")


def test_spans_whose_offsets_moved_are_found_by_their_text_and_missing_ones_left_out():
    text = "🙂 the app crashes at checkout"
    moved = {"start": 0, "end": 10, "text": "app crashes"}
    assert locate_evidence(text, moved) == (text.index("app"), text.index("app") + 11)
    assert locate_evidence(text, {"start": 0, "end": 4, "text": "refund"}) is None
    assert locate_evidence(text, {"start": 2, "end": 900}) == (2, len(text))  # no text to check
    assert locate_evidence(text, {"start": "2", "end": 5}) is None
    assert locate_evidence(text, None) is None
    topics = [
        {"topic": "app_website", "polarity": "negative", "evidence": moved},
        {"topic": "checkout", "polarity": "negative"},  # no evidence
    ]
    assert [s["topic"] for s in evidence_spans(text, topics)] == ["app_website"]


def test_overlapping_evidence_is_cut_so_no_mark_holds_another():
    text = "the courier was rude and late"
    topics = [
        topic(text, "delivery", "negative", text),
        topic(text, "staff_behavior", "negative", "rude"),
        topic(text, "wait_time", "neutral", "late"),
    ]
    summary = summarize(pd.DataFrame([row(text, "negative", "en", topics, True)]))
    (example,) = summary["negative_examples"]
    assert len(example["evidence"]) == 3
    parsed = marks_of(section(render_html(summary), "Most negative texts"))
    assert not parsed.nested
    # The marks, in order, spell the whole text; where spans overlap a piece names every topic
    # (and its class says whether their polarities agree).
    assert "".join(m["text"] for m in parsed.marks) == text
    named = [(m["text"], m["data-topics"], m["class"]) for m in parsed.marks]
    assert ("rude", "delivery staff_behavior", "negative") in named
    assert ("late", "delivery wait_time", "mixed") in named
    assert all(m["data-topics"].startswith("delivery") for m in parsed.marks)
