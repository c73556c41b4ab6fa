"""Clauses and cue phrases: where a text's opinions start and end, and the high-precision phrases
that name a topic wherever they occur.

A text is split into clauses at sentence punctuation (. ! ? ؟ ؛ ; newlines) and before contrast
words (but / however / although, ولی / اما, لكن / بس / بل ...), each clause keeping its character
offsets into the ORIGINAL text; `cxnlp.models.pipeline` reads each clause's sentiment and topics
from the same encoder pass as the whole text. Cue rules (`cxnlp/data/aspect_cues.yaml`) are
matched on text folded one character for one (Arabic / Persian letter variants unified), so match
offsets are offsets into the original.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cxnlp.data import read_yaml
from cxnlp.labels import LANGS, SENTIMENTS

CUES_RESOURCE = "aspect_cues.yaml"

# Contrast words start a new clause (the word belongs to the clause it opens).
CONTRAST_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("but", "however", "although", "though", "whereas", "except", "otherwise"),
    "fa": ("ولی", "ولي", "اما", "لیکن", "ولیکن", "لکن", "منتها", "درعوض", "در عوض"),
    "ar": (
        "لكن",
        "ولكن",
        "لكنه",
        "لكنها",
        "ولكنه",
        "ولكنها",
        "بس",
        "بل",
        "إلا أن",
        "الا ان",
        "غير أن",
        "غير ان",
        "أما",
        "اما",
    ),
}
# A clause opened by one of these ("although the food was good, the service was slow") also ends
# at its first comma: the concession and the main clause carry different sentiments.
CONCESSIVE_WORDS: tuple[str, ...] = (
    "although",
    "though",
    "even though",
    "despite",
    "while",
    "اگرچه",
    "اگر چه",
    "با اینکه",
    "با این که",
    "با وجود اینکه",
    "رغم",
    "بالرغم",
    "على الرغم",
    "مع أن",
    "مع ان",
)
# Sentence ends: ! ? ؟ ؛ ; newlines, runs of dots, and a dot followed by a space, the end, or a
# letter outside Latin script (Persian and Arabic writers often omit the space). A dot inside a
# number (2.5) or an address (t.co) does not end a sentence.
_SENTENCE_END = re.compile(r"[!?؟؛;\n\r]+|\.{2,}|…+|\.(?=\s|$|[^\x00-\x7f\d])")
_WORD = re.compile(r"\w", re.UNICODE)
_COMMA = re.compile(r"[,،]")


def _word_alternation(words: Sequence[str]) -> str:
    ordered = sorted(set(words), key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)


def _contrast_pattern(words: Sequence[str]) -> re.Pattern[str]:
    # Not preceded or followed by a word character: whole words in any script.
    return re.compile(rf"(?<!\w)(?:{_word_alternation(words)})(?!\w)", re.IGNORECASE)


_CONTRAST = {lang: _contrast_pattern(words) for lang, words in CONTRAST_WORDS.items()}
_CONTRAST["*"] = _contrast_pattern([w for words in CONTRAST_WORDS.values() for w in words])
_CONCESSIVE = re.compile(rf"^(?:{_word_alternation(CONCESSIVE_WORDS)})(?!\w)", re.IGNORECASE)
_CONCESSIVE_ANYWHERE = _contrast_pattern(CONCESSIVE_WORDS)


def has_contrast(text: str, lang: str | None = None) -> bool:
    """Whether `text` holds a contrast word of `lang` (any language's when None) or a concessive
    one ("although", "اگرچه", "على الرغم" ...).

    >>> has_contrast("The food was great but the courier came late", "en")
    True
    >>> has_contrast("غذا عالی بود و پیک به موقع رسید", "fa")
    False
    """
    contrast = _CONTRAST.get(lang or "*", _CONTRAST["*"])
    return bool(contrast.search(text) or _CONCESSIVE_ANYWHERE.search(text))


@dataclass(frozen=True)
class Span:
    """A piece of a text: `text[start:end]` of the original input."""

    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


def _trimmed(text: str, start: int, end: int) -> Span | None:
    """The span without surrounding whitespace, or None when it holds no word character."""
    piece = text[start:end]
    stripped = piece.lstrip()
    start += len(piece) - len(stripped)
    stripped = stripped.rstrip()
    end = start + len(stripped)
    if not _WORD.search(stripped):
        return None
    return Span(start, end, text[start:end])


def _n_words(span: Span) -> int:
    return len(span.text.split())


def split_clauses(text: str, lang: str | None = None, min_words: int = 2) -> list[Span]:
    """The clauses of `text`, in order, with character offsets into `text` itself.

    Sentence punctuation closes a clause (the mark stays with it); a contrast word of `lang`
    (any language's when None) opens one; a concessive clause ends at its first comma. A clause
    of fewer than `min_words` words is merged into the one before it (the first into the next),
    so a stray "but" or "بس" does not become a clause of its own.

    >>> [s.text for s in split_clauses("The food was great but the courier came an hour late.")]
    ['The food was great', 'but the courier came an hour late.']
    >>> [(s.start, s.end) for s in split_clauses("غذا سرد بود ولی پیک به موقع رسید", "fa")]
    [(0, 11), (12, 32)]
    """
    contrast = _CONTRAST.get(lang or "*", _CONTRAST["*"])
    cuts = {0, len(text)}
    for match in _SENTENCE_END.finditer(text):
        cuts.add(match.end())
    for match in contrast.finditer(text):
        cuts.add(match.start())
    bounds = sorted(cuts)
    spans = [
        span
        for start, end in zip(bounds, bounds[1:], strict=False)
        if (span := _trimmed(text, start, end)) is not None
    ]
    # A concessive clause ends at its first comma.
    split: list[Span] = []
    for span in spans:
        comma = _COMMA.search(span.text) if _CONCESSIVE.match(span.text) else None
        if comma is not None:
            head = _trimmed(text, span.start, span.start + comma.end())
            tail = _trimmed(text, span.start + comma.end(), span.end)
            split += [s for s in (head, tail) if s is not None]
        else:
            split.append(span)
    return _merge_short(text, split, min_words)


def _merge_short(text: str, spans: list[Span], min_words: int) -> list[Span]:
    merged: list[Span] = []
    for span in spans:
        if merged and _n_words(span) < min_words:
            merged[-1] = Span(merged[-1].start, span.end, text[merged[-1].start : span.end])
        else:
            merged.append(span)
    if len(merged) > 1 and _n_words(merged[0]) < min_words:
        first, second = merged[0], merged[1]
        merged[:2] = [Span(first.start, second.end, text[first.start : second.end])]
    return merged


def windows(text: str, span: Span, max_chars: int) -> list[Span]:
    """`span` cut at spaces into pieces of at most about `max_chars` characters (a single word
    longer than that is cut inside)."""
    if len(span.text) <= max_chars:
        return [span]
    pieces, start = [], span.start
    while start < span.end:
        end = min(start + max_chars, span.end)
        if end < span.end:
            space = text.rfind(" ", start + max_chars // 2, end)
            if space > start:
                end = space
        piece = _trimmed(text, start, end)
        if piece is not None:
            pieces.append(piece)
        start = end
    return pieces


@dataclass(frozen=True)
class CueRule:
    """A high-precision phrase that is evidence of `topic` wherever it matches; the topics in
    `replaces` are dropped from a clause where this rule matched and their own cue did not
    (e.g. "customer service" is support, not staff manners). A rule with a `polarity` (a phrase
    such as "an hour late" that is a complaint in itself) gives the topic that polarity where it
    is the topic's evidence, whatever the sentiment model reads in the clause."""

    topic: str
    pattern: re.Pattern[str]
    replaces: tuple[str, ...] = ()
    polarity: str | None = None


@lru_cache(maxsize=4)
def load_cue_rules(path: str | None = None) -> dict[str, tuple[CueRule, ...]]:
    """lang -> cue rules, from `cxnlp/data/aspect_cues.yaml` or a file in its format."""
    raw = read_yaml(CUES_RESOURCE, path)
    rules: dict[str, tuple[CueRule, ...]] = {}
    for lang, entries in (raw.get("cues") or {}).items():
        if lang not in LANGS:
            raise ValueError(f"{path or CUES_RESOURCE}: unknown language {lang!r}")
        parsed = []
        for entry in entries or []:
            if entry.get("polarity") not in (None, *SENTIMENTS):
                raise ValueError(
                    f"{path or CUES_RESOURCE}: cue polarity must be one of {list(SENTIMENTS)}, "
                    f"got {entry.get('polarity')!r}"
                )
            parsed.append(
                CueRule(
                    topic=str(entry["topic"]),
                    pattern=re.compile(fold(str(entry["pattern"])), re.IGNORECASE),
                    replaces=tuple(entry.get("replaces") or ()),
                    polarity=entry.get("polarity"),
                )
            )
        rules[lang] = tuple(parsed)
    return rules


# Letter variants a cue pattern need not spell out, folded one character for one character so
# that offsets into the folded text are offsets into the original.
_FOLD = str.maketrans(
    {"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "\u200c": " "}
)


def fold(text: str) -> str:
    """`text` with Arabic / Persian letter variants unified, one character for one (cue
    patterns are folded the same way and matched case-insensitively).

    >>> fold("التطبيق لا يعمل") == "التطبیق لا یعمل"
    True
    """
    return text.translate(_FOLD)


def cue_hits(
    text: str, spans: Sequence[Span], rules: Sequence[CueRule]
) -> list[dict[str, tuple[Span, str | None]]]:
    """Per span: topic -> (the first cue match, as a span of `text`; the rule's polarity)."""
    hits: list[dict[str, tuple[Span, str | None]]] = [{} for _ in spans]
    if not rules:
        return hits
    for k, span in enumerate(spans):
        folded = fold(span.text)
        for rule in rules:
            if rule.topic in hits[k]:
                continue
            match = rule.pattern.search(folded)
            if match is not None:
                start, end = span.start + match.start(), span.start + match.end()
                hits[k][rule.topic] = (Span(start, end, text[start:end]), rule.polarity)
    return hits


def cue_topics(
    text: str,
    lang: str,
    *,
    cue_file: str | None = None,
    min_words: int = 2,
    clauses: bool = True,
) -> set[str]:
    """The topics the cue rules of `lang` tag in `text`, on its clauses as `analyze` reads them
    (for a text of several clauses; the whole text otherwise).

    >>> sorted(cue_topics("My refund still hasn't arrived", "en"))
    ['refund_return']
    """
    rules = load_cue_rules(cue_file).get(lang, ())
    spans = split_clauses(text, lang, min_words)
    if not (len(spans) > 1 and clauses):
        spans = [whole_span(text)]
    return {topic for hits in cue_hits(text, spans, rules) for topic in hits}


def whole_span(text: str) -> Span:
    """The whole text as a span, without surrounding whitespace."""
    return _trimmed(text, 0, len(text)) or Span(0, len(text), text)
