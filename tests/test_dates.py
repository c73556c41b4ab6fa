"""Date columns (issue 15): one day/month order per column, ambiguity refused, Jalali dates read."""

from __future__ import annotations

import pandas as pd
import pytest

from cxnlp.report.dates import AmbiguousDateError, parse_dates


def test_day_month_order_is_decided_for_the_whole_column():
    got = parse_dates(pd.Series(["01/10/2026", "13/10/2026"]))
    assert got.dt.strftime("%Y-%m-%d").tolist() == ["2026-10-01", "2026-10-13"]
    got = parse_dates(pd.Series(["10/01/2026", "10/13/2026"]))
    assert got.dt.strftime("%Y-%m-%d").tolist() == ["2026-10-01", "2026-10-13"]


def test_ambiguous_or_contradictory_orders_are_refused():
    with pytest.raises(AmbiguousDateError, match="--date-format"):
        parse_dates(pd.Series(["01/10/2026", "02/11/2026"]))
    with pytest.raises(AmbiguousDateError, match="both day-first and month-first"):
        parse_dates(pd.Series(["13/01/2026", "01/13/2026"]))


def test_an_explicit_format_settles_it():
    got = parse_dates(pd.Series(["01/10/2026", "02/11/2026"]), "%m/%d/%Y")
    assert got.dt.strftime("%Y-%m-%d").tolist() == ["2026-01-10", "2026-02-11"]


def test_jalali_dates_in_ascii_and_persian_digits():
    got = parse_dates(pd.Series(["1405/07/10", "۱۴۰۵/۰۷/۱۱", "1405-01-01 10:30"]))
    assert got.dt.strftime("%Y-%m-%d").tolist() == ["2026-10-02", "2026-10-03", "2026-03-21"]


def test_iso_dates_still_read():
    got = parse_dates(pd.Series(["2026-01-05", "2026-01-06T10:00:00", None]))
    assert got.notna().tolist() == [True, True, False]


def test_report_cli_takes_a_date_format(tmp_path, capsys):
    from cxnlp.cli import main

    frame = pd.DataFrame(
        {
            "text": ["a", "b", "c"],
            "sentiment": ["positive", "negative", "neutral"],
            "p_positive": [0.8, 0.1, 0.2],
            "p_neutral": [0.1, 0.1, 0.6],
            "p_negative": [0.1, 0.8, 0.2],
            "confidence": [0.8, 0.8, 0.6],
            "lang": ["en"] * 3,
            "topics": ["[]"] * 3,
            "error": [None] * 3,
            "created_at": ["01/10/2026", "02/10/2026", "03/10/2026"],
        }
    )
    frame.to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "r.json"
    base = ["report", str(tmp_path / "c.csv"), "--date-col", "created_at", "--json", str(out)]
    assert main(base) == 2 and "--date-format" in capsys.readouterr().err
    assert main([*base, "--date-format", "%d/%m/%Y"]) == 0
