"""The learned urgency head: a logistic regression over what the predict pipeline reads of a text
and what the urgency cues find in it, with a decision threshold per language.

The cue lists of `cxnlp/data/urgency_cues.yaml` find the phrasings they were written for; on texts
they were not written against they miss about half the urgent ones (`training/eval/README.md`).
The head reads, per text (`urgency_signals`, in `UrgencyHead.signal_names()` order):

- the `mixed` signals of `cxnlp.models.mixed` (`SIGNALS`): the document's sentiment probabilities,
  its clause pieces' strongest positive and negative, how many pieces, the topics' mixed flag, the
  language one-hot;
- one flag per cue category (`cxnlp.text.urgency.cue_categories`, `cue_<category>`) that
  `find_cues` matched, and how many categories matched (`cues`);

and then the document's pooled encoder features (the rows the topic head reads). It is a
`cxnlp.models.linear_head.LinearHead`, like the `mixed` head. A text of a language the head
covers is urgent when the head's probability reaches the language's threshold, or (where
`or_rule[lang]`, chosen by measurement when it was fitted) when a cue matched; see
`cxnlp.text.urgency.score_urgency` for the score and the evidence (a head-only decision cites the
text's most negative clause with `cue: "model"`). `cxnlp train-urgency`
(`training/urgency_head.py`) fits it; it is stored as `urgency/model.safetensors` and
`urgency/config.json` in the model directory and loaded with the model.

>>> names = UrgencyHead.signal_names()
>>> names[-6:]
('cue_callback', 'cue_churn', 'cue_complaint', 'cue_fraud', 'cue_safety', 'cues')
>>> width = len(names)
>>> head = UrgencyHead(0, np.zeros(width), np.ones(width), np.zeros(width), 0.0,
...                    thresholds={"en": 0.4}, or_rule={"en": True})
>>> head.judge(np.zeros(width), None, "en").probability  # sigmoid(0)
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cxnlp.models.linear_head import LinearHead
from cxnlp.models.mixed import SIGNALS
from cxnlp.text.urgency import LearnedUrgency, UrgencyRules, cue_categories


def urgency_signal_names(rules: UrgencyRules | None = None) -> tuple[str, ...]:
    """The urgency head's signal names: the `mixed` signals, then a flag per cue category and the
    number of categories matched."""
    return (*SIGNALS, *(f"cue_{c}" for c in cue_categories(rules)), "cues")


def urgency_signals(
    sentiment: np.ndarray,
    cues: Sequence[dict[str, Any]],
    rules: UrgencyRules | None = None,
) -> np.ndarray:
    """One text's urgency signals: `sentiment` its `mixed` signals (`cxnlp.models.mixed.SIGNALS`
    order) and `cues` what `find_cues` found in it (under `rules`, the shipped ones by default).

    >>> s = urgency_signals(np.zeros(len(SIGNALS)), [{"cue": "churn"}, {"cue": "churn"}])
    >>> dict(zip(urgency_signal_names(), s.tolist()))["cue_churn"], s[-1]
    (1.0, 1.0)
    """
    found = {e["cue"] for e in cues}
    flags = [float(c in found) for c in cue_categories(rules)]
    return np.concatenate(
        [np.asarray(sentiment, dtype=np.float64).reshape(-1), flags, [float(len(found))]]
    )


class UrgencyHead(LinearHead):
    """The urgency head (`cxnlp.models.linear_head.LinearHead` over `urgency_signal_names()`):
    a language without a threshold keeps the cues alone; `or_rule[lang]` makes a cue match urgent
    whatever the head says."""

    NAME = "urgency"
    VERB = "cxnlp train-urgency"

    @classmethod
    def signal_names(cls) -> tuple[str, ...]:
        return urgency_signal_names()

    def judge(
        self,
        signals: np.ndarray,
        features: np.ndarray | None,
        lang: str,
        span: tuple[int, int] | None = None,
    ) -> LearnedUrgency:
        """What the head says of one text of a language it covers, for `score_urgency`; `span`
        is what to cite when the head alone makes the text urgent (None: the whole text)."""
        return LearnedUrgency(
            probability=float(self.probability(signals, features)[0]),
            threshold=self.thresholds[lang],
            or_cues=self.or_rule.get(lang, True),
            span=span,
        )
