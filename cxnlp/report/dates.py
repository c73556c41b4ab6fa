"""Reading a date column the same way for every row: Gregorian dates in any pandas-readable form,
Jalali (Solar Hijri) dates such as ``1405/07/10`` (also in Persian digits), common in Iranian
exports, and an explicit format. A day/month order is decided once for the column, never guessed
per value: ``01/10/2026`` and ``13/10/2026`` in one column are both read day first, and a column
whose order cannot be told (every value has day and month <= 12) is refused unless a format is
given."""

from __future__ import annotations

import re

import pandas as pd

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_JALALI_RE = re.compile(
    r"^(1[2-4]\d\d)[/\-.](\d{1,2})[/\-.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
)
_DMY_RE = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})(?:[ T].*)?$")


class AmbiguousDateError(ValueError):
    """Day and month cannot be told apart in a date column."""


def _jalali(match: re.Match[str]) -> pd.Timestamp | None:
    import jdatetime

    year, month, day, hh, mm, ss = (int(g) if g else 0 for g in match.groups())
    try:
        when = jdatetime.datetime(year, month, day, hh, mm, ss).togregorian()
    except ValueError:
        return None
    return pd.Timestamp(when)


def parse_dates(values: pd.Series, date_format: str | None = None) -> pd.Series:
    """`values` as naive timestamps (NaT where unreadable); see the module docstring.

    Raises:
        AmbiguousDateError: d/m/yyyy-shaped values whose order the column does not settle.
    """
    text = values.astype("string").str.strip().str.translate(_DIGITS)
    if date_format is not None:
        if date_format.lower() == "jalali":
            return pd.Series(
                [
                    (_jalali(m) if (m := _JALALI_RE.match(v)) else None)
                    if isinstance(v, str)
                    else None
                    for v in text.fillna("")
                ],  # fmt: skip
                index=values.index,
                dtype="datetime64[ns]",
            )
        parsed = pd.to_datetime(text, format=date_format, errors="coerce", utc=True)
        return parsed.dt.tz_convert(None)
    filled = text.dropna()
    filled = filled[filled != ""]
    if len(filled) and filled.map(lambda v: bool(_JALALI_RE.match(v))).all():
        return parse_dates(values, "jalali")
    shaped = filled.map(_DMY_RE.match)
    if len(filled) and shaped.map(bool).all():
        first = shaped.map(lambda m: int(m.group(1)))
        second = shaped.map(lambda m: int(m.group(3)))
        sep = shaped.iloc[0].group(2)
        day_first, month_first = (first > 12).any(), (second > 12).any()
        if day_first and month_first:
            raise AmbiguousDateError(
                "the date column has both day-first and month-first values (e.g. 13/01 and "
                "01/13); pass --date-format with the right order"
            )
        if not day_first and not month_first and (first != second).any():
            raise AmbiguousDateError(
                f"the dates (e.g. {filled.iloc[0]!r}) can be read day first or month first and "
                f"no value settles it; pass --date-format %d{sep}%m{sep}%Y or %m{sep}%d{sep}%Y"
            )
        order = f"%d{sep}%m{sep}%Y" if day_first or not month_first else f"%m{sep}%d{sep}%Y"
        dates = text.str.extract(r"^(\S+)")[0]
        return pd.to_datetime(dates, format=order, errors="coerce", utc=True).dt.tz_convert(None)
    parsed = pd.to_datetime(text, errors="coerce", utc=True)
    if (parsed.isna() & text.fillna("").ne("")).any():
        # A mixed export (ISO dates and timestamps, or several formats) fails whole-column format
        # inference; element-wise parsing is slower but reads each value on its own.
        mixed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        if mixed.notna().sum() > parsed.notna().sum():
            parsed = mixed
    return parsed.dt.tz_convert(None)
