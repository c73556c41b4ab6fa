"""Aggregate maintenance: what each item adds to the per-day aggregates (`daily_stats`,
`daily_topic_stats` and their totals without language and channel, and the same per value of each
free dimension the store aggregates), summed per key for a whole batch at once (numpy), so that
one statement per table applies it. An update adds the item's new
contribution and takes its old one out (sign -1), so the aggregates always equal a GROUP BY over
the items.

The measures are the counts and sums the statistics core (`cxnlp.report.segments`,
`cxnlp.report.scores`) computes its numbers from.

>>> deltas = Deltas()
>>> record = {"day": None, "lang": "fa", "channel": None, "sentiment": "negative",
...     "score_kind": "nps", "score": 3.0, "p_positive": 0.1, "p_neutral": 0.1, "p_negative": 0.8}
>>> deltas.add("shop", record, [("delivery", "negative")], 1.0)
>>> row = dict(zip((*STAT_KEYS, *STAT_MEASURES), rollup_rows(deltas.tables()[0][1])[0]))
>>> row["n"], row["p_negative_sum"], row["detractors"]
(1, 800000, 1)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from cxnlp.feedback.models import DIMENSION_KEYS, DIMENSION_LEN, STAT_KEYS, STAT_MEASURES
from cxnlp.feedback.records import INDEXED_DIMENSIONS
from cxnlp.labels import PROBABILITY_COLUMNS
from cxnlp.report.scores import SCORE_MEASURES, score_flags
from cxnlp.report.segments import micro_array

# Values per dimension and batch recorded for the dashboard's filter menus (an id-like column
# would otherwise copy itself there).
MENU_VALUES_PER_BATCH = 200
# Measures that are counts (or sums of millionths): integers in the tables.
_FLOAT_MEASURES = {"score_sum", "score_sq_sum"}
# The totals drop language and channel; the topic-channel table language and score kind.
_TOTAL_KEEP = [i for i, k in enumerate(STAT_KEYS) if k not in ("lang", "channel")]
_CHANNEL_KEEP = [i for i, k in enumerate(STAT_KEYS) if k not in ("lang", "score_kind")]
# The per-dimension tables: the dimension's key and value, then the same.
_DIM = len(DIMENSION_KEYS)
_DIM_TOTAL_KEEP = [*range(_DIM), *(_DIM + i for i in _TOTAL_KEEP)]
_DIM_CHANNEL_KEEP = [*range(_DIM), *(_DIM + i for i in _CHANNEL_KEEP)]
# An item's key columns after the dataset (the first key).
assert STAT_KEYS[0] == "dataset"
_KEY_VALUES = itemgetter(*STAT_KEYS[1:])
_PROBABILITIES = itemgetter(*PROBABILITY_COLUMNS)
# Where each measure sits in a row of `STAT_MEASURES`.
_AT = {m: STAT_MEASURES.index(m) for m in STAT_MEASURES}
_FLAGS = [_AT[m] for m in ("promoters", "detractors", "satisfied")]
assert set(STAT_MEASURES) == {"n", *(f"{c}_sum" for c in PROBABILITY_COLUMNS), *SCORE_MEASURES}


def stat_key(dataset: str, r: Mapping[str, Any]) -> tuple:
    """The `daily_stats` key of an item ("" where it has no value)."""
    return (dataset, *(v or "" for v in _KEY_VALUES(r)))


@dataclass
class Rollup:
    """Changes of one aggregate table: its keys, and per key the change of each of
    `STAT_MEASURES` (a row of `sums`)."""

    keys: list[tuple]
    sums: np.ndarray


def _sum_by(codes: Sequence[int], size: int, values: np.ndarray) -> np.ndarray:
    """Rows of `values` added up per code, each code's rows in their order (as one += per row
    would: the same floating-point sums)."""
    codes = np.asarray(codes, dtype=np.intp)
    # bincount adds each code's weights in their order, as np.add.at does, ten times faster.
    sums = [
        np.bincount(codes, weights=values[:, j], minlength=size) for j in range(values.shape[1])
    ]
    return np.column_stack(sums)


def _codes(keys: Iterable[tuple]) -> tuple[list[int], list[tuple]]:
    """Each key's number in the order keys first appear, and the distinct keys in that order."""
    index: dict[tuple, int] = {}
    codes = [index.setdefault(k, len(index)) for k in keys]
    return codes, list(index)


