"""Alerts over the store: period-over-period rises of the negative share (overall, per language
and channel) and of each topic's share, for each of the last periods against the one before.

The counts come from the per-day aggregates (no item is read unless the filter needs the items,
see `cxnlp.feedback.facts`), restricted to the periods tested; the tests, the p-value
adjustment and the flagging are the report's (`cxnlp.report.alerts.share_test` and `judge`), so
the store and `cxnlp report` judge the same counts the same way.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from cxnlp.feedback.facts import (
    KEYED,
    MISSING,
    StatsFilter,
    as_date,
    classified,
    fetch,
    period_bounds,
    period_start,
    source,
    stat_facts,
    topic_facts,
)
from cxnlp.report.alerts import judge, share_test
from cxnlp.report.periods import last_complete
from cxnlp.report.stats import P_ADJUST_METHODS

_Cell = dict[str, int]


def alerts(
    connection: Connection,
    f: StatsFilter,
    period: str = "week",
    alpha: float = 0.05,
    history: int = 12,
    segments: Sequence[str] = ("lang", "channel"),
    p_adjust: str = "holm",
) -> dict[str, Any]:
    """Rises for each of the last `history` complete periods with classified items (up to
    `cxnlp.report.periods.last_complete`'s, named in `last_complete`) against the one before,
    tested as `cxnlp report` tests its last period: the overall negative share judged on its own
    p-value; the negative share per language and channel (one family) and each topic's share of
    the items (another family) with p-values adjusted by `p_adjust` (a key of
    `cxnlp.report.stats.P_ADJUST_METHODS`). A rise is flagged when significant at `alpha` after
    adjustment and not a small sample. Each test has the two shares and sizes, the difference,
    z, p-value, adjusted p-value and Cohen's h."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if p_adjust not in P_ADJUST_METHODS:
        raise ValueError(
            f"unknown p-value adjustment {p_adjust!r}; expected one of {list(P_ADJUST_METHODS)}"
        )
    f = classified(f)
    overall = _negative_counts(connection, f, period, ())
    filled = sorted(day for day, cell in overall.items() if cell[()]["n"])
    # Only complete periods are tested, as the report does (`cxnlp.report.periods`).
    chosen = _last_complete(connection, f, filled, period)
    filled = [day for day in filled if chosen["start"] and day.isoformat() <= chosen["start"]]
    pairs = list(zip(filled, filled[1:], strict=False))[-history:]
    seg_cols = tuple(c for c in segments if c in KEYED)
    facts = stat_facts(f, connection, fine=bool(seg_cols))
    all_tests: list[dict[str, Any]] = []
    if pairs:
        # Only the periods tested are read.
        recent = StatsFilter(**{**f.__dict__, "dims": dict(f.dims)})
        recent.start = max(filter(None, (f.start, pairs[0][0])))
        by_segment = _negative_counts(connection, recent, period, seg_cols) if seg_cols else {}
        mentions = _mentions(connection, recent, period)
        for before, now in pairs:
            all_tests.extend(
                _period_tests(
                    before, now, period, overall, by_segment, mentions, seg_cols, alpha, p_adjust
                )
            )
    flagged = [t for t in all_tests if t["flagged"]]
    flagged.sort(key=lambda t: (t["period_start"], t["p_adjusted"]), reverse=True)
    return {
        "filter": f.to_dict(),
        "period": period,
        "alpha": alpha,
        "p_adjust": p_adjust,
        "source": source(facts),
        "flagged": flagged,
        "tests": all_tests,
        "last_complete": chosen,
    }


def _last_complete(
    connection: Connection, f: StatsFilter, starts: Sequence[dt.date], period: str
) -> dict[str, Any]:
    """`cxnlp.report.periods.last_complete` over the periods with items, the data ending on
    the last day with classified items under the filter."""
    fq = stat_facts(f, connection).query
    data_end = connection.execute(select(func.max(fq.c.day))).scalar()
    return last_complete(
        starts,
        period,
        as_date(data_end) if data_end is not None else None,
        lambda day: period_bounds(day, period)["period"],
    )


def _negative_counts(
    connection: Connection, f: StatsFilter, period: str, columns: Sequence[str]
) -> dict[dt.date, dict[tuple, _Cell]]:
    """Classified items and negative ones per period start, and per (column, value) of each of
    `columns` (the key () holds the period's total), from one GROUP BY."""
    dialect = connection.dialect.name
    fq = stat_facts(f, connection, fine=bool(columns)).query
    start = period_start(fq.c.day, period, dialect).label("period_start")
    keys = [start, *(fq.c[c] for c in columns), fq.c.sentiment]
    query = select(*keys, func.sum(fq.c.n).label("n")).group_by(*keys)
    out: dict[dt.date, dict[tuple, _Cell]] = defaultdict(
        lambda: defaultdict(lambda: {"n": 0, "negative": 0})
    )
    for row in fetch(connection, query):
        n = int(row["n"])
        negative = n if row["sentiment"] == "negative" else 0
        cells = out[as_date(row["period_start"])]
        for key in [(), *((c, row[c] or MISSING) for c in columns)]:
            cells[key]["n"] += n
            cells[key]["negative"] += negative
    return out


def _mentions(connection: Connection, f: StatsFilter, period: str) -> dict[tuple, int]:
    """Items mentioning each topic, per period start."""
    dialect = connection.dialect.name
    tq = topic_facts(f, connection).query
    start = period_start(tq.c.day, period, dialect).label("period_start")
    query = select(start, tq.c.topic, func.sum(tq.c.n).label("n")).group_by(start, tq.c.topic)
    mentions: dict[tuple[dt.date, str], int] = defaultdict(int)
    for row in fetch(connection, query):
        mentions[(as_date(row["period_start"]), row["topic"])] += int(row["n"])
    return mentions


def _period_tests(
    before: dt.date,
    now: dt.date,
    period: str,
    overall: dict,
    by_segment: dict,
    mentions: dict,
    seg_cols: Sequence[str],
    alpha: float,
    p_adjust: str,
) -> list[dict[str, Any]]:
    label, base = period_bounds(now, period), period_bounds(before, period)
    then, cur = overall[before][()], overall[now][()]
    headline = share_test(
        "negative_share", None, None, then["negative"], then["n"], cur["negative"], cur["n"]
    )
    segment_tests = []
    current, baseline = by_segment.get(now, {}), by_segment.get(before, {})
    for key in sorted(k for k in current if k and k[0] in seg_cols):
        a, b = baseline.get(key), current[key]
        if a is not None:
            segment_tests.append(
                share_test("negative_share", *key, a["negative"], a["n"], b["negative"], b["n"])
            )
    topic_tests = [
        share_test(
            "topic_share",
            "topic",
            topic,
            mentions.get((before, topic), 0),
            then["n"],
            mentions[(now, topic)],
            cur["n"],
        )
        for topic in sorted({t for (day, t) in mentions if day == now})
    ]
    tests = judge(headline, (segment_tests, topic_tests), alpha, p_adjust)
    where = {
        "period": label["period"],
        "period_start": label["start"],
        "baseline_period": base["period"],
    }
    return [{**where, **t} for t in tests]
