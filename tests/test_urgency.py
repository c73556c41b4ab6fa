"""Urgency cues per language: churn, complaints, safety, fraud and callback requests, with
evidence offsets into the original text (ZWNJ, Arabic letter variants, harakat)."""

from __future__ import annotations

import pytest

from cxnlp.text.urgency import fold_with_offsets, is_urgent, score_urgency


@pytest.mark.parametrize(
    ("lang", "text", "cue"),
    [
        ("en", "Cancel my subscription today, I am done with you", "churn"),
        ("en", "I got food poisoning here at the buffet.", "safety"),
        ("en", "Please have someone call me back about my refund", "callback"),
        ("en", "I will be contacting my lawyer about this charge", "complaint"),
        ("fa", "حسابمو میبندم", "churn"),
        ("fa", "حسابمو می‌بندم", "churn"),
        ("fa", "حسابمو می بندم", "churn"),
        ("fa", "دیگه از این فروشگاه خرید نمیکنم", "churn"),
        ("fa", "پول از حسابم کم شد ولی شارژ نشد", "fraud"),
        ("fa", "پشتیبانی هیچ جوابی نمیده، کسی جوابگو نیست", "callback"),
        ("ar", "سألغي اشتراكي", "churn"),
        ("ar", "سَأُلْغِي اشتراكي", "churn"),
        ("ar", "أول وآخر مرة", "churn"),
        ("ar", "تسممت من الأكل", "safety"),
        ("ar", "ولا احد يرد على الهاتف", "callback"),
    ],
)
def test_urgency_cue_found_with_original_offsets(lang, text, cue):
    result = score_urgency(text, lang, {})
    assert is_urgent(result), result
    hits = [e for e in result["evidence"] if e["cue"] == cue]
    assert hits, result["evidence"]
    for e in result["evidence"]:
        assert text[e["start"] : e["end"]] == e["text"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "I can not wait to go there again"),
        ("en", "Would definitely order again, lovely staff"),
        ("en", "My flight was Cancelled Flightled, rebooked fine"),
        ("fa", "غذا سرد بود و دیر رسید"),
        ("fa", "برنامه خوبیه فقط لطفا سرعتش رو بیشتر کنید"),
        ("ar", "الموظف ودود جدا"),
        ("ar", "اكيد ما بتكون اول و اخر مرة"),
        ("ar", "الطعام في منتهى الروعة"),
    ],
)
def test_urgency_not_raised_without_a_cue(lang, text):
    result = score_urgency(text, lang, {"negative": 0.99})
    assert not is_urgent(result), result
    assert result["score"] <= 0.4


def test_negative_probability_raises_score_but_a_cue_is_needed_for_high():
    calm = score_urgency("cold food, slow courier", "en", {"negative": 0.0})
    angry = score_urgency("cold food, slow courier", "en", {"negative": 1.0})
    assert calm["score"] < angry["score"] and angry["level"] == "low"
    cue_pos = score_urgency("I will cancel my account", "en", {"negative": 0.05})
    cue_neg = score_urgency("I will cancel my account", "en", {"negative": 0.95})
    assert cue_pos["score"] < cue_neg["score"] and cue_neg["level"] == "high"


def test_fold_maps_every_character_back():
    text = "مـــيــ‌بندم  الْكِتَاب ي ك"
    folded, where = fold_with_offsets(text)
    assert len(folded) == len(where) and where == sorted(where)
    assert "\u200c" not in folded and "ـ" not in folded


def test_blank_text_has_no_urgency():
    assert score_urgency("   ", "en", {"negative": 1.0}) == {
        "score": 0.0,
        "level": "none",
        "evidence": [],
    }