class Deltas:
    """Per-key changes of the daily aggregates of one batch; `scales` are the dataset's score
    scales by kind (`cxnlp.feedback.scales.declare`), `dimension_keys` the free dimensions that
    have per-dimension aggregates (`cxnlp.feedback.dimension_rollups.aggregated_keys`). `add`
    records each item's part; `tables` sums them up per key."""

    def __init__(
        self,
        scales: Mapping[str, tuple[float, float] | None] | None = None,
        dimension_keys: Iterable[str] = (),
    ) -> None:
        self.scales = dict(scales or {})
        self.dimension_keys = frozenset(dimension_keys)
        self._dimensions: list[tuple[int, str, str]] = []  # (position, key, value)
        self._keys: list[tuple] = []
        self._probabilities: list[tuple] = []
        self._scores: list[tuple] = []  # (position, score, promoter, detractor, satisfied)
        self._signs: list[float] = []
        self._topics: list[tuple[int, str, str]] = []  # (position, topic, polarity)
        self.removed = False

    def add(self, dataset: str, r: Mapping[str, Any], topics: Iterable[tuple], sign: float) -> None:
        """Add an item's contribution (`sign` 1) or take it out (-1); `topics` are its
        (topic, polarity) pairs."""
        at = len(self._keys)
        self._keys.append(stat_key(dataset, r))
        self._probabilities.append(_PROBABILITIES(r))
        score = r["score"]
        if score is not None:
            kind = r["score_kind"]
            self._scores.append((at, score, *score_flags(score, kind, self.scales.get(kind))))
        self._signs.append(sign)
        self._topics.extend((at, topic, polarity or "") for topic, polarity in topics)
        if self.dimension_keys:
            keep = self.dimension_keys
            self._dimensions.extend(
                (at, key, value) for key, value in r["dimensions"].items() if key in keep
            )
        self.removed |= sign < 0

    def _measures(self) -> np.ndarray:
        """What each added item contributes to each of `STAT_MEASURES` (`cxnlp.report.segments`
        and `cxnlp.report.scores.score_flags` decide what counts)."""
        values = np.zeros((len(self._keys), len(STAT_MEASURES)))
        values[:, _AT["n"]] = 1.0
        p = np.array(self._probabilities, dtype=np.float64).reshape(-1, len(PROBABILITY_COLUMNS))
        for j, column in enumerate(PROBABILITY_COLUMNS):
            values[:, _AT[f"{column}_sum"]] = micro_array(p[:, j])
        if self._scores:
            scored = np.array(self._scores, dtype=np.float64)
            rows, score = scored[:, 0].astype(np.intp), scored[:, 1]
            values[rows, _AT["score_n"]] = 1.0
            values[rows, _AT["score_sum"]] = score
            values[rows, _AT["score_sq_sum"]] = score * score
            values[np.ix_(rows, _FLAGS)] = scored[:, 2:]
        return values * np.asarray(self._signs)[:, None]

    def tables(self) -> list[tuple[str, Rollup]]:
        """(table role, changes) for the nine aggregate tables: "daily", "daily_topics",
        "totals", "topic_totals", "topic_channels", and per dimension value "dimension_daily",
        "dimension_totals", "dimension_topic_totals", "dimension_topic_channels"."""
        values = self._measures()
        stats = _rollup(self._keys, values)
        topics = _rollup(
            ((*self._keys[at], topic, polarity) for at, topic, polarity in self._topics),
            values,
            [t[0] for t in self._topics],
        )
        tables = [
            ("daily", stats),
            ("daily_topics", topics),
            ("totals", _project(stats, _TOTAL_KEEP)),
            ("topic_totals", _project(topics, _TOTAL_KEEP)),
            ("topic_channels", _project(topics, _CHANNEL_KEEP)),
        ]
        if not self.dimension_keys:
            return tables
        dims = _rollup(
            ((key, value, *self._keys[at]) for at, key, value in self._dimensions),
            values,
            [d[0] for d in self._dimensions],
        )
        # Each mention once per aggregated dimension of its item.
        of_item: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for at, key, value in self._dimensions:
            of_item[at].append((key, value))
        mentions = [(at, t, p, pair) for at, t, p in self._topics for pair in of_item.get(at, ())]
        dim_topics = _rollup(
            ((*pair, *self._keys[at], t, p) for at, t, p, pair in mentions),
            values,
            [m[0] for m in mentions],
        )
        tail = _DIM + len(STAT_KEYS)
        return [
            *tables,
            ("dimension_daily", dims),
            ("dimension_totals", _project(dims, _DIM_TOTAL_KEEP, tail)),
            ("dimension_topic_totals", _project(dim_topics, _DIM_TOTAL_KEEP, tail)),
            ("dimension_topic_channels", _project(dim_topics, _DIM_CHANNEL_KEEP, tail)),
        ]


def _rollup(
    keys: Iterable[tuple], values: np.ndarray, positions: Sequence[int] | None = None
) -> Rollup:
    """The rows `positions` of `values` (default all) summed per key (`keys`: one per row)."""
    codes, distinct = _codes(keys)
    if positions is not None:
        values = values[np.asarray(positions, dtype=np.intp)]
    return Rollup(distinct, _sum_by(codes, len(distinct), values))


def _project(rollup: Rollup, keep: Sequence[int], tail: int = len(STAT_KEYS)) -> Rollup:
    """`rollup` summed over the key positions before `tail` not in `keep` (the topic and
    polarity, after `tail`, stay)."""
    codes, keys = _codes(tuple(key[i] for i in keep) + key[tail:] for key in rollup.keys)
    return Rollup(keys, _sum_by(codes, len(keys), rollup.sums))


def rollup_rows(rollup: Rollup) -> list[tuple]:
    """The rows to add to the table of `rollup`: its key, then the `STAT_MEASURES` (changes
    that cancel out are left out)."""
    if not rollup.keys:
        return []
    keep = rollup.sums.any(axis=1)
    matrix = rollup.sums[keep]
    # Counts are whole numbers held as floats: rounded back to integers, column by column.
    columns = [
        matrix[:, j].tolist()
        if name in _FLOAT_MEASURES
        else np.rint(matrix[:, j]).astype(np.int64).tolist()
        for j, name in enumerate(STAT_MEASURES)
    ]
    kept = [k for k, flag in zip(rollup.keys, keep.tolist(), strict=True) if flag]
    return [(*key, *values) for key, values in zip(kept, zip(*columns, strict=True), strict=True)]


def emptied(rollup: Rollup) -> list[tuple]:
    """Keys an update may have emptied (their count went down): deleted when they reach 0."""
    return [
        k for k, down in zip(rollup.keys, (rollup.sums[:, 0] < 0).tolist(), strict=True) if down
    ]


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
