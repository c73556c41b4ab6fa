"""The cases issue 14 quotes, on the shipped default model: the topic each names, with the
polarity of its own clause, evidence into the text, the mixed flag, and a long text read whole."""

from __future__ import annotations

from pathlib import Path

import pytest

import cxnlp


@pytest.fixture(scope="module")
def model(built: Path):
    return cxnlp.load("default")


def found(prediction) -> dict[str, str]:
    return {t["topic"]: t["polarity"] for t in prediction.topics}


@pytest.mark.slow
def test_shipped_default_reads_the_issues_cases(model) -> None:
    cases = {
        # text: (topics that must be there with their polarity, topics that must not)
        "غذا سرد بود و پیک یک ساعت دیر رسید": (
            {"delivery": "negative", "wait_time": "negative", "product_quality": "negative"},
            set(),
        ),
        "The food was great but the courier came an hour late": (
            {"product_quality": "positive", "delivery": "negative", "wait_time": "negative"},
            {"staff_behavior"},
        ),
        "My refund still hasn't arrived after 3 weeks": ({"refund_return": "negative"}, set()),
        "خدمة العملاء سيئة جدا": ({"customer_support": "negative"}, {"staff_behavior"}),
        "التطبيق لا يعمل": ({"app_website": "negative"}, set()),
        "2.5 hour delay, misplaced bag": (
            {"wait_time": "negative", "delivery": "negative"},
            {"product_quality"},
        ),
        "Mad love http://t.co/x": ({}, {"product_quality", "staff_behavior"}),
    }
    predictions = model.predict(list(cases))
    for (text, (wanted, unwanted)), prediction in zip(cases.items(), predictions, strict=True):
        topics = found(prediction)
        for topic, polarity in wanted.items():
            assert topics.get(topic) == polarity, f"{text!r}: {prediction.topics}"
        assert not unwanted & set(topics), f"{text!r}: {prediction.topics}"
        for t in prediction.topics:
            evidence = t["evidence"]
            assert text[evidence["start"] : evidence["end"]] == evidence["text"]
    assert predictions[2].mixed is False
    assert predictions[-1].topics == []


@pytest.mark.slow
def test_shipped_default_flags_clear_praise_and_complaint_in_one_text_as_mixed(model) -> None:
    texts = [
        "The food was absolutely delicious! But the driver was rude and terrible, awful service.",
        "Great food, fast delivery, friendly staff.",
    ]
    assert [p.mixed for p in model.predict(texts)] == [True, False]


@pytest.mark.slow
def test_shipped_default_finds_a_late_delivery_at_the_end_of_a_long_text(model) -> None:
    filler = "I have been a customer of this shop for many years and I order every month. " * 60
    text = filler + "This time the courier was three hours late and the order arrived cold."
    [prediction] = model.predict([text])
    topics = {t["topic"]: t for t in prediction.topics}
    assert topics["delivery"]["polarity"] == "negative"
    evidence = topics["delivery"]["evidence"]
    assert evidence["start"] >= len(filler) - 1
    assert text[evidence["start"] : evidence["end"]] == evidence["text"]


@pytest.mark.slow
def test_shipped_default_reads_plain_short_complaints_as_its_own_topics_do(model) -> None:
    """Issue 26's cases: the document's sentiment agrees with its own topics and clauses."""
    late, prices, not_bad, mixed = model.predict(
        [
            "پیک دیر رسید",
            "قیمت‌ها خیلی گرون شده",
            "Not bad at all",
            "غذا عالی بود ولی پیک یک ساعت دیر رسید",
        ]
    )
    assert late.sentiment != "positive", late
    assert found(late).get("delivery") == "negative"
    assert prices.sentiment != "positive", prices
    assert found(prices).get("price") == "negative"
    assert not_bad.sentiment != "negative", not_bad
    assert mixed.mixed is True


@pytest.mark.slow
def test_the_readmes_topic_examples_are_what_the_shipped_model_says(model) -> None:
    """The README's Topics and Clauses sections print one text's topics (in score order) and
    their evidence: both comments are the shipped model's answer."""
    import ast
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    text = "The food was great but the courier came an hour late"
    prediction = model.predict([text])[0]
    topics = re.search(r"# (\w+ \w+(?:, \w+ \w+)*) \(in score order\)", readme).group(1)
    assert topics == ", ".join(f"{t['topic']} {t['polarity']}" for t in prediction.topics)
    evidence = re.search(r"for t in p\.topics\]\n# (\[.*?\])\n```", readme, flags=re.S).group(1)
    listed = ast.literal_eval(evidence.replace("\n#", ""))
    assert listed == [(t["topic"], t["polarity"], t["evidence"]["text"]) for t in prediction.topics]
    assert prediction.mixed is True
