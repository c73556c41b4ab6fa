"""Text normalisation for Persian, Arabic and English customer feedback.

:func:`normalize` runs common steps for every text and one language-specific step chosen from
:data:`_LANG_STEPS` (detected with :func:`cxnlp.text.langid.detect_language` when ``lang`` is None):

Common, in this order:
  * Unicode NFKC (full-width forms, Arabic presentation forms and ligatures, odd spaces), except
    for the emoji that NFKC would turn into letters (‼ ⁉ ™ ℹ Ⓜ 🈁 ...). HTML entities from
    scraped tweets (``&amp;``) are unescaped.
  * Control and invisible format characters are dropped (BOM, bidi marks, ZWSP, soft hyphen), except
    ZWNJ (U+200C, meaningful in Persian) and ZWJ inside emoji sequences (👨‍👩‍👧).
  * E-mails, URLs, @mentions and phone numbers become :data:`EMAIL_TOKEN`, :data:`URL_TOKEN`,
    :data:`USER_TOKEN` and :data:`PHONE_TOKEN`. A phone number is 9-15 digits starting with ``+``,
    ``00`` or ``0`` (Iranian and Arab numbers) or in the North-American ``(555) 123-4567`` shape;
    prices, dates, card numbers and short order numbers are left alone.
  * Persian and Arabic-Indic digits, ``٫``, ``٬`` and ``٪`` become ASCII (``۱۲٫۵٪`` -> ``12.5%``), so
    numbers read the same in every language; curly quotes become ASCII quotes.
  * Letters repeated 3+ times are cut to 2 (``عاااالی`` -> ``عاالی``, ``sooo`` -> ``soo``): the
    doubled letter keeps the emphasis cue. Upper-case Roman-numeral letters are left alone
    (``III``). Runs of 4+ identical symbols or emoji are cut to 3 (``!!!!!`` -> ``!!!``).
  * Whitespace: tabs and spaces collapsed, CR/CRLF -> LF, blank lines removed, ends stripped.

Per language:
  * ``fa``: hazm's ``Normalizer`` (ي/ك -> ی/ک, diacritics, ZWNJ and affix spacing such as
    ``می روم`` -> ``می‌روم`` and ``کتاب ها`` -> ``کتاب‌ها``, Arabic ligature words). Its
    ``persian_numbers`` (ASCII -> Persian digits), ``persian_style`` (``2.5`` -> ``2٫5``, ``"`` ->
    ``«»``) and dictionary-based ``decrease_repeated_chars`` (``خیلیییی`` -> ``خیلی``, losing the
    emphasis) are off, so numbers and elongation are treated as in the other languages.
  * ``ar``: tashkeel and tatweel removed; ``أ إ آ ٱ`` -> ``ا``; ``ى`` -> ``ي`` (Egyptian ``فى`` and
    MSA ``في`` become one word; the price is that ``على`` and the name ``علي`` merge); ``ة`` kept
    (mapping it to ``ه`` would merge it with the pronoun suffix); Persian ``ی ک`` -> ``ي ك``; ZWNJ
    dropped.
  * ``en``: case kept (the XLM-R tokenizer is case-sensitive and capitals carry emphasis); ZWNJ
    dropped.
  * ``other``: common steps only.

The function is idempotent: ``normalize(normalize(t, lang), lang) == normalize(t, lang)``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from cxnlp.labels import LANGS
from cxnlp.text.clean import (
    EMAIL_TOKEN,
    PHONE_TOKEN,
    URL_TOKEN,
    USER_TOKEN,
    clean_unicode,
    collapse_repeated_letters,
    replace_contacts,
)
from cxnlp.text.langid import OTHER, detect_language
from cxnlp.text.script import ARABIC_TEXT_MARKS_RE, ARABIC_TEXT_TABLE

logger = logging.getLogger(__name__)

__all__ = ["EMAIL_TOKEN", "PHONE_TOKEN", "URL_TOKEN", "USER_TOKEN", "normalize"]

_REPEATED_SYMBOL_RE = re.compile(r"([^\w\s\u200c\u200d])\1{3,}")
_ZWNJ_RUN_RE = re.compile("\u200c{2,}")
_ZWNJ_EDGE_RE = re.compile(r"\u200c+(?=\s|$)|(?:(?<=\s)|^)\u200c+")
_SPACES_RE = re.compile(r"[^\S\n]+")
_NEWLINES_RE = re.compile(r" ?\n[\s]*")


# Latin model names ("S21", "128GB") and percentages, which hazm's tokenizer would split.
_LATIN_ALNUM_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])[A-Za-z0-9]+|[0-9]+(?:[.,][0-9]+)*%)"
)
# A kept span is swapped for _KEEP_MARK plus a 3-letter index while hazm runs. User text can hold
# the mark itself ("cxnlpkeepaab"): the mark is then lengthened until the text does not contain
# it, so a mark in the text is always one of ours. Letters only, which hazm leaves alone.
_KEEP_MARK = "cxnlpkeep"

# hazm options: see the module docstring. correct_spacing needs seperate_mi=True in hazm 0.10.0
# (it reads the verb list that only seperate_mi loads).
HAZM_OPTIONS: dict[str, bool] = {
    "correct_spacing": True,
    "remove_diacritics": True,
    "remove_specials_chars": True,
    "decrease_repeated_chars": False,
    "persian_style": False,
    "persian_numbers": False,
    "unicodes_replacement": True,
    "seperate_mi": True,
}
_HAZM_MAX_PASSES = 4
_hazm_cache: tuple[Any, dict[int, str]] | None = None
_hazm_lock = threading.Lock()


def _hazm_normalizer() -> tuple[Any, dict[int, str]]:
    """Build hazm's Normalizer and its letter table once (about 4 s with the import of hazm)."""
    global _hazm_cache
    if _hazm_cache is None:
        with _hazm_lock:
            if _hazm_cache is None:
                from hazm import Normalizer  # imported here: `import hazm` alone takes ~2.5 s

                hazm = Normalizer(**HAZM_OPTIONS)
                table = str.maketrans(
                    dict(zip(hazm.translation_src, hazm.translation_dst, strict=True))
                )
                _hazm_cache = (hazm, table)
                logger.debug("built hazm Normalizer with %s", HAZM_OPTIONS)
    return _hazm_cache


