"""What a report shows of how a text was read: where each topic's evidence lies in the text it
quotes, and how many texts are `mixed` (a confidently positive and a confidently negative clause
or topic in one text, see `cxnlp.models.pipeline`).

A topic's evidence is `{"start", "end", "text"}`, offsets into the classified text counted in
code points (Python `str` indices). A report quotes a text cut to its first characters, so a
span is kept as far as the quote reaches; a span whose offsets do not hold its own text (a text
edited after it was classified) is looked for by its text, and left out when not found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from cxnlp.labels import MIXED_COLUMN, decode_flag
from cxnlp.report.stats import wilson_interval


def locate_evidence(text: str, evidence: object) -> tuple[int, int] | None:
    """Where `evidence` lies in `text` (a whole text or its first characters), as code point
    offsets `(start, end)` with `start < end <= len(text)`; None where it is not in `text`.

    >>> locate_evidence("Food 😋 great, courier late", {"start": 14, "end": 26, "text": "courier late"})
    (14, 26)
    >>> locate_evidence("courier late", {"start": 40, "end": 52, "text": "courier late"})  # text moved
    (0, 12)
    >>> locate_evidence("the courier came an ho", {"start": 4, "end": 30, "text": "courier came an hour late"})
    (4, 22)
    """
    if not isinstance(evidence, Mapping):
        return None
    start, end, quoted = evidence.get("start"), evidence.get("end"), evidence.get("text")
    quoted = quoted if isinstance(quoted, str) and quoted else None
    if _offset(start) and _offset(end) and start < end and start < len(text):
        shown = text[start : min(end, len(text))]
        # The quote may cut the span: what is shown of it must be the start of its text.
        if quoted is None or quoted[: len(shown)] == shown:
            return start, start + len(shown)
    if quoted is not None:
        at = text.find(quoted)
        if at >= 0:
            return at, at + len(quoted)
    return None


def _offset(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def evidence_spans(
    text: str, topics: Iterable[Mapping[str, Any]] | None, only: str | None = None
) -> list[dict[str, Any]]:
    """The evidence of `topics` (decoded cells, `cxnlp.labels.decode_topics`) that lies in
    `text`, as `{"start", "end", "topic", "polarity"}` in text order; `only` keeps one topic's.

    >>> evidence_spans("late and cold", [{"topic": "delivery", "polarity": "negative",
    ...     "evidence": {"start": 0, "end": 4, "text": "late"}}, {"topic": "price"}])
    [{'start': 0, 'end': 4, 'topic': 'delivery', 'polarity': 'negative'}]
    """
    spans = []
    for topic in topics or []:
        if only is not None and topic.get("topic") != only:
            continue
        where = locate_evidence(text, topic.get("evidence"))
        if where is not None:
            spans.append(
                {
                    "start": where[0],
                    "end": where[1],
                    "topic": topic.get("topic"),
                    "polarity": topic.get("polarity"),
                }
            )
    return sorted(spans, key=lambda s: (s["start"], s["end"]))


def mixed_numbers(flags: pd.Series, confidence: float = 0.95) -> dict[str, Any]:
    """Of `flags` (True / False / None per text), how many texts were read by clause (`read`:
    a flag set), how many of them are mixed, their share and its Wilson interval."""
    read = int(flags.notna().sum())
    mixed = int((flags == True).sum())  # noqa: E712 - a None-holding object column
    ci = wilson_interval(mixed, read, confidence)
    return {
        "read": read,
        "mixed": mixed,
        "share": mixed / read if read else None,
        "ci95": list(ci) if ci else None,
    }


def mixed_summary(data: pd.DataFrame, confidence: float = 0.95) -> dict[str, Any] | None:
    """`mixed_numbers` of the classified rows of `data` (prepared by `cxnlp.report.rows.prepare`),
    overall and per language; None when the table has no `mixed` column (classified before it).

    >>> frame = pd.DataFrame({"_ok": [True, True, True, False], "lang": ["en", "en", "fa", "en"],
    ...     "mixed": ["True", "false", "", "True"]})
    >>> s = mixed_summary(frame)
    >>> s["read"], s["mixed"], s["share"], s["by_lang"]["fa"]["read"]
    (2, 1, 0.5, 0)
    """
    if MIXED_COLUMN not in data.columns:
        return None
    ok = data[data["_ok"]]
    flags = pd.Series([decode_flag(v) for v in ok[MIXED_COLUMN]], index=ok.index, dtype=object)
    summary = mixed_numbers(flags, confidence)
    if "lang" in ok.columns:
        summary["by_lang"] = {
            str(lang): mixed_numbers(part, confidence)
            for lang, part in flags.groupby(ok["lang"], sort=True)
        }
    return summary
