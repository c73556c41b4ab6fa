"""Regression tests for issue 15: text that used to make normalize / detect_language raise."""

from __future__ import annotations

import pytest

import cxnlp


@pytest.mark.parametrize("text", ["ok \ud800", "\udfff", "خیلی خوب \ud83d بود", "\ud800" * 10])
def test_lone_surrogates_never_raise(text: str) -> None:
    assert cxnlp.detect_language(text) in ("fa", "ar", "en", "other")
    for lang in (None, "fa", "ar", "en", "other"):
        out = cxnlp.normalize(text, lang)
        assert "\ud800" not in out and "\udfff" not in out and "\ud83d" not in out
        out.encode("utf-8")


def test_lone_surrogate_is_dropped_not_the_text() -> None:
    assert cxnlp.normalize("ok \ud800 thanks", "en") == "ok thanks"
    assert cxnlp.detect_language("\ud800 the delivery was late and the food cold") == "en"


@pytest.mark.parametrize(
    "text",
    [
        "cxnlpkeepaab S21 خیلی خوب بود",
        "cxnlpkeepaab cxnlpkeepqaab گوشی A52 عالیه",
        "cxnlpkeepzyz 5% تخفیف",
    ],
)
def test_keep_placeholder_cannot_collide_with_user_text(text: str) -> None:
    out = cxnlp.normalize(text, "fa")
    for word in text.split():
        if word.isascii():
            assert word in out  # the user's own marker-like words and model names come back


def test_many_kept_spans_come_back() -> None:
    text = " ".join(f"X{i}" for i in range(30_000)) + " خیلی خوب"
    assert cxnlp.normalize(text, "fa").split()[:3] == ["X0", "X1", "X2"]
    assert "X29999" in cxnlp.normalize(text, "fa")
