"""How urgently a piece of feedback needs a human: churn intent, threats to leave or to complain
publicly or to a regulator, safety, fraud and legal words, requests to be called back.

Cues are phrase patterns per language in `cxnlp/data/urgency_cues.yaml`, matched on a folded copy
of the text (lower case; Arabic / Persian letter variants unified; harakat, tatweel and kashida
dropped; ZWNJ and runs of spaces read as one space; Persian / Arabic digits as ASCII; a letter
repeated three or more times read once), so that `حسابمو میبندم`, `حسابمو می‌بندم` and
`حسابمو می بندم` match one pattern. Evidence offsets are mapped back to the ORIGINAL text.

The score combines the strongest cue (its category's weight, a little more for each further
category) with the sentiment model's negative probability when one is given. The negative
probability may raise a score but never makes it high on its own: without a cue the score stays
below the `medium` level.

A model with a learned urgency head (`cxnlp.models.urgency.UrgencyHead`, `cxnlp train-urgency`)
decides instead for the languages it covers: `score_urgency` gets its probability and threshold
(`LearnedUrgency`). The text is urgent when the probability reaches the threshold, or (`or_cues`,
chosen when the head was fitted) when a cue matched. The score is then 0.5 at the threshold,
rising to 1 at probability 1 and falling to 0 at probability 0 (the cue score, where higher and
cues count); levels as above. The evidence stays the cue spans; when the head alone makes a text
urgent (no cue matched) the evidence is one span with `cue: "model"` (`MODEL_CUE`): the text's
most negative clause, or the whole text when it is read as one piece.

>>> result = score_urgency("I will cancel my account if nobody calls me back", "en", {})
>>> result["level"], sorted({e["cue"] for e in result["evidence"]})
('high', ['callback', 'churn'])
>>> result["evidence"][0]["text"]
'cancel my account'
>>> score_urgency("Lovely staff, thanks", "en", {"negative": 0.02})["level"]
'none'
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from cxnlp.data import read_yaml
from cxnlp.labels import LANGS

CUES_RESOURCE = "urgency_cues.yaml"
# Levels from the score, highest first; a text is "urgent" at `medium` and above.
LEVELS: tuple[tuple[str, float], ...] = (("high", 0.75), ("medium", 0.5), ("low", 0.2))
NONE_LEVEL = "none"
URGENT_LEVELS: tuple[str, ...] = ("high", "medium")
# Without a cue the negative probability alone reaches at most this (below `medium`).
NO_CUE_CEILING = 0.4
# Each further cue category adds this much to the strongest cue's weight.
EXTRA_CATEGORY_BONUS = 0.05
# The `cue` of the evidence when the learned head alone makes a text urgent.
MODEL_CUE = "model"
# Below the head's threshold the score stays under `medium`, rounding included.
BELOW_THRESHOLD_CEILING = 0.4999

_FOLD_TABLE = {
    "ي": "ی",
    "ى": "ی",
    "ئ": "ی",
    "ك": "ک",
    "ة": "ه",
    "أ": "ا",
    "إ": "ا",
    "آ": "ا",
    "ٱ": "ا",
    "ؤ": "و",
    "\u200c": " ",
    "\u200f": None,
    "\u200e": None,
    "\u0640": None,  # tatweel
    **{chr(0x06F0 + d): str(d) for d in range(10)},  # Persian digits
    **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
}
_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed]")


def empty_urgency() -> dict[str, Any]:
    """The urgency of a text nothing was found in (what `Prediction.urgency` defaults to)."""
    return {"score": 0.0, "level": NONE_LEVEL, "evidence": []}


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """The folded text the cue patterns are matched on, and for each of its characters the index
    of the original character it came from.

    >>> folded, where = fold_with_offsets("می‌بندم  اكاونتو")
    >>> folded
    'می بندم اکاونتو'
    >>> where[3]
    3
    """
    out: list[str] = []
    where: list[int] = []
    previous = ""
    repeats = 0
    for i, ch in enumerate(text):
        if _MARKS.match(ch):
            continue
        mapped = _FOLD_TABLE.get(ch, ch)
        if mapped is None:
            continue
        mapped = mapped.lower()
        if len(mapped) != 1:  # e.g. "İ".lower(): keep the text one character per character
            mapped = unicodedata.normalize("NFKC", ch)[:1].lower() or ch
        if mapped.isspace():
            if previous == " " or not out:
                continue
            mapped = " "
        if mapped == previous and mapped.isalpha():
            repeats += 1
            if repeats >= 2:  # "خیلیییی" reads as "خیلیی", "sooo" as "soo"
                continue
        else:
            repeats = 0
        out.append(mapped)
        where.append(i)
        previous = mapped
    return "".join(out), where


def fold(text: str) -> str:
    """The folded text alone."""
    return fold_with_offsets(text)[0]


_PATTERN_TABLE = str.maketrans({k: v for k, v in _FOLD_TABLE.items() if v is not None})


def _fold_pattern(pattern: str) -> str:
    # Letters only: lower-casing a pattern would turn \S into \s (matching ignores case anyway).
    return _MARKS.sub("", pattern.translate(_PATTERN_TABLE))


@dataclass(frozen=True)
class UrgencyCue:
    """One category's pattern in one language."""

    category: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class UrgencyRules:
    weights: dict[str, float]
    cues: dict[str, tuple[UrgencyCue, ...]]
    # Phrases that cancel a cue they overlap ("I would never cancel").
    exceptions: dict[str, re.Pattern[str] | None]


