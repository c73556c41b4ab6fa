"""Which period alerts test: "the last complete period", one definition for the report
(`cxnlp report`) and the feedback store's alerts (the dashboard, the webhook).

A period is complete when the data reach its last day: data ending on a Wednesday leave that
week partial, and a partial period's share is tested on a few days only. Alerts therefore test the
last complete period against the one before it, and both surfaces say which one that is.

>>> import datetime as dt
>>> starts = [dt.date(2026, 8, 10), dt.date(2026, 8, 17), dt.date(2026, 8, 24)]
>>> last_complete_period(starts, "week", data_end=dt.date(2026, 8, 26))
datetime.date(2026, 8, 17)
>>> last_complete_period(starts, "week", data_end=dt.date(2026, 8, 30))
datetime.date(2026, 8, 24)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pandas as pd

from cxnlp.labels import PERIODS

# The pandas period code of each of `cxnlp.labels.PERIODS`; a week runs Monday to Sunday.
PANDAS_FREQ = dict(zip(PERIODS, ("D", "W", "M", "Q", "Y"), strict=True))


def period_end(start: dt.date, period: str) -> dt.date:
    """The last day of the `period` (day, week, month, quarter, year) holding `start`."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {list(PERIODS)}")
    return pd.Period(start, freq=PANDAS_FREQ[period]).end_time.date()


def last_complete_period(
    starts: Iterable[dt.date], period: str, data_end: dt.date
) -> dt.date | None:
    """The latest of `starts` (first days of periods with data) whose period ends on or before
    `data_end`, the last day the data cover; None when every period is partial."""
    complete = [s for s in starts if period_end(s, period) <= data_end]
    return max(complete) if complete else None


def describe_last_complete(
    start: dt.date | None, period: str, data_end: dt.date | None, partial: dt.date | None
) -> str:
    """The line both surfaces print: which period alerts test, and why (in dates, the same
    words whatever a surface calls its periods)."""
    if data_end is None:
        return "no dated data: no period to test"
    if start is None:
        return f"the data end on {data_end}: no complete {period} yet, so no {period} is tested"
    span = f"{start} to {period_end(start, period)}"
    note = f"; the {period} from {partial} is partial and not tested" if partial else ""
    return (
        f"alerts test the {period} {span}, the last complete one (the data end on {data_end}){note}"
    )


def last_complete(
    starts: Iterable[dt.date], period: str, data_end: dt.date | None, label_of: Any
) -> dict[str, Any]:
    """`last_complete_period` with its label (`label_of(start)`), the partial period after it
    if any, and the printed line: what the report and the store's alerts both return."""
    starts = sorted(set(starts))
    chosen = last_complete_period(starts, period, data_end) if data_end else None
    partial = next((s for s in reversed(starts) if chosen is None or s > chosen), None)
    if partial is not None and data_end is not None and period_end(partial, period) <= data_end:
        partial = None
    label = label_of(chosen) if chosen else None
    partial_label = label_of(partial) if partial else None
    return {
        "period": label,
        "start": chosen.isoformat() if chosen else None,
        "end": period_end(chosen, period).isoformat() if chosen else None,
        "data_end": data_end.isoformat() if data_end else None,
        "partial": partial_label,
        "note": describe_last_complete(chosen, period, data_end, partial),
    }
