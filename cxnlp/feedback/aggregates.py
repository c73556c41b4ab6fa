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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

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


# A key column of a batch's rows: its distinct values, and each row's number among them.
Column = tuple[np.ndarray, np.ndarray]


def _column(values: Sequence[Any]) -> Column:
    """`values` as a key column: distinct values in the order they first appear, and codes."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    return np.asarray(uniques, dtype=object), codes.astype(np.intp, copy=False)


def _take(column: Column, rows: np.ndarray) -> Column:
    return column[0], column[1][rows]


@dataclass
class Rollup:
    """Changes of one aggregate table, one row per key: the key as columns (each its distinct
    values and one code per key, in the table's primary key order), and per key the change of
    each of `STAT_MEASURES` (a row of `sums`)."""

    columns: list[Column]
    sums: np.ndarray

    def __len__(self) -> int:
        return len(self.sums)

    @property
    def keys(self) -> list[tuple]:
        """The keys as tuples, in order."""
        if not len(self):
            return []
        return list(zip(*(values[codes].tolist() for values, codes in self.columns), strict=True))

    def where_first(self, allowed: Iterable[Any]) -> Rollup:
        """The keys whose first column (a per-dimension table's `dim_key`) is in `allowed`."""
        values, codes = self.columns[0]
        allowed = set(allowed)
        keep = np.array([v in allowed for v in values.tolist()], dtype=bool)[codes]
        rows = np.flatnonzero(keep)
        return Rollup([_take(c, rows) for c in self.columns], self.sums[rows])


def _group(columns: Sequence[Column]) -> tuple[np.ndarray, int]:
    """Each row's group (rows with equal values in every column), numbered in the order groups
    first appear, and how many there are."""
    rows = len(columns[0][1])
    combined = np.zeros(rows, dtype=np.int64)
    size = 1
    for values, codes in columns:
        if len(values) > 1:
            # Renumbered after each column: the numbers stay below rows * len(values).
            combined, firsts = pd.factorize(combined * len(values) + codes)
            size = len(firsts)
    if size == 1 and rows:
        return np.zeros(rows, dtype=np.intp), 1
    return combined.astype(np.intp, copy=False), size if rows else 0


def _sum_by(codes: np.ndarray, size: int, values: np.ndarray) -> np.ndarray:
    """Rows of `values` added up per code, each code's rows in their order (as one += per row
    would: the same floating-point sums)."""
    # bincount adds each code's weights in their order, as np.add.at does, ten times faster.
    sums = [
        np.bincount(codes, weights=values[:, j], minlength=size) for j in range(values.shape[1])
    ]
    return np.column_stack(sums) if sums else np.zeros((size, 0))


def _rollup(columns: Sequence[Column], values: np.ndarray) -> Rollup:
    """`values` (one row per row of `columns`) summed per key; keys in the order they first
    appear."""
    if not len(values):
        return Rollup([(c[0], c[1][:0]) for c in columns], np.zeros((0, values.shape[1])))
    codes, size = _group(columns)
    _, first = np.unique(codes, return_index=True)
    return Rollup([_take(c, first) for c in columns], _sum_by(codes, size, values))


def _project(rollup: Rollup, keep: Sequence[int], tail: int = len(STAT_KEYS)) -> Rollup:
    """`rollup` summed over the key positions before `tail` not in `keep` (the topic and
    polarity, after `tail`, stay)."""
    columns = [rollup.columns[i] for i in keep] + rollup.columns[tail:]
    return _rollup(columns, rollup.sums)


class Deltas:
    """Per-key changes of the daily aggregates of one batch; `scales` are the dataset's score
    scales by kind (`cxnlp.feedback.scales.declare`), `dimension_keys` the free dimensions that
    have per-dimension aggregates (`cxnlp.feedback.dimension_rollups.aggregated_keys`; None:
    every key, to be narrowed by `Rollup.where_first`). `add` records items' parts; `tables`
    sums them up per key, for all items at once (numpy)."""

    def __init__(
        self,
        scales: Mapping[str, tuple[float, float] | None] | None = None,
        dimension_keys: Iterable[str] | None = (),
    ) -> None:
        self.scales = dict(scales or {})
        self.dimension_keys = None if dimension_keys is None else frozenset(dimension_keys)
        self._keys: list[list[Any]] = [[] for _ in STAT_KEYS]  # per item, column by column
        self._probabilities: list[tuple] = []
        self._scores: list[tuple] = []  # (position, score, promoter, detractor, satisfied)
        self._signs: list[float] = []
        self._topics: tuple[list[int], list[str], list[str]] = ([], [], [])  # position, name, pol.
        self._dimensions: tuple[list[int], list[str], list[str]] = ([], [], [])  # pos., key, value
        self.removed = False

    def __len__(self) -> int:
        return len(self._signs)

    def add(self, dataset: str, r: Mapping[str, Any], topics: Iterable[tuple], sign: float) -> None:
        """Add an item's contribution (`sign` 1) or take it out (-1); `topics` are its
        (topic, polarity) pairs."""
        self.add_all(dataset, [r], [topics], sign)

    def add_all(
        self,
        dataset: str,
        records: Sequence[Mapping[str, Any]],
        topics: Iterable[Iterable[tuple]],
        sign: float,
    ) -> None:
        """`add` for each of `records` in turn, `topics` holding each one's (topic, polarity)
        pairs."""
        at = len(self._signs)
        self._keys[0].extend([dataset] * len(records))
        for column, name in zip(self._keys[1:], STAT_KEYS[1:], strict=True):
            column.extend([r[name] or "" for r in records])
        self._probabilities.extend(map(_PROBABILITIES, records))
        scales = self.scales
        self._scores.extend(
            (
                at + i,
                r["score"],
                *score_flags(r["score"], r["score_kind"], scales.get(r["score_kind"])),
            )
            for i, r in enumerate(records)
            if r["score"] is not None
        )
        self._signs.extend([sign] * len(records))
        positions, names, polarities = self._topics
        for i, pairs in enumerate(topics, start=at):
            for topic, polarity in pairs:
                positions.append(i)
                names.append(topic)
                polarities.append(polarity or "")
        keep = self.dimension_keys
        if keep is None or keep:
            positions, keys, values = self._dimensions
            for i, r in enumerate(records, start=at):
                for key, value in r["dimensions"].items():
                    if keep is None or key in keep:
                        positions.append(i)
                        keys.append(key)
                        values.append(value)
        self.removed |= sign < 0 and len(records) > 0

    def _measures(self) -> np.ndarray:
        """What each added item contributes to each of `STAT_MEASURES` (`cxnlp.report.segments`
        and `cxnlp.report.scores.score_flags` decide what counts)."""
        values = np.zeros((len(self._signs), len(STAT_MEASURES)))
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
        items = [_column(column) for column in self._keys]
        stats = _rollup(items, values)
        positions, names, polarities = self._topics
        mentioned = np.asarray(positions, dtype=np.intp)
        topic_keys = [_column(names), _column(polarities)]
        topics = _rollup([*(_take(c, mentioned) for c in items), *topic_keys], values[mentioned])
        tables = [
            ("daily", stats),
            ("daily_topics", topics),
            ("totals", _project(stats, _TOTAL_KEEP)),
            ("topic_totals", _project(topics, _TOTAL_KEEP)),
            ("topic_channels", _project(topics, _CHANNEL_KEEP)),
        ]
        if self.dimension_keys is not None and not self.dimension_keys:
            return tables
        at, keys, dim_values = self._dimensions
        pairs = np.asarray(at, dtype=np.intp)
        pair_keys = [_column(keys), _column(dim_values)]
        dims = _rollup([*pair_keys, *(_take(c, pairs) for c in items)], values[pairs])
        # Each mention once per aggregated dimension of its item, in the order of the mentions
        # and, within one, of the item's dimensions (an item's pairs are added together).
        per_item = np.bincount(pairs, minlength=len(values))
        first_pair = np.cumsum(per_item) - per_item
        repeats = per_item[mentioned]
        mention = np.repeat(np.arange(len(mentioned)), repeats)
        within = np.arange(len(mention)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        pair = first_pair[mentioned][mention] + within
        item = mentioned[mention]
        dim_topics = _rollup(
            [
                *(_take(c, pair) for c in pair_keys),
                *(_take(c, item) for c in items),
                *(_take(c, mention) for c in topic_keys),
            ],
            values[item],
        )
        tail = _DIM + len(STAT_KEYS)
        return [
            *tables,
            ("dimension_daily", dims),
            ("dimension_totals", _project(dims, _DIM_TOTAL_KEEP, tail)),
            ("dimension_topic_totals", _project(dim_topics, _DIM_TOTAL_KEEP, tail)),
            ("dimension_topic_channels", _project(dim_topics, _DIM_CHANNEL_KEEP, tail)),
        ]


def rollup_rows(
    rollup: Rollup, formats: Mapping[int, Callable[[Any], Any]] | None = None
) -> list[tuple]:
    """The rows to add to the table of `rollup`: its key, then the `STAT_MEASURES` (changes
    that cancel out are left out). `formats` turns the values of key column i into what the
    database takes (each distinct value once)."""
    if not len(rollup):
        return []
    keep = rollup.sums.any(axis=1)
    rows = np.flatnonzero(keep)
    matrix = rollup.sums[rows]
    formats = formats or {}
    keys = []
    for i, (values, codes) in enumerate(rollup.columns):
        if i in formats:
            values = np.array([formats[i](v) for v in values.tolist()] or [None], dtype=object)
        keys.append(values[codes[rows]].tolist())
    # Counts are whole numbers held as floats: rounded back to integers, column by column.
    measures = [
        matrix[:, j].tolist()
        if name in _FLOAT_MEASURES
        else np.rint(matrix[:, j]).astype(np.int64).tolist()
        for j, name in enumerate(STAT_MEASURES)
    ]
    return list(zip(*keys, *measures, strict=True))


def emptied(rollup: Rollup) -> list[tuple]:
    """Keys an update may have emptied (their count went down): deleted when they reach 0."""
    if not len(rollup):
        return []
    down = np.flatnonzero(rollup.sums[:, 0] < 0)
    return list(
        zip(*(values[codes[down]].tolist() for values, codes in rollup.columns), strict=True)
    )


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