def _compile(
    lang: str, category: str, patterns: list[str] | str, prefix: str = ""
) -> re.Pattern[str]:
    if isinstance(patterns, str):
        patterns = [patterns]
    body = "|".join(f"(?:{_fold_pattern(p)})" for p in patterns)
    try:
        return re.compile(f"{_fold_pattern(prefix)}(?:{body})", re.IGNORECASE)
    except re.error as error:
        raise ValueError(f"urgency cue {lang}/{category}: bad pattern ({error})") from error


@functools.cache
def load_urgency_rules(path: str | None = None) -> UrgencyRules:
    """The cue rules of `cxnlp/data/urgency_cues.yaml`, or of a file in its format."""
    raw = read_yaml(CUES_RESOURCE, path)
    weights = {str(k): float(v) for k, v in (raw.get("weights") or {}).items()}
    prefixes = {str(k): str(v or "") for k, v in (raw.get("prefix") or {}).items()}
    cues: dict[str, tuple[UrgencyCue, ...]] = {}
    exceptions: dict[str, re.Pattern[str] | None] = {}
    for lang, block in (raw.get("cues") or {}).items():
        if lang not in LANGS:
            raise ValueError(f"urgency cues for unknown language {lang!r}; expected {list(LANGS)}")
        rules = []
        for category, patterns in block.items():
            if category == "except":
                exceptions[lang] = _compile(lang, category, patterns, prefixes.get(lang, ""))
                continue
            if category not in weights:
                raise ValueError(
                    f"urgency cue category {category!r} ({lang}) has no weight; the weights "
                    f"block names {sorted(weights)}"
                )
            pattern = _compile(lang, category, patterns, prefixes.get(lang, ""))
            rules.append(UrgencyCue(category, pattern))
        cues[lang] = tuple(rules)
        exceptions.setdefault(lang, None)
    return UrgencyRules(weights=weights, cues=cues, exceptions=exceptions)


def find_cues(text: str, lang: str, rules: UrgencyRules | None = None) -> list[dict[str, Any]]:
    """Every cue match in `text` as `{"start", "end", "text", "cue"}` (offsets into `text`), in
    text order; matches inside an exception phrase are dropped."""
    rules = rules or load_urgency_rules()
    if lang not in rules.cues:
        return []
    folded, where = fold_with_offsets(text)
    blocked: list[tuple[int, int]] = []
    exception = rules.exceptions.get(lang)
    if exception is not None:
        blocked = [m.span() for m in exception.finditer(folded)]
    found = []
    for cue in rules.cues[lang]:
        for match in cue.pattern.finditer(folded):
            start, end = match.span()
            if end <= start or any(s < end and start < e for s, e in blocked):
                continue
            o_start, o_end = where[start], where[end - 1] + 1
            found.append(
                {"start": o_start, "end": o_end, "text": text[o_start:o_end], "cue": cue.category}
            )
    return sorted(found, key=lambda e: (e["start"], e["end"]))


