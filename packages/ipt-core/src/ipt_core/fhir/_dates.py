"""FHIR date, dateTime and instant values as UTC ranges [low, high] (inclusive, 1 µs ticks).

A value stands for the whole span of its precision: `2026` covers the year, `2026-01-05`
the day. A date or dateTime without a zone is taken as UTC (docs/fhir-mapping.md#times).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["MAX_INSTANT", "MIN_INSTANT", "date_range", "parse_instant"]

MIN_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 12, 30, tzinfo=UTC)
_TICK = timedelta(microseconds=1)
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def date_range(value: str) -> tuple[datetime, datetime]:
    """Return the inclusive UTC range a FHIR date/dateTime/instant string stands for.

    Raises:
        ValueError: when `value` is not a FHIR date, dateTime or instant.
    """
    match = _DATE.match(value)
    if match is None:
        raise ValueError(f"not a FHIR date: {value!r}")
    parts = match.groupdict()
    low = _start(parts)
    if parts["m"] is None:
        high = low.replace(year=low.year + 1)
    elif parts["d"] is None:
        high = _next_month(low)
    elif parts["H"] is None:
        high = low + timedelta(days=1)
    elif parts["S"] is None:
        high = low + timedelta(minutes=1)
    elif parts["f"] is None:
        high = low + timedelta(seconds=1)
    else:
        return low, low
    return low, high - _TICK


def parse_instant(value: str) -> datetime:
    """Return the UTC instant a FHIR date/dateTime/instant starts at."""
    return date_range(value)[0]


def _start(parts: dict[str, str | None]) -> datetime:
    fraction = (parts["f"] or ".0")[1:7].ljust(6, "0")
    moment = datetime(
        int(parts["y"] or 1),
        int(parts["m"] or 1),
        int(parts["d"] or 1),
        int(parts["H"] or 0),
        int(parts["M"] or 0),
        int(parts["S"] or 0),
        int(fraction),
        tzinfo=UTC,
    )
    zone = parts["tz"]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment


def _next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1)
    return moment.replace(month=moment.month + 1)
