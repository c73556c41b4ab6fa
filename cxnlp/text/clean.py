"""Text clean-up shared by :mod:`cxnlp.text.normalize` and :mod:`cxnlp.text.langid`.

Both modules must see text the same way: :func:`cxnlp.text.langid.detect_language` reads a text through
these same steps, so normalising a text does not change its detected language, and
``normalize(normalize(t))`` routes to the same language step as ``normalize(t)``.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Placeholders: ASCII, language-neutral, and cheap for the XLM-R SentencePiece vocabulary ("URL"
# is one piece, the others two). "@user" is the TweetEval / XLM-T convention already present in
# part of the training data; "URL" is what the SemEval Arabic tweets already contain.
URL_TOKEN = "URL"
USER_TOKEN = "@user"
EMAIL_TOKEN = "EMAIL"
PHONE_TOKEN = "PHONE"

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_URL_RE = re.compile(
    rf"(?<![A-Za-z])(?:(?:https?|ftp)://|www\.){_URL_CHARS}*"
    rf"|\b(?:[A-Za-z0-9-]+\.)+[A-Za-z]{{2,6}}/{_URL_CHARS}*"
)
_URL_TRAILING = ".,;:!?'()[]"  # punctuation after a URL belongs to the sentence
# A run of handles glued together ("@a@b") is one mention; a handle glued to a Persian or Arabic
# word ("هولاء@NBA") is still a mention.
_MENTION_RE = re.compile(r"(?<![A-Za-z0-9_.@])(?:@[A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)+")
# 9-15 digits starting with +, 00 or 0 (Iranian and Arab numbers), or 555-123-4567 / (555) 123-4567;
# prices, dates, card numbers (16 digits) and order numbers are left alone.
_PHONE_RE = re.compile(
    r"(?<![A-Za-z0-9+])(?:(?:\+|00)\d[\d ().-]{7,18}\d|0\d[\d ().-]{6,16}\d"
    r"|(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4})(?![A-Za-z0-9])"
)
_PHONE_MIN_DIGITS, _PHONE_MAX_DIGITS = 9, 15

# Emoji that NFKC would turn into letters or punctuation: ‼ ⁉ ™ ℹ Ⓜ ㊗ ㊙ and enclosed symbols.
_NFKC_KEEP_RE = re.compile("([\u203c\u2049\u2122\u2139\u24c2\u3297\u3299\U0001f100-\U0001f2ff]+)")
_MAX_UNESCAPES = 8
_HTML_ENTITY_RE = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);")
# Cc and Cf characters except \n, \t, ZWNJ (U+200C) and ZWJ (U+200D, handled below), and lone
# surrogates (Cs: half of a UTF-16 pair, from JSON "\\ud800" escapes; no character, and no UTF-8
# encoder or C library accepts them).
_INVISIBLE_RE = re.compile(
    "[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
_EMOJI_CLASS = "\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff"
_STRAY_ZWJ_RE = re.compile(f"\u200d(?![{_EMOJI_CLASS}])|(?<![{_EMOJI_CLASS}])\u200d")
# Persian and Arabic-Indic digits, Arabic decimal / thousands / percent signs, curly quotes.
_DIGITS_QUOTES = str.maketrans(
    "۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩٫٬٪‘’‚‛“”„‟",
    "01234567890123456789.,%''''\"\"\"\"",
)
# A letter 3+ times becomes 2 ("sooo" -> "soo"); Roman-numeral capitals are left alone ("III").
_REPEATED_LETTER_RE = re.compile(r"(?![IVXLCDM])([^\W\d_])\1{2,}")


def clean_unicode(text: str) -> str:
    """HTML entities, NFKC (sparing emoji), invisible characters, digits and quotes to ASCII."""
    if "&" in text:
        # Scraped tweets can be escaped several times over ("&amp;amp;amp;gt;").
        for _ in range(_MAX_UNESCAPES):
            unescaped = html.unescape(text) if _HTML_ENTITY_RE.search(text) else text
            if unescaped == text:
                break
            text = unescaped
    if not text.isascii():
        if not unicodedata.is_normalized("NFKC", text):
            parts = _NFKC_KEEP_RE.split(text)  # odd positions are the emoji to keep
            text = "".join(
                p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts)
            )
        text = _INVISIBLE_RE.sub("", text)
        if "\u200d" in text:
            text = _STRAY_ZWJ_RE.sub("", text)
        text = text.translate(_DIGITS_QUOTES)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _spaced(match: re.Match[str], token: str, tail: str = "") -> str:
    """``token`` in place of the match, with a space only where it would touch a word."""
    text, start, end = match.string, match.start(), match.end()
    before = " " if start > 0 and _joins(text[start - 1]) else ""
    after = " " if end < len(text) and _joins(text[end]) else ""
    return f"{before}{token}{tail}{after}"


def _joins(ch: str) -> bool:
    # "@" too: "a@b.coa@b.co" is an e-mail glued to "@b.co"; "EMAIL@b.co" would read as an e-mail
    # on a second pass, "EMAIL @b.co" reads as a mention on this one (normalize is idempotent).
    return ch.isalnum() or ch in "_@"


def _url(match: re.Match[str]) -> str:
    url = match.group()
    stripped = url.rstrip(_URL_TRAILING)
    return _spaced(match, URL_TOKEN, url[len(stripped) :])


def _phone(match: re.Match[str]) -> str:
    n_digits = sum(ch.isdigit() for ch in match.group())
    if _PHONE_MIN_DIGITS <= n_digits <= _PHONE_MAX_DIGITS:
        return _spaced(match, PHONE_TOKEN)
    return match.group()


def replace_contacts(text: str) -> str:
    """Replace e-mails, URLs, phone numbers and @mentions, in that order, by placeholders."""
    if "@" in text:
        text = _EMAIL_RE.sub(lambda m: _spaced(m, EMAIL_TOKEN), text)
    if "/" in text or "www." in text:
        text = _URL_RE.sub(_url, text)
    text = _PHONE_RE.sub(_phone, text)
    if "@" in text:
        text = _MENTION_RE.sub(lambda m: _spaced(m, USER_TOKEN), text)
    return text


def collapse_repeated_letters(text: str) -> str:
    """Cut a letter repeated 3+ times to 2 ("عاااالی" -> "عاالی"), keeping the emphasis cue."""
    return _REPEATED_LETTER_RE.sub(r"\1\1", text)


_RUNS_OF_SPACE = re.compile(r"\s+")


def text_key(text: str) -> str:
    """The identity of a text for de-duplication: case and spacing do not make a new text.

    >>> text_key("  Great   APP ") == text_key("great app")
    True
    """
    return _RUNS_OF_SPACE.sub(" ", str(text)).strip().casefold()
