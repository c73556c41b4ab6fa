"""The learned `mixed` head: a logistic regression over what the predict pipeline already reads
of a text, with a decision threshold per language.

A text is `mixed` when it both praises and complains. The hand rules of `cxnlp.models.pipeline`
(`MIXED_RULES`) need two confident clauses of opposite polarity, a positive and a negative topic,
or a document floor; a tweet has one clause and no topic, so they rarely fire there. The head reads,
per text (`mixed_signals`, in `SIGNALS` order):

- the document's probabilities (in `SENTIMENTS` order) and the smaller of its positive and negative;
- its clause pieces' strongest positive and strongest negative probability, the smaller of the
  two, and how many pieces there are (log(1 + n); 0 for a text read whole);
- whether its topics carry a positive and a negative one;
- its language, one-hot over `LANGS`;

and then the document's pooled encoder features (the rows the topic head reads), the first
`n_features` of them. Standardised, weighted, summed: `probability = sigmoid(w . z + b)` (the
shared `cxnlp.models.linear_head.LinearHead`, which the urgency head is one of too). A text is
mixed at `probability >= thresholds[lang]` (or, where `or_rule[lang]`, also when the language's
rule fires); a language without a threshold keeps the rules. `cxnlp train-mixed`
(`training/mixed_head.py`) fits it and chooses the thresholds on dev rows; it is stored as
`mixed/model.safetensors` and `mixed/config.json` in the model directory.

>>> head = MixedHead(0, np.zeros(len(SIGNALS)), np.ones(len(SIGNALS)), np.zeros(len(SIGNALS)), 0.0,
...                  thresholds={"en": 0.4})
>>> head.decide(np.zeros(len(SIGNALS)), None, "en", rule=False)  # sigmoid(0) = 0.5 >= 0.4
True
>>> head.covers("fa")
False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.models.linear_head import LinearHead

# The per-text signals the head reads before the document's features, in this order.
SIGNALS: tuple[str, ...] = (
    *(f"doc_{label}" for label in SENTIMENTS),
    "doc_both",
    "piece_positive",
    "piece_negative",
    "piece_both",
    "pieces",
    "topics_mixed",
    *(f"lang_{lang}" for lang in LANGS),
)


@dataclass
class MixedSignals:
    """What `cxnlp.models.pipeline.analyze` read of one text for `mixed`: `signals` (in `SIGNALS`
    order), the document's pooled features (None for a model without an encoder) and the
    decision of the language's rule."""

    signals: np.ndarray
    features: np.ndarray | None
    rule: bool


def mixed_signals(
    doc: np.ndarray,
    pieces: np.ndarray,
    topics_mixed: bool,
    lang: str,
    labels: Sequence[str],
) -> np.ndarray:
    """The `SIGNALS` of one text: `doc` its document probabilities and `pieces` its clause
    pieces' (rows), both in `labels` order; `topics_mixed` whether it has a positive and a
    negative topic.

    >>> labels = ("negative", "neutral", "positive")
    >>> s = mixed_signals(np.array([0.3, 0.2, 0.5]), np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]),
    ...                   False, "en", labels)
    >>> dict(zip(SIGNALS, s.round(3).tolist()))["piece_both"]
    0.8
    """
    positive, negative = labels.index("positive"), labels.index("negative")
    doc = np.asarray(doc, dtype=np.float64)
    ordered = [float(doc[labels.index(label)]) for label in SENTIMENTS]
    pieces = np.asarray(pieces, dtype=np.float64).reshape(-1, len(labels))
    strongest_positive = float(pieces[:, positive].max()) if len(pieces) else 0.0
    strongest_negative = float(pieces[:, negative].max()) if len(pieces) else 0.0
    return np.array(
        [
            *ordered,
            min(float(doc[positive]), float(doc[negative])),
            strongest_positive,
            strongest_negative,
            min(strongest_positive, strongest_negative),
            float(np.log1p(len(pieces))),
            float(topics_mixed),
            *(float(lang == known) for known in LANGS),
        ]
    )


class MixedHead(LinearHead):
    """The `mixed` head (`cxnlp.models.linear_head.LinearHead` over `SIGNALS`): a language
    without a threshold keeps the rules; `or_rule[lang]` makes the language's rule fire too
    (chosen on dev by training)."""

    SIGNALS = SIGNALS
    NAME = "mixed"
    VERB = "cxnlp train-mixed"

    def decide(
        self, signals: np.ndarray, features: np.ndarray | None, lang: str, rule: bool
    ) -> bool:
        """`mixed` for one text of a language the head covers: its probability at or above the
        language's threshold, or (where `or_rule[lang]`) the rule's own decision `rule`."""
        if self.or_rule.get(lang) and rule:
            return True
        return bool(self.probability(signals, features)[0] >= self.thresholds[lang])
