"""Topic rollups for `cxnlp.report.summary`: the `topics` column of a classified export (see
`cxnlp.labels` for the cell) counted by volume and by negative share."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import SENTIMENTS, TOPICS_COLUMN, decode_topics
from cxnlp.report.evidence import evidence_spans
from cxnlp.report.stats import wilson_interval

EXAMPLE_CHARS = 280


def mentions_table(data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per (row, topic) of the classified rows of `data` (prepared by `cxnlp.report.rows.prepare`):
    columns `row` (the index label), `topic`, `polarity`; and the number of unparsable cells."""
    rows, names, polarities, bad = [], [], [], 0
    raw = (
        data[TOPICS_COLUMN] if TOPICS_COLUMN in data.columns else pd.Series(None, index=data.index)
    )
    ok = data["_ok"].to_numpy()
    for row, value, sentiment, keep in zip(data.index, raw, data["_sentiment"], ok, strict=True):
        if not keep:
            continue
        parsed = decode_topics(value, sentiment)
        if parsed is None:
            bad += 1
            continue
        for t in parsed:
            rows.append(row)
            names.append(t["topic"])
            polarities.append(t["polarity"])
    table = pd.DataFrame(
        {"row": np.asarray(rows, dtype=np.int64), "topic": names, "polarity": polarities}
    )
    return table, bad


def row_topics(data: pd.DataFrame, row: Any) -> list[dict[str, Any]]:
    """The decoded topics of one row of `data` (none when the cell is missing or unparsable)."""
    if TOPICS_COLUMN not in data.columns:
        return []
    return decode_topics(data.at[row, TOPICS_COLUMN], data.at[row, "_sentiment"]) or []


def topic_rows(mentions: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows that mention each topic."""
    return {name: group.to_numpy() for name, group in mentions.groupby("topic")["row"]}


def topic_summary(
    data: pd.DataFrame,
    mentions: pd.DataFrame,
    text_col: str,
    confidence: float,
    min_mentions: int,
    examples: int,
) -> dict[str, Any]:
    """Every topic of the classified rows of `data`: mentions, share of classified rows, polarity
    split, negative share, and its most negative example texts (`examples`, each cut to
    `EXAMPLE_CHARS`) with where the topic's evidence lies in each (`example_evidence`, a list of
    `cxnlp.report.evidence.evidence_spans` per example)."""
    n = int(data["_ok"].sum())
    counts = (
        mentions.groupby(["topic", "polarity"]).size().unstack(fill_value=0)
        if len(mentions)
        else pd.DataFrame()
    ).reindex(columns=list(SENTIMENTS), fill_value=0)
    negative_rows = topic_rows(mentions[mentions["polarity"] == "negative"])
    items = []
    for name, polarity in counts.iterrows():
        item = topic_numbers(name, {s: int(polarity[s]) for s in SENTIMENTS}, n, confidence)
        if text_col in data.columns and examples > 0 and name in negative_rows:
            rows = data.loc[negative_rows[name]].nlargest(examples, "_p_negative")
            item["examples"] = [str(t)[:EXAMPLE_CHARS] for t in rows[text_col]]
            item["example_evidence"] = [
                evidence_spans(quote, row_topics(data, row), only=name)
                for quote, row in zip(item["examples"], rows.index, strict=True)
            ]
        items.append(item)
    ranked = rank_topics(items, min_mentions)
    return {
        "rows_with_topics": int(mentions["row"].nunique()),
        **ranked,
    }


def topic_numbers(
    name: str, polarity: dict[str, int], n: int, confidence: float = 0.95
) -> dict[str, Any]:
    """One topic's numbers from its mentions per polarity among `n` classified items: share of
    the items (Wilson interval), polarity split, negative share of its mentions (interval)."""
    mentioned = sum(polarity.values())
    share_ci = wilson_interval(mentioned, n, confidence) if n and mentioned <= n else None
    negative_ci = wilson_interval(polarity["negative"], mentioned, confidence)
    return {
        "topic": name,
        "mentions": mentioned,
        "share": mentioned / n if n else None,
        "ci95": list(share_ci) if share_ci else None,
        "polarity": polarity,
        "negative_share": polarity["negative"] / mentioned if mentioned else None,
        "negative_ci95": list(negative_ci) if negative_ci else None,
    }


def rank_topics(items: list[dict[str, Any]], min_mentions: int) -> dict[str, Any]:
    """`items` (of `topic_numbers`) sorted by volume, and the topic names ranked by volume and by
    negative share (those with at least `min_mentions`)."""
    items.sort(key=lambda i: (-i["mentions"], i["topic"]))
    by_negative = sorted(
        (i for i in items if i["mentions"] >= min_mentions and i["mentions"]),
        key=lambda i: (-i["negative_share"], -i["mentions"], i["topic"]),
    )
    return {
        "items": items,
        "ranked_by_volume": [i["topic"] for i in items],
        "ranked_by_negative_share": [i["topic"] for i in by_negative],
        "min_mentions_for_negative_rank": min_mentions,
    }
