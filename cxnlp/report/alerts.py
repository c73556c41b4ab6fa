"""Periods and alerts: the classified rows by day / week / month / quarter / year, and whether the
negative share or a topic's share rose in the last period (two-proportion tests, Holm-adjusted
within each family)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cxnlp.report.dates import parse_dates
from cxnlp.report.periods import PANDAS_FREQ, last_complete
from cxnlp.report.rows import group_labels
from cxnlp.report.stats import adjust_p_values, two_proportion_test
from cxnlp.report.topics import topic_rows

BASELINES = ("previous", "all")


def share_test(
    kind: str, column: str | None, value: str | None, x1: int, n1: int, x2: int, n2: int
) -> dict[str, Any] | None:
    """One alert test, as the report and the feedback store both run it: did the share of `kind`
    (in the group `column` = `value`, or overall) move from x1/n1 in the baseline to x2/n2 now?
    The two-proportion test's numbers, and whether the sample is too small for its normal
    approximation; None when there is nothing to test.

    >>> t = share_test("negative_share", "lang", "fa", 10, 100, 25, 100)
    >>> t["current_share"], round(t["p_value"], 4), t["small_sample"]
    (0.25, 0.0052, False)
    """
    result = two_proportion_test(x1, n1, x2, n2)
    if result is None:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    return {
        "kind": kind,
        "column": column,
        "value": value,
        "baseline_share": x1 / n1,
        "current_share": x2 / n2,
        "baseline_n": n1,
        "current_n": n2,
        **result,
        "small_sample": min(n1, n2) * min(pooled, 1 - pooled) < 5,
    }


def judge(
    headline: dict[str, Any] | None,
    families: Sequence[Sequence[dict[str, Any] | None]],
    alpha: float,
    p_adjust: str = "holm",
) -> list[dict[str, Any]]:
    """The `share_test`s with `p_adjusted` and `flagged`, as the report and the feedback store
    both judge them: the headline on its own p-value, each family's p-values adjusted together
    (`p_adjust`); a rise is flagged when significant at `alpha` after adjustment and not a small
    sample."""
    tests = []
    if headline is not None:
        tests.append({**headline, "p_adjusted": headline["p_value"]})
    for family in families:
        family = [t for t in family if t is not None]
        adjusted = adjust_p_values([t["p_value"] for t in family], p_adjust)
        for t, p in zip(family, adjusted, strict=True):
            tests.append({**t, "p_adjusted": p})
    for t in tests:
        t["flagged"] = t["difference"] > 0 and t["p_adjusted"] < alpha and not t["small_sample"]
    return tests


def periods(
    data: pd.DataFrame,
    values: pd.Series,
    date_col: str,
    period: str,
    notes: list[str],
    date_format: str | None = None,
) -> tuple[list[dict[str, str]], dict[str, pd.Index], dt.date | None]:
    """Every period from the first date to the last (empty ones included, so trends have no
    gaps), the row index of each, and the last date of the data. Dates are read by
    `cxnlp.report.dates.parse_dates` (`date_format`, or unambiguous day/month order, Jalali
    dates included)."""
    dates = parse_dates(values.reset_index(drop=True), date_format)
    if values.astype("string").str.strip().fillna("").eq("").all():
        notes.append(f"column {date_col!r} is empty: no periods")
        return [], {}, None
    if dates.notna().sum() == 0:
        examples = values.dropna().astype(str).head(3).tolist()
        raise ValueError(
            f"column {date_col!r} has no readable dates (first values {examples}); "
            "expected dates such as 2026-09-07 or 2026-09-07T10:30:00"
        )
    undated = int(dates.isna().sum())
    if undated:
        notes.append(f"{undated} rows have no readable {date_col!r} and are left out of periods")
    codes = dates.dt.to_period(PANDAS_FREQ[period])
    labels, index = [], {}
    for p in pd.period_range(codes.min(), codes.max(), freq=PANDAS_FREQ[period]):
        labels.append(
            {
                "period": str(p),
                "start": p.start_time.date().isoformat(),
                "end": p.end_time.date().isoformat(),
            }
        )
        index[str(p)] = data.index[(codes == p).to_numpy()]
    last_day = dates.max().date()
    if last_day.isoformat() < labels[-1]["end"]:
        notes.append(
            f"the last {period} ({labels[-1]['period']}) is partial: the data end on {last_day}"
        )
    return labels, index, last_day


def alerts(
    data: pd.DataFrame,
    mentions: pd.DataFrame,
    periods: list[dict[str, str]],
    index: dict[str, pd.Index],
    group_by: Sequence[str],
    alpha: float,
    baseline: str,
    notes: list[str],
    p_adjust: str = "holm",
    period: str | None = None,
    data_end: dt.date | None = None,
) -> dict[str, Any]:
    """Rises from the baseline to the last complete period with classified rows
    (`cxnlp.report.periods.last_complete`, the definition the store's alerts use too: with
    `period` and `data_end`, a period the data end inside is not tested); `last_complete` in the
    result says which period that is and why.

    Each test has `kind` (negative_share or topic_share), `column` and `value` (None for all rows;
    "topic" and the topic's name for a topic). The overall negative share is the headline test,
    judged on its own p-value. The negative share of each language and group value, and the share
    of rows mentioning each topic, form two families whose p-values are adjusted (`p_adjust`, Holm by default), so many
    small segments do not raise alarms on noise. A test with fewer than 5 expected rows on either
    side of a sample is reported, never flagged.
    """
    ok = data["_ok"]
    filled = [p["period"] for p in periods if ok.loc[index[p["period"]]].any()]
    chosen = None
    if period is not None and data_end is not None:
        starts = {
            dt.date.fromisoformat(p["start"]): p["period"] for p in periods if p["period"] in filled
        }
        chosen = last_complete(starts, period, data_end, starts.get)
        notes.append(chosen["note"])
        last = chosen["start"]
        filled = [
            label for day, label in sorted(starts.items()) if last and day.isoformat() <= last
        ]
    if len(filled) < 2:
        notes.append("alerts need classified rows in at least two complete periods")
        return {
            "current": None,
            "baseline": None,
            "alpha": alpha,
            "flagged": [],
            "tests": [],
            "last_complete": chosen,
        }
    current = filled[-1]
    before = filled[:-1] if baseline == "all" else filled[-2:-1]
    now = data.loc[index[current]]
    now = now[now["_ok"]]
    then = data.loc[index[before[0]].append([index[p] for p in before[1:]])]
    then = then[then["_ok"]]

    def test(
        kind: str, column: str | None, value: str | None, hit_then: pd.Series, hit_now: pd.Series
    ) -> dict | None:
        x1, n1, x2, n2 = int(hit_then.sum()), len(hit_then), int(hit_now.sum()), len(hit_now)
        return share_test(kind, column, value, x1, n1, x2, n2)

    headline = test(
        "negative_share",
        None,
        None,
        then["_sentiment"] == "negative",
        now["_sentiment"] == "negative",
    )
    segments, topics = [], []
    topic_rows_all = topic_rows(mentions)
    for col in [c for c in ("lang",) if c in data.columns] + list(group_by):
        labels_then, labels_now = group_labels(then[col]), group_labels(now[col])
        for value in sorted(set(labels_now)):
            segments.append(
                test(
                    "negative_share",
                    col,
                    value,
                    then.loc[labels_then == value, "_sentiment"] == "negative",
                    now.loc[labels_now == value, "_sentiment"] == "negative",
                )
            )
    for name, found in topic_rows(mentions[mentions["row"].isin(now.index)]).items():
        everywhere = topic_rows_all[name]
        topics.append(
            test(
                "topic_share",
                "topic",
                name,
                pd.Series(then.index.isin(everywhere), index=then.index),
                pd.Series(now.index.isin(found), index=now.index),
            )
        )
    tests = judge(headline, (segments, topics), alpha, p_adjust)
    return {
        "current": current,
        "baseline": before if baseline == "all" else before[0],
        "alpha": alpha,
        "flagged": sorted((t for t in tests if t["flagged"]), key=lambda t: t["p_adjusted"]),
        "tests": tests,
        "last_complete": chosen,
    }
