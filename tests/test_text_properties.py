"""Property tests: normalize and detect_language on arbitrary Unicode never raise, and normalize is
idempotent for a fixed language (hypothesis; a fixed example budget keeps them fast)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import cxnlp
from cxnlp.labels import LANGS as SUPPORTED_LANGS
from cxnlp.text.langid import OTHER

LANGS = (*SUPPORTED_LANGS, OTHER)
# Arbitrary code points (lone surrogates included) mixed with the characters the normaliser's
# rules are about, so that the rules meet each other often.
SPECIAL = list("@._-+/:%&#;()0123456789aAzZ ۱٫٬٪\u200c\u200d\ufe0f\n\r\t") + [
    "www.", "http://", "cxnlpkeep", "S21", "&amp;", "ي", "ك", "ی", "ک", "ة", "ال", "می ", " ها",
    "😀", "‼", "ﻻ", "Ⅲ", "ـ", "\u064b", "\ud800", "\udfff",
]  # fmt: skip
TEXT = st.lists(st.one_of(st.characters(codec=None), st.sampled_from(SPECIAL)), max_size=40).map(
    "".join
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(text=TEXT)
@example(text="ok \ud800")
@example(text="\udfff")
def test_detect_language_never_raises(text: str) -> None:
    assert cxnlp.detect_language(text) in LANGS


@pytest.mark.parametrize("lang", LANGS)
@FAST
@given(text=TEXT)
@example(text="9@j")
@example(text="a@b.coa@b.co")
@example(text="cxnlpkeepaab S21 خیلی خوب بود")
@example(text="ok \ud800")
def test_normalize_never_raises_and_is_idempotent(lang: str, text: str) -> None:
    once = cxnlp.normalize(text, lang)
    assert isinstance(once, str)
    once.encode("utf-8")  # no lone surrogate survives
    assert cxnlp.normalize(once, lang) == once


@FAST
@given(text=TEXT)
def test_normalize_with_detection_never_raises(text: str) -> None:
    assert isinstance(cxnlp.normalize(text), str)
