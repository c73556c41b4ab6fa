"""The topic-share check of benchmarks/topic_multidomain.py (issue 27's target: no topic's share
of the predicted mentions more than 10 points above its gold share), on a tiny fake set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from cxnlp.topics.taxonomy import TOPICS
from training.topic_eval import MAX_SHARE_EXCESS, topic_shares

ROOT = Path(__file__).resolve().parent.parent


def benchmark():
    spec = importlib.util.spec_from_file_location(
        "topic_multidomain", ROOT / "benchmarks" / "topic_multidomain.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mention(name: str) -> dict:
    return {"topic": name, "polarity": "negative", "score": 0.9}


def fake_set() -> tuple[pd.DataFrame, list[list[dict]]]:
    """Ten English and four Persian texts with gold topics, and a tagger's answers: in English
    it calls product_quality on six texts whose gold has none; in Persian it matches the gold."""
    gold_en = [["delivery"]] * 4 + [["price"]] * 4 + [["staff_behavior"]] * 2
    said_en = [["product_quality", "delivery"]] * 3 + [["product_quality"]] * 3 + [["price"]] * 2
    said_en += [[], []]
    gold_fa = [["delivery"], ["price"], ["delivery", "price"], []]
    rows = pd.DataFrame(
        {
            "lang": ["en"] * 10 + ["fa"] * 4,
            "topics": [[mention(t) for t in g] for g in gold_en + gold_fa],
            "domain": "fake",
        }
    )
    rows = rows.assign(partial=False, scope=[list(TOPICS)] * len(rows))
    predicted = [[mention(t) for t in s] for s in said_en + gold_fa]
    return rows, predicted


def test_shares_are_of_the_mentions_and_a_topic_far_above_its_gold_share_is_flagged():
    rows, predicted = fake_set()
    report = benchmark().score(rows, predicted)
    en = report["en"]["shares"]
    said = [t["topic"] for p in predicted[:10] for t in p]
    gold = [t["topic"] for g in rows["topics"][:10] for t in g]
    assert (en["predicted_mentions"], en["gold_mentions"]) == (len(said), len(gold))
    for name, t in en["topics"].items():
        assert t["predicted_share"] == pytest.approx(said.count(name) / len(said), abs=1e-4)
        assert t["gold_share"] == pytest.approx(gold.count(name) / len(gold), abs=1e-4)
        assert t["over"] == (t["predicted_share"] - t["gold_share"] > MAX_SHARE_EXCESS)
    assert en["over"] == ["product_quality"]
    assert next(iter(en["topics"])) == "product_quality"  # largest predicted share first
    assert report["fa"]["shares"]["over"] == []


def test_exactly_ten_points_above_is_within_the_target():
    shares = topic_shares(
        {"price": {"gold": 2, "predicted": 3}, "delivery": {"gold": 8, "predicted": 7}}
    )
    assert shares["topics"]["price"]["excess"] == pytest.approx(0.10)
    assert shares["over"] == []
    assert topic_shares({"price": {"gold": 2, "predicted": 3}}, max_excess=0.0)["over"] == []
    assert topic_shares({"a": {"gold": 1, "predicted": 3}, "b": {"gold": 1, "predicted": 0}})[
        "over"
    ] == ["a"]


def test_no_mentions_give_no_shares_and_no_flag():
    shares = topic_shares({"price": {"gold": 0, "predicted": 4}})
    assert shares["topics"]["price"]["gold_share"] is None
    assert shares["topics"]["price"]["over"] is False


def test_the_benchmark_prints_each_languages_shares_and_the_flagged_topics(capsys):
    rows, predicted = fake_set()
    module = benchmark()
    module.print_shares(module.score(rows, predicted))
    out = capsys.readouterr().out
    english = out.split("\nen: share of the mentions", 1)[1].split("\n\n", 1)[0]
    line = next(x for x in english.splitlines() if x.strip().startswith("product_quality"))
    assert sum(x.rstrip().endswith("!") for x in out.splitlines()) == 1
    assert line.rstrip().endswith("!")
    said = [t["topic"] for p in predicted[:10] for t in p]
    # Its share of the predicted mentions, none of the gold ones: that many points above.
    assert f"{100 * said.count('product_quality') / len(said):+.1f}" in line
    assert "en: product_quality" in out and "fa: none" in out
