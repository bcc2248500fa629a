"""Dates of documents: one ISO day per document, and periods to filter on.

A document's date is a string `"YYYY-MM-DD"` (`Document.date`, copied to each of its chunks), or ""
when it has none. ISO days sort as strings sort, so every store compares them as text. A filter
names a period, as people say it: a year, a month, a day, or a range between two of those.

>>> between("2024", "2024-02")
DateRange(low='2024-01-01', high='2024-02-29')
>>> between(high="2023").conditions()
[('!=', ''), ('<=', '2023-12-31')]
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

__all__ = ["DateRange", "as_range", "between", "day", "period"]

_PERIOD = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class DateRange:
    """Every day from `low` to `high`, both included (ISO days); None: open on that side."""

    low: str | None = None
    high: str | None = None

    def conditions(self) -> list[tuple[str, str]]:
        """Return what a day in the range satisfies, as (operator, ISO day) comparisons of text: every
        store filters with these. A document without a date ("") is in no range."""
        return [("!=", ""), *((op, bound) for op, bound in ((">=", self.low), ("<=", self.high)) if bound is not None)]

    def mask(self, days: np.ndarray) -> np.ndarray:
        """Return which of an array of ISO days (strings; "" for none) lie in the range, at numpy speed.

        >>> between("2024").mask(np.array(["2023-12-31", "2024-07-01", ""]))
        array([False,  True, False])
        """
        days = np.asarray(days, dtype=str)
        inside = np.ones(days.shape, dtype=bool)
        for op, bound in self.conditions():
            inside &= _COMPARE[op](days, bound)
        return inside


_COMPARE = {"!=": np.not_equal, ">=": np.greater_equal, "<=": np.less_equal}


def day(value: str | date) -> str:
    """Return a date as an ISO day: a `date`, a `datetime`, or a string that starts with one.

    >>> day("2024-05-01T09:30:00Z"), day(datetime(2023, 12, 24, 18, 0))
    ('2024-05-01', '2023-12-24')
    """
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, str):
        found = re.match(r"\d{4}-\d{2}-\d{2}", value.strip())
        if found:
            try:
                return date.fromisoformat(found.group()).isoformat()
            except ValueError:
                pass
    raise ValueError(f"{value!r} is not a date: give one as YYYY-MM-DD, e.g. '2024-05-01'")


def period(value: str | date) -> tuple[str, str]:
    """Return the first and last day of a year ("2024"), a month ("2024-02") or a day.

    >>> period("2024-02"), period("2023")
    (('2024-02-01', '2024-02-29'), ('2023-01-01', '2023-12-31'))
    """
    if isinstance(value, (date, datetime)):
        return day(value), day(value)
    found = _PERIOD.fullmatch(value.strip()) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"{value!r} is not a period: give a year (2024), a month (2024-05) or a day (2024-05-01)")
    year, month, dd = found.groups()
    if dd:
        return day(found.group()), day(found.group())
    if month:
        if not 1 <= int(month) <= 12:
            raise ValueError(f"{value!r}: there is no month {month}")
        last = calendar.monthrange(int(year), int(month))[1]
        return f"{year}-{month}-01", f"{year}-{month}-{last:02d}"
    return f"{year}-01-01", f"{year}-12-31"


def between(low: str | date | None = None, high: str | date | None = None) -> DateRange:
    """Return the days from the start of period `low` to the end of period `high` (None: no bound).

    >>> between("2024-05-01", "2024-05-01")
    DateRange(low='2024-05-01', high='2024-05-01')
    """
    if low is None and high is None:
        raise ValueError("a date range needs a start, an end or both, e.g. {'from': '2024-01-01'}")
    out = DateRange(None if low is None else period(low)[0], None if high is None else period(high)[1])
    if out.low and out.high and out.low > out.high:
        raise ValueError(f"the date range ends ({out.high}) before it starts ({out.low})")
    return out


def as_range(value) -> DateRange:
    """Return a date filter as a `DateRange`: a period ("2024", "2024-05", "2024-05-01", a `date`), or
    a dict with "from" and/or "to" (each a period; both ends included).

    >>> as_range("2024-05"), as_range({"to": "2023"})
    (DateRange(low='2024-05-01', high='2024-05-31'), DateRange(low=None, high='2023-12-31'))
    """
    if isinstance(value, DateRange):
        return value
    if isinstance(value, (str, date)):
        return between(value, value)
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"from", "to"})
        if unknown:
            raise ValueError(f"a date filter takes 'from' and 'to', not {', '.join(map(repr, unknown))}")
        return between(value.get("from"), value.get("to"))
    raise TypeError(f"filter on date with a period ('2024', '2024-05', '2024-05-01') or a range "
                    f"({{'from': '2024-01-01', 'to': '2024-06-30'}}), not {type(value).__name__} {value!r}")