def cue_categories(rules: UrgencyRules | None = None) -> tuple[str, ...]:
    """The cue categories of `rules` (the shipped ones by default), sorted by name."""
    return tuple(sorted((rules or load_urgency_rules()).weights))


@dataclass(frozen=True)
class LearnedUrgency:
    """What a learned urgency head said of one text: its `probability`, the language's
    `threshold`, whether a cue match makes the text urgent as well (`or_cues`), and the span
    (offsets into the text) to cite when the head alone makes it urgent (None: the whole text)."""

    probability: float
    threshold: float
    or_cues: bool = True
    span: tuple[int, int] | None = None

    def urgent(self) -> bool:
        return self.probability >= self.threshold

    def score(self) -> float:
        """0.5 at the threshold, 1 at probability 1, 0 at 0 (piecewise linear).

        >>> LearnedUrgency(0.7, 0.4).score(), LearnedUrgency(0.2, 0.4).score()
        (0.75, 0.25)
        """
        p, t = float(self.probability), float(self.threshold)
        if p >= t:
            return 1.0 if t >= 1.0 else 0.5 + 0.5 * (p - t) / (1.0 - t)
        return min(BELOW_THRESHOLD_CEILING, 0.5 * p / t) if t > 0 else 0.0

    def evidence(self, text: str) -> dict[str, Any]:
        start, end = self.span if self.span is not None else (0, len(text))
        return {"start": start, "end": end, "text": text[start:end], "cue": MODEL_CUE}


def level_of(score: float) -> str:
    """The level a score falls in."""
    for name, floor in LEVELS:
        if score >= floor:
            return name
    return NONE_LEVEL


def score_urgency(
    text: str,
    lang: str,
    probabilities: dict[str, float] | None = None,
    rules: UrgencyRules | None = None,
    *,
    learned: LearnedUrgency | None = None,
    cues: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`{"score", "level", "evidence"}` for one text in `lang`. `probabilities` are the sentiment
    model's (calibrated) probabilities, or empty to score from the cues alone; `learned` what the
    model's urgency head said of the text (None: the cues decide); `cues` the text's `find_cues`
    matches when already found.

    >>> r = score_urgency("my card was blocked, why?", "en", {}, learned=LearnedUrgency(0.9, 0.6))
    >>> r["level"], r["evidence"][0]["cue"], r["evidence"][0]["text"]
    ('high', 'model', 'my card was blocked, why?')
    """
    rules = rules or load_urgency_rules()
    if not isinstance(text, str) or not text.strip():
        return empty_urgency()
    evidence = find_cues(text, lang, rules) if cues is None else list(cues)
    negative = (probabilities or {}).get("negative")
    cue_score = None
    if evidence:
        categories = {e["cue"] for e in evidence}
        strongest = max(rules.weights[c] for c in categories)
        cue_score = min(1.0, strongest + EXTRA_CATEGORY_BONUS * (len(categories) - 1))
        # A cue in a clearly positive text ("I'd call again") counts for less.
        if negative is not None:
            cue_score *= 0.75 + 0.25 * float(negative)
    if learned is not None:
        score = learned.score()
        if learned.or_cues and cue_score is not None:
            score = max(score, cue_score)
        if learned.urgent() and not evidence:
            evidence = [learned.evidence(text)]
    elif cue_score is not None:
        score = cue_score
    else:
        score = 0.0 if negative is None else NO_CUE_CEILING * float(negative)
    score = round(min(max(score, 0.0), 1.0), 4)
    return {"score": score, "level": level_of(score), "evidence": evidence}


def is_urgent(result: dict[str, Any]) -> bool:
    """Whether an urgency result is at an urgent level (`medium` or `high`)."""
    return result.get("level") in URGENT_LEVELS
