"""FHIR date, dateTime and instant values as UTC instants: the one module for parsing and output.

Every time in the service is a UTC instant (docs/fhir-mapping.md#times). A FHIR value stands for
the whole span of its precision: `2026` covers the year, `2026-01-05` the day (`date_range`);
`parse_instant` is the start of that span. A date or dateTime without a zone is taken as UTC.
"+ 1 calendar month" keeps the time of day and clamps the day of month
(docs/status-rules.md#time-and-calendar).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "MAX_INSTANT",
    "MIN_INSTANT",
    "add_months",
    "date_range",
    "ensure_utc",
    "format_date",
    "format_instant",
    "parse_instant",
    "parse_optional_instant",
]

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
    """Return the UTC instant a FHIR date, dateTime or instant starts at.

    A date without a time means 00:00:00 UTC of that day; a partial date (`2026`, `2026-01`)
    its first day; a time without a zone is taken as UTC.

    Raises:
        ValueError: when `value` is not a FHIR date, dateTime or instant.
    """
    return date_range(value)[0]


def parse_optional_instant(value: object) -> datetime | None:
    """Return the instant of a FHIR date/dateTime element, or None when it is absent."""
    return parse_instant(value) if isinstance(value, str) else None


def format_instant(moment: datetime) -> str:
    """Render an aware datetime as a FHIR instant in UTC with a `Z` zone.

    Microseconds appear only when there are some: `2026-01-05T09:00:00Z`,
    `2026-01-05T09:00:00.000001Z`. Any offset is converted to UTC first.
    """
    return ensure_utc(moment, "moment").isoformat().removesuffix("+00:00") + "Z"


def format_date(moment: datetime) -> str:
    """Render the UTC calendar day of an instant as a FHIR date."""
    day: date = ensure_utc(moment, "moment").date()
    return day.isoformat()


def ensure_utc(value: datetime, name: str) -> datetime:
    """Return `value` as a UTC instant.

    Args:
        value: A timezone-aware datetime (any offset).
        name: What the value is, for the error message.

    Returns:
        The same instant with `tzinfo=UTC`.

    Raises:
        ValueError: If `value` is naive: a naive time is no instant, and guessing a zone would
            shift every rule by hours.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")
    return value.astimezone(UTC)


def add_months(instant: datetime, months: int) -> datetime:
    """Add calendar months, keeping the time of day and clamping the day of month.

    Args:
        instant: A timezone-aware datetime; the calendar is the UTC one.
        months: How many months to add (may be negative).

    Returns:
        The UTC instant `months` calendar months later, e.g. Jan 31 + 1 → Feb 28 (Feb 29 in a
        leap year).
    """
    utc = ensure_utc(instant, "instant")
    year, month_index = divmod(utc.year * 12 + utc.month - 1 + months, 12)
    month = month_index + 1
    last_day = calendar.monthrange(year, month)[1]
    return utc.replace(year=year, month=month, day=min(utc.day, last_day))


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
