"""The predict pipeline: a document's sentiment, its clauses, each topic's polarity and evidence,
`mixed`, and texts of any length, from one encoder pass per text.

Each text is split into clauses (`cxnlp.text.clauses`); a clause longer than
`AspectOptions.max_chars` characters, or a long text of one clause, is cut into pieces at spaces.
The model reads the whole (normalised) document once; each piece is located in the normalised
document (the piece normalised on its own is found there, in order) and its sentiment and topic
features are pooled from the document's own token states (`SentimentModel.read_units`). Only a
piece that normalisation changed so that it cannot be found is read again on its own (a second
pass for that piece; `analyze` logs how many).

Then:

- each topic is found where the document or one of its pieces scores above the topic's
  threshold (or where a high-precision cue of `cxnlp/data/aspect_cues.yaml` matches), and takes
  the polarity of the piece that carries it: the piece where its score is highest (or where its
  cue matched);
- each topic carries `evidence`, `{"start", "end", "text"}`: that piece (or the cue match) as
  offsets into the input text;
- `mixed` is decided by the model's learned head (`cxnlp.models.mixed.MixedHead`, from
  `cxnlp train-mixed`) where it has one for the text's language; otherwise by the language's rule:
  one piece positive and another negative, each with confidence at or above the rule's floor, or a
  positive and a negative topic, or the document's own positive and negative both above a floor
  (`MIXED_RULES`);
- `urgency` (`cxnlp.text.urgency.score_urgency`): the cues, and the model's learned urgency head
  (`cxnlp.models.urgency.UrgencyHead`, from `cxnlp train-urgency`) where it has one for the text's
  language; when the head alone makes a text urgent its evidence is the most negative piece (the
  whole text when it is read as one piece);
- a document longer than the encoder's window is read in windows, each token once (the
  transformer's `_read_units`), never truncated.

Custom topics follow the same rules. Works for any model whose `read_units` returns features
(topics) or None (sentiment and `mixed` only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.models.mixed import MixedSignals, mixed_signals
from cxnlp.models.urgency import urgency_signals
from cxnlp.text.clauses import (
    CueRule,
    Span,
    cue_hits,
    has_contrast,
    load_cue_rules,
    split_clauses,
    whole_span,
    windows,
)
from cxnlp.text.normalize import normalize
from cxnlp.text.urgency import find_cues, score_urgency

logger = logging.getLogger(__name__)


# How the pieces of a text up to `AspectOptions.clause_pass_chars` characters are read: every one
# again on its own ("all"), only those `second_pass_pieces` picks ("selective"), none ("none";
# every piece pooled from the document's own pass).
CLAUSE_PASSES = ("all", "selective", "none")

# No document rule: no text has both positive and negative above 1.
NO_DOC_RULE = 1.01
# Per language: a text is mixed when two clauses are confidently (>= "clause") of opposite
# polarity, or ("topics") it has a positive and a negative topic, or its document probabilities
# give both positive and negative at least "doc". Chosen by benchmarks/mixed_tuning.py on rows
# the report does not use (see the model card).
# Measured there (tuning rows / untouched test rows of benchmarks/mixed_and_agreement.py),
# precision / recall: fa 0.80 / 0.37 and 0.79 / 0.26 (0.7, no document rule: 0.79 / 0.15 on
# test); ar 0.81 / 0.11 and 0.80 / 0.02 (was 0 / 0); en 0.85 / 0.59 and 0.84 / 0.53 (was
# 0.95 / 0.37).
MIXED_RULES: dict[str, dict[str, Any]] = {
    "fa": {"clause": 0.5, "doc": NO_DOC_RULE, "topics": True},
    "ar": {"clause": 0.5, "doc": 0.4, "topics": True},
    "en": {"clause": 0.5, "doc": 0.2, "topics": True},
}


@dataclass
class AspectOptions:
    """How `analyze` reads clauses. `mixed_threshold`: the confidence a positive and a negative
    clause both need for `mixed`; `clause_topics`: find topics on clauses as well as on the whole
    document (else clauses only choose a topic's polarity and evidence); `cues`: apply the
    high-precision cue rules; `max_chars`: the longest piece a clause is read as (longer ones are
    cut at spaces); `clauses=False` reads each text whole (pieces only for texts over `max_chars`);
    `topic_mixed`: a positive and a negative topic also make a text mixed; `agree`: the document's
    sentiment is read together with its own clauses and topics (see `agree_with_evidence`);
    `mixed_head`: the model's learned `mixed` head decides where it covers the text's language
    (False: the rules everywhere); `urgency_head`: the same for the learned urgency head (False:
    the cues alone); `clause_pass` / `clause_pass_chars`: which pieces of texts up to that many
    characters are read again on their own (see `second_pass_pieces`)."""

    mixed_threshold: float = 0.7
    # Per language, the `mixed` rule chosen by benchmarks/mixed_tuning.py (see MIXED_RULES);
    # a language without one uses `mixed_threshold` and `topic_mixed`, with no document rule.
    mixed_rules: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(MIXED_RULES))
    clauses: bool = True
    clause_topics: bool = True
    cues: bool = True
    cue_file: str | None = None
    max_chars: int = 400
    min_words: int = 2
    topic_mixed: bool = True
    agree: bool = True
    # Clauses of a text up to this many characters are encoded again on their own (a second pass);
    # longer texts have theirs pooled from the document's own pass. Pooled from the document, a
    # clause carries the document's sentiment ("delicious!" in a negative review reads negative),
    # which cost clause polarity and `mixed` their recall (measured: see the model card); 0 pools
    # every clause.
    clause_pass_chars: int = 400
    # Which of those clauses: "all", "selective" (those `second_pass_pieces` picks from the first
    # pass: on the multi-domain dev half, 118 of 311 clauses, with topic F1, polarity and the
    # no-topic rate at least "all"'s; README, Speed) or "none" (the same as 0 characters).
    clause_pass: str = "selective"
    # How much a topic's polarity counts as evidence against the document's sentiment (see `agree`).
    topic_evidence: float = 0.8
    mixed_head: bool = True
    urgency_head: bool = True

    def mixed_rule(self, lang: str) -> tuple[float, float, bool]:
        """(clause confidence, document floor, topics count) of `lang`'s `mixed` rule."""
        rule = self.mixed_rules.get(lang)
        if rule is None:
            return self.mixed_threshold, NO_DOC_RULE, self.topic_mixed
        return float(rule["clause"]), float(rule["doc"]), bool(rule["topics"])


def plan_pieces(text: str, lang: str, options: AspectOptions) -> list[Span]:
    """The pieces of `text` read beside the whole document: its clauses (when there are several
    and clauses are on), each cut at spaces to at most about `max_chars` characters; a single
    clause longer than `max_chars` is cut the same way; otherwise none."""
    clauses = split_clauses(text, lang, options.min_words) if options.clauses else []
    if len(clauses) < 2:
        if len(text) <= options.max_chars:
            return []
        clauses = [whole_span(text)]
    pieces: list[Span] = []
    for clause in clauses:
        pieces += windows(text, clause, options.max_chars)
    return pieces if len(pieces) > 1 else []


def locate(doc: str, pieces: Sequence[str], lang: str | None) -> list[tuple[int, int] | None]:
    """Where each piece of an original text lies in `doc`, the text normalised: the piece
    normalised on its own, searched for in order; None where it is not found."""
    found: list[tuple[int, int] | None] = []
    cursor = 0
    for piece in pieces:
        target = normalize(piece, lang=lang if lang in LANGS else None)
        at = doc.find(target, cursor) if target else -1
        if at < 0:
            found.append(None)
            continue
        found.append((at, at + len(target)))
        cursor = at + len(target)
    return found


def analyze(
    model: Any,
    texts: Sequence[str],
    langs: Sequence[str | None] | None = None,
    options: AspectOptions | None = None,
    *,
    record: list[MixedSignals] | None = None,
    second_pass: list[str] | None = None,
) -> list[Any]:
    """One `model.prediction_class` per text, with clause-level topic polarity, `mixed` and
    evidence; `model` is a `cxnlp.models.base.SentimentModel` (which imports this module).

    `record`, a list, gets one `MixedSignals` per text: what the `mixed` head reads and the
    decision of the language's rule (what `cxnlp train-mixed` fits the head on; with the cues,
    what `cxnlp train-urgency` fits the urgency head on). `second_pass`, a list, gets the
    (normalised) text of each piece read again on its own (see `AspectOptions.clause_pass`)."""
    Prediction = model.prediction_class  # noqa: N806
    options = options or getattr(model, "aspect_options", None) or AspectOptions()
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, got a single string; wrap it in a list")
    texts = list(texts)
    if not texts:
        return []
    if options.clause_pass not in CLAUSE_PASSES:
        raise ValueError(f"clause_pass must be one of {CLAUSE_PASSES}, got {options.clause_pass!r}")
    docs, resolved = model.prepare(texts, langs)
    plans = [plan_pieces(t, lang, options) for t, lang in zip(texts, resolved, strict=True)]
    # Which texts' pieces may be read again on their own: every piece of them ("all"), those
    # `second_pass_pieces` picks ("selective"), none ("none").
    short = [
        bool(plan) and len(text) <= options.clause_pass_chars and options.clause_pass != "none"
        for text, plan in zip(texts, plans, strict=True)
    ]
    reread_all = [s and options.clause_pass == "all" for s in short]
    located = [
        [None] * len(plan) if whole else locate(doc, [p.text for p in plan], lang)
        for doc, plan, lang, whole in zip(docs, plans, resolved, reread_all, strict=True)
    ]
    spans = [[where for where in found if where is not None] for found in located]
    # A piece read in the second pass ("all"), or one normalisation changed beyond finding, is
    # read as a text of its own.
    extra_texts, extra_langs = [], []
    for text_plan, found, lang in zip(plans, located, resolved, strict=True):
        for piece, where in zip(text_plan, found, strict=True):
            if where is None:
                extra_texts.append(_piece_text(piece, lang))
                extra_langs.append(lang)
    doc_p, doc_f, span_p, span_f = model.read_units(
        docs + extra_texts, spans + [[]] * len(extra_texts), resolved + extra_langs
    )
    n = len(texts)
    # Units: documents, then the extra texts, then the located spans.
    probabilities = np.concatenate([doc_p, span_p]) if len(span_p) else np.array(doc_p)
    features = None
    if doc_f is not None:
        features = np.concatenate([doc_f, span_f]) if span_f is not None and len(span_f) else doc_f
    unit_langs = (
        list(resolved)
        + extra_langs
        + [lang for lang, ranges in zip(resolved, spans, strict=True) for _ in ranges]
    )
    piece_units: list[list[int]] = []
    next_span, next_extra = len(doc_p), n
    for found in located:
        units = []
        for where in found:
            if where is None:
                units.append(next_extra)
                next_extra += 1
            else:
                units.append(next_span)
                next_span += 1
        piece_units.append(units)
    tagger = getattr(model, "topic_tagger", None)
    topic_scores = None
    if tagger is not None and features is not None:
        topic_scores = _topic_scores(
            tagger, features, probabilities, unit_langs, resolved, piece_units
        )
    labels = tuple(model.labels)
    chosen: list[tuple[int, int]] = []
    if options.clause_pass == "selective":
        chosen = second_pass_pieces(
            texts, resolved, plans, piece_units, short, probabilities, features, topic_scores,
            tagger, options, labels,
        )  # fmt: skip
        # A piece normalisation changed beyond finding was read on its own already.
        chosen = [(i, k) for i, k in chosen if located[i][k] is not None]
    again_texts = [_piece_text(plans[i][k], resolved[i]) for i, k in chosen]
    if chosen:
        again_p, again_f, _, _ = model.read_units(
            again_texts, [[] for _ in chosen], [resolved[i] for i, _ in chosen]
        )
        units = [piece_units[i][k] for i, k in chosen]
        probabilities[units] = again_p
        if features is not None and again_f is not None:
            features = np.array(features)
            features[units] = again_f
        if topic_scores is not None:
            topic_scores = _topic_scores(
                tagger, features, probabilities, unit_langs, resolved, piece_units
            )
    if extra_texts or again_texts:
        logger.debug("%d clause(s) read in a second pass", len(extra_texts) + len(again_texts))
    if second_pass is not None:
        second_pass += extra_texts + again_texts
    rules = load_cue_rules(options.cue_file) if options.cues and tagger is not None else {}
    head = getattr(model, "mixed_head", None) if options.mixed_head else None
    urgency_head = getattr(model, "urgency_head", None) if options.urgency_head else None
    results = []
    for i, (text, lang, plan) in enumerate(zip(texts, resolved, plans, strict=True)):
        pieces = piece_units[i]
        row = probabilities[i]
        topics: list[dict[str, Any]] = []
        if topic_scores is not None:
            topics = _text_topics(
                text, i, plan, pieces, topic_scores, probabilities, tagger,
                rules.get(lang, ()), options, labels, lang,
            )  # fmt: skip
        cued = [t for t in topics if t.pop("_cued", False)]
        if options.agree:
            # Only topics whose polarity a cue phrase fixed count as evidence: the polarity head
            # is too noisy for it (measured: with every topic, Persian got worse).
            row = agree_with_evidence(
                row, probabilities[pieces], cued, labels, options.mixed_threshold,
                options.topic_evidence,
            )  # fmt: skip
        clause_floor, doc_floor, topic_rule = options.mixed_rule(lang)
        topics_mixed = _topics_mixed(topics)
        mixed = (
            _is_mixed(probabilities[pieces], labels, clause_floor)
            or (topic_rule and topics_mixed)
            or _doc_mixed(row, labels, doc_floor)
        )
        doc_features = features[i] if features is not None else None
        use_head = head is not None and head.covers(lang) and head.can_read(doc_features)
        use_urgency = (
            urgency_head is not None
            and urgency_head.covers(lang)
            and urgency_head.can_read(doc_features)
        )
        signals = None
        if use_head or use_urgency or record is not None:
            signals = mixed_signals(row, probabilities[pieces], topics_mixed, lang, labels)
            if record is not None:
                record.append(MixedSignals(signals, doc_features, mixed))
            if use_head:
                mixed = head.decide(signals, doc_features, lang, rule=mixed)
        probs = {label: float(p) for label, p in zip(labels, row, strict=True)}
        cues = find_cues(text, lang) if isinstance(text, str) else []
        learned = None
        if use_urgency and signals is not None:
            learned = urgency_head.judge(
                urgency_signals(signals, cues),
                doc_features,
                lang,
                _most_negative(plan, probabilities[pieces], labels),
            )
        results.append(
            Prediction(
                sentiment=labels[int(row.argmax())],
                probabilities=probs,
                lang=lang,
                confidence=float(row.max()),
                topics=topics,
                mixed=mixed,
                urgency=score_urgency(text, lang, probs, learned=learned, cues=cues),
            )
        )
    return results


def second_pass_pieces(
    texts: Sequence[str],
    langs: Sequence[str],
    plans: Sequence[Sequence[Span]],
    piece_units: Sequence[Sequence[int]],
    short: Sequence[bool],
    probabilities: np.ndarray,
    features: np.ndarray | None,
    topic_scores: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    tagger: Any,
    options: AspectOptions,
    labels: tuple[str, ...],
) -> list[tuple[int, int]]:
    """(text, piece) of each piece that `clause_pass="selective"` reads again on its own, judged
    from the first pass (every piece pooled from its document's token states), among the pieces
    of `short` texts:

    - in a text with a contrast word ("but", "ولی", "لكن", "although" ...; `has_contrast`),
      every piece but the one whose pooled probabilities are nearest the document's: that one
      the document's sentiment already speaks for, the others may be the other side of the
      contrast, which pooling hides;
    - a piece where a topic's pooled presence reaches its threshold while the document's does
      not: pooled, a clause can take a topic the whole text does not have (read on its own, it
      mostly loses it: the no-topic rate).

    Chosen on the multi-domain dev half and the `mixed` tuning rows
    (`benchmarks/clause_pass.py --explore`, candidates in `benchmarks/clause_pass_rules.py`)."""
    presence = topic_scores[0] if topic_scores is not None else None
    chosen = []
    for i, plan in enumerate(plans):
        if not short[i]:
            continue
        units = list(piece_units[i])
        picked = set()
        if any(has_contrast(piece.text, langs[i]) for piece in plan):
            nearest = int(np.argmin(np.abs(probabilities[units] - probabilities[i]).sum(1)))
            picked |= set(range(len(plan))) - {nearest}
        if presence is not None:
            thresholds = np.asarray(tagger.thresholds_for(langs[i]))
            piece_only = (presence[units] >= thresholds) & (presence[i] < thresholds)
            picked |= {int(k) for k in np.flatnonzero(piece_only.any(1))}
        chosen += [(i, k) for k in sorted(picked)]
    return chosen


def _piece_text(piece: Span, lang: str) -> str:
    return normalize(piece.text, lang=lang if lang in LANGS else None)


def _topic_scores(
    tagger: Any,
    features: np.ndarray,
    probabilities: np.ndarray,
    unit_langs: list[str],
    langs: list[str],
    piece_units: list[list[int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(presence, polarity, custom) of every unit; the document gate reads the whole text: a
    closed gate leaves the head's presence scores out of every unit of that text (cue rules and
    custom topics still apply)."""
    presence, head_polarity = tagger.scores(features)
    polarity = tagger.polarities(features, probabilities, head_polarity, unit_langs)
    custom = tagger.custom_probabilities(features, unit_langs)
    n = len(langs)
    closed = ~tagger.gate_open(features[:n], langs)
    if closed.any():
        presence = presence.copy()
        presence[np.flatnonzero(closed)] = 0.0
        for i in np.flatnonzero(closed):
            presence[piece_units[i]] = 0.0
    return presence, polarity, custom


def agree_with_evidence(
    doc: np.ndarray,
    pieces: np.ndarray,
    topics: list[dict[str, Any]],
    labels: tuple[str, ...],
    threshold: float,
    topic_weight: float,
) -> np.ndarray:
    """The document's probabilities, made consistent with its own evidence when all of it points
    the other way: where the document reads positive but every confident clause and every topic
    given (`analyze` gives those whose polarity a cue phrase fixed, such as "came an hour late")
    is negative (or the reverse), the document's distribution is multiplied by the evidence's (clauses' probabilities, and each
    topic's polarity as `topic_weight` on its label) and renormalised. Mixed or absent evidence
    leaves the document as it is. "The courier came late" with a negative delivery topic is not
    positive; "great food but late courier" stays as the model read it.

    >>> labels = ("negative", "neutral", "positive")
    >>> doc = np.array([0.3, 0.1, 0.6])
    >>> late = [{"topic": "delivery", "polarity": "negative"}]
    >>> labels[int(agree_with_evidence(doc, np.zeros((0, 3)), late, labels, 0.7, 0.8).argmax())]
    'negative'
    """
    positive, negative = labels.index("positive"), labels.index("negative")
    evidence = []
    for row in pieces:
        if row.max() >= threshold and int(row.argmax()) in (positive, negative):
            evidence.append(row)
    for topic in topics:
        if topic.get("polarity") in ("positive", "negative"):
            one_hot = np.full(len(labels), (1.0 - topic_weight) / (len(labels) - 1))
            one_hot[labels.index(topic["polarity"])] = topic_weight
            evidence.append(one_hot)
    if not evidence:
        return doc
    signs = {int(row.argmax()) for row in evidence}
    opposite = {positive: negative, negative: positive}.get(int(doc.argmax()))
    if signs != {opposite}:  # only a document read against all of its evidence is revised
        return doc
    combined = doc * np.mean(evidence, axis=0)
    return combined / combined.sum()


def _most_negative(
    plan: Sequence[Span], piece_probabilities: np.ndarray, labels: tuple[str, ...]
) -> tuple[int, int] | None:
    """The span of the piece with the highest negative probability, or None when the text is
    read as one piece (the whole text is then the evidence)."""
    if not plan or len(piece_probabilities) != len(plan):
        return None
    best = plan[int(np.argmax(piece_probabilities[:, labels.index("negative")]))]
    return best.start, best.end


def _is_mixed(piece_probabilities: np.ndarray, labels: tuple[str, ...], threshold: float) -> bool:
    if len(piece_probabilities) < 2:
        return False
    positive, negative = labels.index("positive"), labels.index("negative")
    best = piece_probabilities.argmax(1)
    confident = piece_probabilities.max(1) >= threshold
    return bool((confident & (best == positive)).any() and (confident & (best == negative)).any())


def _doc_mixed(row: np.ndarray, labels: tuple[str, ...], floor: float) -> bool:
    """The document itself gives both positive and negative at least `floor` (a one-clause text,
    e.g. a tweet, has no clauses to disagree)."""
    return bool(min(row[labels.index("positive")], row[labels.index("negative")]) >= floor)


def _topics_mixed(topics: list[dict[str, Any]]) -> bool:
    """A positive and a negative topic, each with its own evidence, in one text."""
    polarities = {t["polarity"] for t in topics}
    return {"positive", "negative"} <= polarities


def _text_topics(
    text: str,
    doc: int,
    plan: list[Span],
    pieces: list[int],
    topic_scores: tuple[np.ndarray, np.ndarray, np.ndarray],
    probabilities: np.ndarray,
    tagger: Any,
    rules: tuple[CueRule, ...],
    options: AspectOptions,
    labels: tuple[str, ...],
    lang: str,
) -> list[dict[str, Any]]:
    presence, polarity, custom = topic_scores
    whole = whole_span(text)
    finders = [doc] + pieces if options.clause_topics else [doc]
    carriers = pieces or [doc]  # the unit that carries a topic: a piece, or the whole text
    carrier_spans = plan or [whole]
    hits = cue_hits(text, carrier_spans, rules)
    replaced = [
        {t for rule in rules if rule.topic in found for t in rule.replaces if t not in found}
        for found in hits
    ]
    out = []
    thresholds = tagger.thresholds_for(lang)
    for col, name in enumerate(tagger.topics):
        score = float(presence[finders, col].max())
        hit_carriers = [k for k, found in enumerate(hits) if name in found]
        if score < thresholds[col] and not hit_carriers:
            continue
        fixed_polarity = None
        if hit_carriers:
            k = max(hit_carriers, key=lambda k: presence[carriers[k], col])
            evidence, fixed_polarity = hits[k][name]
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
        out.append(
            {
                "topic": name,
                "polarity": fixed_polarity or SENTIMENTS[int(polarity[carriers[k], col])],
                "score": round(score, 4),
                "evidence": evidence.to_dict(),
                "_cued": fixed_polarity is not None,
            }
        )
    for col, topic in enumerate(tagger.custom_topics):
        score = float(custom[finders, col].max())
        if score < (topic.min_score or tagger.matcher.threshold):
            continue
        k = int(np.argmax(custom[carriers, col]))
        sentiment = labels[int(probabilities[carriers[k]].argmax())]
        out.append(
            {
                "topic": topic.name,
                "polarity": sentiment,
                "score": round(score, 4),
                "evidence": carrier_spans[k].to_dict(),
            }
        )
    return sorted(out, key=lambda t: -t["score"])