def _run_hazm(text: str) -> str:
    """hazm's ``Normalizer.normalize`` with HAZM_OPTIONS, run until nothing changes.

    The steps are called one by one, in hazm's order, so that the letter table is built once
    (hazm 0.10.0 rebuilds it on every call: a quarter of the time). One pass can make a new
    joinable pair ("نیمه حرفه ای" -> "نیمه حرفه‌ای" -> "نیمه‌حرفه‌ای"), so the spacing steps
    repeat until stable, which keeps normalize() idempotent; the letter steps are idempotent.
    """
    hazm, table = _hazm_normalizer()
    for _ in range(_HAZM_MAX_PASSES):
        text = hazm.remove_diacritics(text.translate(table))
        new = hazm.correct_spacing(text)
        new = hazm.seperate_mi(hazm.remove_specials_chars(hazm.unicodes_replacement(new)))
        if new == text:
            break
        text = new
    return text


def _common_pre(text: str) -> str:
    return replace_contacts(clean_unicode(text))


def _common_post(text: str) -> str:
    text = collapse_repeated_letters(text)
    text = _REPEATED_SYMBOL_RE.sub(r"\1\1\1", text)
    if "\u200c" in text:
        text = _ZWNJ_EDGE_RE.sub("", _ZWNJ_RUN_RE.sub("\u200c", text))
    text = _SPACES_RE.sub(" ", text)
    return _NEWLINES_RE.sub("\n", text).strip()


def _persian(text: str) -> str:
    # hazm's tokenizer splits digits from anything else ("S21" -> "S 21", "5%" -> "5 %"), which
    # is right for Persian ("۵گیگ" -> "5 گیگ") but not for Latin model names and percentages:
    # those are swapped out and back.
    kept: list[str] = []
    text = _common_post(text)
    mark = _KEEP_MARK
    while mark in text:
        mark += "q"
    width = 3
    while 26**width < len(text):  # more than enough codes for every span
        width += 1

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group())
        return mark + _mark_code(len(kept) - 1, width)

    text = _LATIN_ALNUM_RE.sub(keep, text)
    # hazm's spacing works line by line and joins tokens with single spaces; it needs tidy input.
    text = _run_hazm(text)
    if kept:
        mark_re = re.compile(re.escape(mark) + f"([a-z]{{{width}}})")
        text = mark_re.sub(lambda m: _restore(kept, m), text)
    return text


def _mark_code(n: int, width: int) -> str:
    """Index ``n`` as ``width`` letters a-z (base 26, most significant first)."""
    return "".join(chr(97 + (n // 26**k) % 26) for k in range(width - 1, -1, -1))


def _restore(kept: list[str], match: re.Match[str]) -> str:
    n = 0
    for ch in match.group(1):
        n = n * 26 + ord(ch) - 97
    # Out of range only if hazm glued letters to a mark; keep the text rather than fail.
    return kept[n] if n < len(kept) else match.group()


def _arabic(text: str) -> str:
    return ARABIC_TEXT_MARKS_RE.sub("", text).translate(ARABIC_TEXT_TABLE)


def _english(text: str) -> str:
    return text.replace("\u200c", "")


_LANG_STEPS: dict[str, Callable[[str], str]] = {"fa": _persian, "ar": _arabic, "en": _english}
"""The language-specific step for each supported language; other languages get none."""


def normalize(text: str, lang: str | None = None) -> str:
    """Normalise one text for training and inference.

    Args:
        text: the raw text.
        lang: ``"fa"``, ``"ar"``, ``"en"``, ``"other"`` (common steps only), or None to detect it
            with :func:`cxnlp.text.langid.detect_language`.

    Returns:
        The normalised text (see the module docstring for every step).

    Raises:
        ValueError: ``lang`` is not one of the keys above.

    >>> normalize("كيفيت عالی بود 😍😍😍😍 ولی پيک دير اومد https://t.co/x1", "fa")
    'کیفیت عالی بود 😍😍😍 ولی پیک دیر اومد URL'
    >>> normalize("الأكل رااااائع جدًا في المطعم 👍", "ar")
    'الاكل راائع جدا في المطعم 👍'
    >>> normalize("@JetBlue sooooo late!!!!!  call me at (555) 123-4567")
    '@user soo late!!! call me at PHONE'
    """
    if lang is not None and lang not in _LANG_STEPS and lang != OTHER:
        keys = ", ".join(repr(k) for k in (*LANGS, OTHER))
        raise ValueError(f"unsupported lang {lang!r}; expected one of {keys} or None to detect it")
    if not isinstance(text, str):
        raise TypeError(f"normalize expects a str, got {type(text).__name__}")
    if lang is None:
        lang = detect_language(text)
    text = _common_pre(text)
    step = _LANG_STEPS.get(lang)
    if step is not None:
        text = step(text)
    text = _common_post(text)
    # The language step can free a contact the first replacement could not see: hazm splits
    # digits from letters ("9@j" -> "9 @j"), Arabic and English drop ZWNJ ("@\u200c0" -> "@0").
    # Replacing again here keeps normalize idempotent.
    again = replace_contacts(text)
    return text if again == text else _common_post(again)
