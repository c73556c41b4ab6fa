"""Candidate rules for `cxnlp.models.pipeline.second_pass_pieces`: which clauses of a short text
to read again on their own, scored side by side by `benchmarks/clause_pass.py --explore`.

Each rule takes what `second_pass_pieces` takes (the first pass's pooled readings) and returns
(text, piece) pairs. Signals: a contrast word in the text (`has_contrast`); a topic the pooled
pieces find and the document does not ("piece-only": pooled, a clause may take a topic the whole
text does not have); the piece that carries a found topic (its polarity is the topic's); the
document's own confidence; a pooled piece leaning away from the document.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxnlp.text.clauses import _CONCESSIVE, _CONTRAST, has_contrast


def _opens(text: str, lang: str) -> bool:
    """The piece opens with a contrast word ("but the courier ...")."""
    match = _CONTRAST.get(lang, _CONTRAST["*"]).match(text)
    return match is not None


def piece_signals(
    texts, langs, plans, piece_units, short, probabilities, features, topic_scores, tagger,
    options, labels,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per short multi-clause text: its index and per-piece signals."""
    out = []
    for i, plan in enumerate(plans):
        if not short[i]:
            continue
        units = list(piece_units[i])
        doc = probabilities[i]
        pieces = probabilities[units]
        row: dict[str, Any] = {
            "i": i,
            "n": len(plan),
            "contrast": any(has_contrast(p.text, langs[i]) for p in plan),
            "doc_conf": float(doc.max()),
            "away": [
                int(p.argmax()) != int(doc.argmax()) or float(np.abs(p - doc).sum()) > 0.3
                for p in pieces
            ],
            "opens": [_opens(p.text, langs[i]) for p in plan],
            "concessive": [_CONCESSIVE.match(p.text) is not None for p in plan],
            "closest": int(np.argmin(np.abs(pieces - doc).sum(1))),
            "farthest": int(np.argmax(np.abs(pieces - doc).sum(1))),
            "carrier": [False] * len(plan),
            "piece_only": [False] * len(plan),
            "near": [False] * len(plan),
        }
        if topic_scores is not None:
            presence = topic_scores[0]
            thresholds = np.asarray(tagger.thresholds_for(langs[i]))
            doc_found = presence[i] >= thresholds
            piece_found = presence[units] >= thresholds
            found = doc_found | piece_found.any(0)
            for col in np.flatnonzero(found):
                row["carrier"][int(np.argmax(presence[units, col]))] = True
            only = piece_found & ~doc_found
            row["piece_only"] = [bool(x) for x in only.any(1)]
            row["near"] = [bool(x) for x in (presence[units] >= 0.7 * thresholds).any(1)]
        out.append(row)
    return out


def _rule(pick):
    def rule(*args):
        chosen = []
        for row in piece_signals(*args):
            chosen += [(row["i"], k) for k in range(row["n"]) if pick(row, k)]
        return chosen

    return rule


def _before_contrast(r: dict[str, Any], k: int) -> bool:
    """The piece before one a contrast word opens, or a concessive one ("although ...")."""
    return (k + 1 < r["n"] and r["opens"][k + 1]) or r["concessive"][k]


RULES = {
    "contrast": _rule(lambda r, k: r["contrast"]),
    "piece-only": _rule(lambda r, k: r["piece_only"][k]),
    "carriers": _rule(lambda r, k: r["carrier"][k]),
    "carriers+piece-only": _rule(lambda r, k: r["carrier"][k] or r["piece_only"][k]),
    "contrast|piece-only": _rule(lambda r, k: r["contrast"] or r["piece_only"][k]),
    "contrast-carriers|piece-only": _rule(
        lambda r, k: (r["contrast"] and r["carrier"][k]) or r["piece_only"][k]
    ),
    "contrast|uncertain-doc(0.8)|piece-only": _rule(
        lambda r, k: r["contrast"] or r["doc_conf"] < 0.8 or r["piece_only"][k]
    ),
    "contrast|away|piece-only": _rule(
        lambda r, k: r["contrast"] or r["away"][k] or r["piece_only"][k]
    ),
    "(contrast|uncertain-doc(0.8))&near": _rule(
        lambda r, k: (r["contrast"] or r["doc_conf"] < 0.8) and r["near"][k]
    ),
    "contrast-before|piece-only": _rule(lambda r, k: _before_contrast(r, k) or r["piece_only"][k]),
    "contrast-not-closest|piece-only": _rule(
        lambda r, k: (r["contrast"] and k != r["closest"]) or r["piece_only"][k]
    ),
    "contrast&doc<0.9|piece-only": _rule(
        lambda r, k: (r["contrast"] and r["doc_conf"] < 0.9) or r["piece_only"][k]
    ),
    "contrast-before|contrast-carriers|piece-only": _rule(
        lambda r, k: (
            _before_contrast(r, k) or (r["contrast"] and r["carrier"][k]) or r["piece_only"][k]
        )
    ),
    "contrast-not-closest": _rule(lambda r, k: r["contrast"] and k != r["closest"]),
    "contrast-farthest|piece-only": _rule(
        lambda r, k: (r["contrast"] and k == r["farthest"]) or r["piece_only"][k]
    ),
    "contrast-not-closest|piece-only|carriers": _rule(
        lambda r, k: (r["contrast"] and k != r["closest"]) or r["piece_only"][k] or r["carrier"][k]
    ),
}
