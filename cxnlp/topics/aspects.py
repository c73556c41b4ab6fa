"""Aspect-level analysis: clauses, the polarity of each topic, a `mixed` flag, evidence spans, and
texts of any length.

A text is split into clauses at sentence punctuation (. ! ? ؟ ؛ ; newlines) and before contrast
words (but / however / although, ولی / اما, لكن / بس / بل ...), each clause keeping its character
offsets into the ORIGINAL text. The model runs once over the document and its clauses together
(one batch, sorted by length, so the extra cost is the clauses' own tokens), then:

- each topic is found where the document or one of its clauses scores above the topic's
  threshold (or where a high-precision cue of `cxnlp/data/aspect_cues.yaml` matches), and takes
  the polarity of the clause that carries it: the clause where its score is highest (or where its
  cue matched), read from that clause's features and sentiment;
- each topic carries `evidence`, `{"start", "end", "text"}`: that clause (or the cue match) as
  offsets into the input text;
- `mixed` is True when one clause is positive and another negative, each with confidence at or
  above `AspectOptions.mixed_threshold`;
- a text longer than the encoder's `max_length` is not truncated: it is classified in pieces
  (its clauses, a clause that is still too long cut into windows at spaces), the document's
  sentiment is the length-weighted mean of the pieces' probabilities, and its topics the maximum
  over the pieces, with evidence.

Custom topics follow the same rules (found on the document or a clause, polarity and evidence from
the clause where their probability is highest). Works for any model whose
`predict_proba_and_features` returns features (topics) or None (sentiment and `mixed` only).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.text.langid import detect_language

if TYPE_CHECKING:
    from cxnlp.models.base import Prediction, SentimentModel

logger = logging.getLogger(__name__)

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
    if path is None:
        raw_text = resources.files("cxnlp.data").joinpath(CUES_RESOURCE).read_text("utf-8")
    else:
        with open(path, encoding="utf-8") as handle:
            raw_text = handle.read()
    raw = yaml.safe_load(raw_text) or {}
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


@dataclass
class AspectOptions:
    """How `analyze` reads clauses. `mixed_threshold`: the confidence a positive and a negative
    clause both need for `mixed`; `clause_topics`: find topics on clauses as well as on the whole
    document (else clauses only choose a topic's polarity and evidence); `cues`: apply the
    high-precision cue rules; `max_chars`: the longest piece for models without a tokenizer;
    `clauses=False` reads each text whole, as before clauses (long texts are still windowed)."""

    mixed_threshold: float = 0.7
    clauses: bool = True
    clause_topics: bool = True
    cues: bool = True
    cue_file: str | None = None
    max_chars: int = 400
    min_words: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    """What runs for one text: the whole document (`doc`: False when too long) and its pieces."""

    doc: bool
    pieces: list[Span]


def _token_counter(model: SentimentModel):
    """(count tokens of a text, token budget) from the model's transformer, or None."""
    candidates = [model, *getattr(model, "members", [])]
    for candidate in candidates:
        tokenizer = getattr(candidate, "tokenizer", None)
        max_length = getattr(candidate, "max_length", None)
        if tokenizer is not None and max_length:
            # Room for the special tokens and the "query: " prefix.
            budget = int(max_length) - 6

            def count(text: str, _tokenizer=tokenizer) -> int:
                return len(_tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

            return count, budget
    return None


def plan_text(text: str, lang: str, options: AspectOptions, counter: Any = None) -> _Plan:
    """Split one text into the pieces `analyze` classifies."""
    clauses = split_clauses(text, lang, options.min_words)
    # Clause pieces of a text read whole (more than one clause, and clauses switched on).
    short_pieces = clauses if len(clauses) > 1 and options.clauses else []
    if counter is None:
        # A model without a tokenizer (char n-grams) reads any length whole.
        return _Plan(doc=True, pieces=short_pieces)
    else:
        count, budget = counter
        # A token is at least one character, and rarely more than 20: only texts in between
        # need counting.
        too_long = len(text) > budget and (len(text) > 20 * budget or count(text) > budget)
        fits = lambda span: len(span.text) <= budget or count(span.text) <= budget  # noqa: E731
    if not too_long:
        return _Plan(doc=True, pieces=short_pieces)
    pieces: list[Span] = []
    for clause in clauses:
        if fits(clause):
            pieces.append(clause)
            continue
        if counter is None:
            pieces += windows(text, clause, options.max_chars)
        else:
            count, budget = counter
            ratio = len(clause.text) / max(count(clause.text), 1)
            pieces += windows(text, clause, max(int(budget * ratio * 0.9), 16))
    return _Plan(doc=False, pieces=_pack(text, pieces, options, counter))


def _pack(text: str, pieces: list[Span], options: AspectOptions, counter: Any) -> list[Span]:
    """Consecutive pieces joined into windows under the budget: a long text is read in windows
    of whole sentences, each about as long as the texts the model was trained on."""
    if counter is None:
        size, budget = (lambda span: len(span.text)), options.max_chars  # noqa: E731
    else:
        count, budget = counter
        size = lambda span: count(span.text)  # noqa: E731
    packed: list[Span] = []
    used = 0
    for piece in pieces:
        n = size(piece)
        if packed and used + n <= budget:
            last = packed[-1]
            packed[-1] = Span(last.start, piece.end, text[last.start : piece.end])
            used += n
        else:
            packed.append(piece)
            used = n
    return packed


def analyze(
    model: SentimentModel,
    texts: Sequence[str],
    langs: Sequence[str | None] | None = None,
    options: AspectOptions | None = None,
) -> list[Prediction]:
    """One `Prediction` per text, with clause-level topic polarity, `mixed` and evidence."""
    # The model names its result class, so this module needs no import of cxnlp.models.base
    # (which imports this one).
    Prediction = model.prediction_class  # noqa: N806

    options = options or getattr(model, "aspect_options", None) or AspectOptions()
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, got a single string; wrap it in a list")
    texts = list(texts)
    if langs is None:
        langs = [None] * len(texts)
    if len(langs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(langs)} langs")
    if not texts:
        return []
    resolved = [lang or detect_language(text) for text, lang in zip(texts, langs, strict=True)]
    counter = _token_counter(model)
    plans = [plan_text(t, lang, options, counter) for t, lang in zip(texts, resolved, strict=True)]
    # One batch: each document that fits, then every piece.
    unit_texts: list[str] = []
    unit_langs: list[str] = []
    doc_unit: list[int | None] = []
    piece_units: list[list[int]] = []
    for text, lang, plan in zip(texts, resolved, plans, strict=True):
        if plan.doc:
            doc_unit.append(len(unit_texts))
            unit_texts.append(text)
            unit_langs.append(lang)
        else:
            doc_unit.append(None)
        piece_units.append(list(range(len(unit_texts), len(unit_texts) + len(plan.pieces))))
        unit_texts += [span.text for span in plan.pieces]
        unit_langs += [lang] * len(plan.pieces)
    probabilities, features = model.predict_proba_and_features(unit_texts, unit_langs)
    tagger = getattr(model, "topic_tagger", None)
    topic_scores = None
    if tagger is not None and features is not None:
        presence, head_polarity = tagger.scores(features)
        polarity = tagger.polarities(features, probabilities, head_polarity)
        custom = tagger.custom_probabilities(features, unit_langs)
        topic_scores = (presence, polarity, custom)
    rules = load_cue_rules(options.cue_file) if options.cues and tagger is not None else {}
    labels = tuple(model.labels)
    results = []
    for i, (text, lang, plan) in enumerate(zip(texts, resolved, plans, strict=True)):
        pieces = piece_units[i]
        if doc_unit[i] is not None:
            row = probabilities[doc_unit[i]]
        else:
            weights = np.array([len(span.text) for span in plan.pieces], dtype=np.float64)
            row = (probabilities[pieces] * weights[:, None]).sum(0) / weights.sum()
        mixed = _is_mixed(probabilities[pieces], labels, options.mixed_threshold)
        topics: list[dict[str, Any]] = []
        if topic_scores is not None:
            topics = _text_topics(
                text, lang, plan, doc_unit[i], pieces, topic_scores, probabilities,
                tagger, rules.get(lang, ()), options, labels,
            )  # fmt: skip
        results.append(
            Prediction(
                sentiment=labels[int(row.argmax())],
                probabilities={label: float(p) for label, p in zip(labels, row, strict=True)},
                lang=lang,
                confidence=float(row.max()),
                topics=topics,
                mixed=mixed,
            )
        )
    return results


def _cue_hits(
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


def cue_topics(text: str, lang: str, options: AspectOptions | None = None) -> set[str]:
    """The topics the cue rules of `lang` tag in `text`, on its clauses as `analyze` reads them
    (for a text of several clauses; the whole text otherwise).

    >>> sorted(cue_topics("My refund still hasn't arrived", "en"))
    ['refund_return']
    """
    options = options or AspectOptions()
    rules = load_cue_rules(options.cue_file).get(lang, ())
    clauses = split_clauses(text, lang, options.min_words)
    if not (len(clauses) > 1 and options.clauses):
        clauses = [_trimmed(text, 0, len(text)) or Span(0, len(text), text)]
    return {topic for hits in _cue_hits(text, clauses, rules) for topic in hits}


def _is_mixed(piece_probabilities: np.ndarray, labels: tuple[str, ...], threshold: float) -> bool:
    if len(piece_probabilities) < 2:
        return False
    positive, negative = labels.index("positive"), labels.index("negative")
    best = piece_probabilities.argmax(1)
    confident = piece_probabilities.max(1) >= threshold
    return bool((confident & (best == positive)).any() and (confident & (best == negative)).any())


def _text_topics(
    text: str,
    lang: str,
    plan: _Plan,
    doc: int | None,
    pieces: list[int],
    topic_scores: tuple[np.ndarray, np.ndarray, np.ndarray],
    probabilities: np.ndarray,
    tagger: Any,
    rules: tuple[CueRule, ...],
    options: AspectOptions,
    labels: tuple[str, ...],
) -> list[dict[str, Any]]:
    presence, polarity, custom = topic_scores
    whole = _trimmed(text, 0, len(text)) or Span(0, len(text), text)
    # Candidate units for finding a topic, and the span each stands for.
    units = ([doc] if doc is not None else []) + pieces
    spans = ([whole] if doc is not None else []) + plan.pieces
    finders = units if options.clause_topics or doc is None else [doc]
    carriers = pieces or units  # the clause that carries a topic: a piece, or the whole text
    carrier_spans = plan.pieces or spans
    cue_hits = _cue_hits(text, carrier_spans, rules)
    replaced = [
        {t for rule in rules if rule.topic in hits for t in rule.replaces if t not in hits}
        for hits in cue_hits
    ]
    found = []
    names = list(tagger.topics)
    thresholds = tagger.thresholds_for(lang) if hasattr(tagger, "thresholds_for") else None
    thresholds = tagger.thresholds_ if thresholds is None else thresholds
    for col, name in enumerate(names):
        score = float(presence[finders, col].max())
        hit_carriers = [k for k, hits in enumerate(cue_hits) if name in hits]
        if score < thresholds[col] and not hit_carriers:
            continue
        fixed_polarity = None
        if hit_carriers:
            k = max(hit_carriers, key=lambda k: presence[carriers[k], col])
            evidence, fixed_polarity = cue_hits[k][name]
            # Found by its cue: the score is at least the topic's threshold.
            score = max(score, float(thresholds[col]))
        else:
            k = int(np.argmax(presence[carriers, col]))
            if name in replaced[k]:
                # The clause's cue says this is another topic: keep it only where found elsewhere.
                others = [j for j in range(len(carriers)) if name not in replaced[j]]
                if (
                    not others
                    or presence[[carriers[j] for j in others], col].max() < thresholds[col]
                ):
                    continue
                k = max(others, key=lambda j: presence[carriers[j], col])
            evidence = carrier_spans[k]
        found.append(
            {
                "topic": name,
                "polarity": fixed_polarity or SENTIMENTS[int(polarity[carriers[k], col])],
                "score": round(score, 4),
                "evidence": evidence.to_dict(),
            }
        )
    for col, topic in enumerate(tagger.custom_topics):
        score = float(custom[finders, col].max())
        if score < (topic.min_score or tagger.matcher.threshold):
            continue
        k = int(np.argmax(custom[carriers, col]))
        sentiment = labels[int(probabilities[carriers[k]].argmax())]
        found.append(
            {
                "topic": topic.name,
                "polarity": sentiment,
                "score": round(score, 4),
                "evidence": carrier_spans[k].to_dict(),
            }
        )
    return sorted(found, key=lambda t: -t["score"])
