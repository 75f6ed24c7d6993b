"""FHIR date and dateTime strings as UTC instants (docs/fhir-mapping.md#times)."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime

_DATE_ONLY = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def format_instant(moment: datetime) -> str:
    """Render an aware datetime as a FHIR dateTime in UTC with a `Z` zone."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def parse_instant(value: str) -> datetime:
    """Return the UTC instant a FHIR date or dateTime starts at.

    A date without a time means 00:00:00 UTC of that day; a partial date (`2026`,
    `2026-01`) its first day; a time without a zone is taken as UTC.

    Raises:
        ValueError: when `value` is not a FHIR date or dateTime.
    """
    if _DATE_ONLY.match(value):
        year, month, day = [*value.split("-"), "01", "01"][:3]
        return datetime(int(year), int(month), int(day), tzinfo=UTC)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_optional_instant(value: object) -> datetime | None:
    """Return the instant of a FHIR date/dateTime element, or None when it is absent."""
    return parse_instant(value) if isinstance(value, str) else None


def add_months(moment: datetime, months: int) -> datetime:
    """Add calendar months, keeping the time of day and clamping the day (Jan 31 → Feb 28)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def format_date(moment: datetime) -> str:
    """Render the UTC calendar day of an instant as a FHIR date."""
    day: date = moment.astimezone(UTC).date()
    return day.isoformat()
