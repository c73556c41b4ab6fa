"""Aggregate maintenance: what each item adds to the per-day aggregates (`daily_stats`,
`daily_topic_stats` and their totals without language and channel), summed per key in Python so
that one statement per table applies a whole batch. An update adds the item's new contribution
and takes its old one out (sign -1), so the aggregates always equal a GROUP BY over the items.

The measures are the counts and sums the statistics core (`cxnlp.report.segments`,
`cxnlp.report.scores`) computes its numbers from.

>>> deltas = Deltas()
>>> record = {"day": None, "lang": "fa", "channel": None, "sentiment": "negative",
...     "score_kind": "nps", "score": 3.0, "p_positive": 0.1, "p_neutral": 0.1, "p_negative": 0.8}
>>> deltas.add("shop", record, [("delivery", "negative")], 1.0)
>>> row = rollup_rows(deltas.stats, STAT_KEYS)[0]
>>> row["n"], row["p_negative_sum"], row["detractors"]
(1, 800000, 1)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from cxnlp.feedback.models import DIMENSION_LEN, STAT_KEYS, STAT_MEASURES
from cxnlp.feedback.records import INDEXED_DIMENSIONS
from cxnlp.labels import SENTIMENTS, probability_column
from cxnlp.report.scores import score_flags
from cxnlp.report.segments import micro

# Values per dimension and batch recorded for the dashboard's filter menus (an id-like column
# would otherwise copy itself there).
MENU_VALUES_PER_BATCH = 200
# Measures that are counts (or sums of millionths): integers in the tables.
_FLOAT_MEASURES = {"score_sum", "score_sq_sum"}
# The totals drop language and channel; the topic-channel table language and score kind.
_TOTAL_KEEP = [i for i, k in enumerate(STAT_KEYS) if k not in ("lang", "channel")]
_CHANNEL_KEEP = [i for i, k in enumerate(STAT_KEYS) if k not in ("lang", "score_kind")]


def stat_key(dataset: str, r: Mapping[str, Any]) -> tuple:
    """The `daily_stats` key of an item ("" where it has no value)."""
    return tuple(dataset if k == "dataset" else (r[k] or "") for k in STAT_KEYS)


def measures(r: Mapping[str, Any], scale: tuple[float, float] | None = None) -> np.ndarray:
    """What one item adds to each of `STAT_MEASURES`, its score read on `scale` (its dataset's
    scale of its score kind, `cxnlp.feedback.scales`; None: the kind's usual one)."""
    score, kind = r["score"], r["score_kind"]
    scored = score is not None
    promoter, detractor, satisfied = score_flags(score, kind, scale) if scored else (False,) * 3
    values = dict.fromkeys(STAT_MEASURES, 0.0)
    values["n"] = 1.0
    for s in SENTIMENTS:
        values[f"p_{s}_sum"] = micro(r[probability_column(s)])
    if scored:
        values.update(score_n=1.0, score_sum=score, score_sq_sum=score * score)
        values.update(promoters=promoter, detractors=detractor, satisfied=satisfied)
    return np.fromiter(values.values(), dtype=np.float64, count=len(STAT_MEASURES))


class Deltas:
    """Per-key changes of the daily aggregates of one batch; `scales` are the dataset's score
    scales by kind (`cxnlp.feedback.scales.declare`)."""

    def __init__(self, scales: Mapping[str, tuple[float, float] | None] | None = None) -> None:
        self.scales = dict(scales or {})
        self.stats: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(STAT_MEASURES)))
        self.topics: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(STAT_MEASURES)))
        self.removed = False

    def add(self, dataset: str, r: Mapping[str, Any], topics: Iterable[tuple], sign: float) -> None:
        """Add an item's contribution (`sign` 1) or take it out (-1); `topics` are its
        (topic, polarity) pairs."""
        key = stat_key(dataset, r)
        values = measures(r, self.scales.get(r["score_kind"])) * sign
        self.stats[key] += values
        for topic, polarity in topics:
            self.topics[(*key, topic, polarity or "")] += values
        self.removed |= sign < 0

    def tables(self) -> list[tuple[str, dict[tuple, np.ndarray]]]:
        """(table role, deltas) for the five aggregate tables: "daily", "daily_topics",
        "totals", "topic_totals", "topic_channels"."""
        return [
            ("daily", self.stats),
            ("daily_topics", self.topics),
            ("totals", _project(self.stats, _TOTAL_KEEP)),
            ("topic_totals", _project(self.topics, _TOTAL_KEEP)),
            ("topic_channels", _project(self.topics, _CHANNEL_KEEP)),
        ]


def _project(deltas: dict[tuple, np.ndarray], keep: Sequence[int]) -> dict[tuple, np.ndarray]:
    """`deltas` summed over the key positions not in `keep` (the topic and polarity stay)."""
    out: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(STAT_MEASURES)))
    for key, values in deltas.items():
        out[tuple(key[i] for i in keep) + key[len(STAT_KEYS) :]] += values
    return out


def rollup_rows(deltas: dict[tuple, np.ndarray], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The rows to add to a table keyed by `keys` (changes that cancel out are left out)."""
    if not deltas:
        return []
    key_list = list(deltas)
    matrix = np.vstack([deltas[k] for k in key_list])
    keep = matrix.any(axis=1)
    matrix = matrix[keep]
    # Counts are whole numbers held as floats: rounded back to integers, column by column.
    columns = [
        matrix[:, j].tolist()
        if name in _FLOAT_MEASURES
        else np.rint(matrix[:, j]).astype(np.int64).tolist()
        for j, name in enumerate(STAT_MEASURES)
    ]
    kept = [k for k, flag in zip(key_list, keep.tolist(), strict=True) if flag]
    return [
        {**dict(zip(keys, key, strict=True)), **dict(zip(STAT_MEASURES, values, strict=True))}
        for key, values in zip(kept, zip(*columns, strict=True), strict=True)
    ]


def emptied(deltas: dict[tuple, np.ndarray]) -> list[tuple]:
    """Keys an update may have emptied (their count went down): deleted when they reach 0."""
    return [k for k, v in deltas.items() if v[0] < 0]


def dimension_rows(dataset: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The (key, value) pairs of the filter menus seen in a batch."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        pairs = list(r["dimensions"].items())
        pairs += [(c, r[c]) for c in INDEXED_DIMENSIONS if r[c] is not None]
        for key, value in pairs:
            values = seen[key]
            if len(values) < MENU_VALUES_PER_BATCH and len(value) <= DIMENSION_LEN:
                values.add(value)
    return [
        {"dataset": dataset, "key": key[:DIMENSION_LEN], "value": value}
        for key, values in seen.items()
        for value in sorted(values)
    ]
