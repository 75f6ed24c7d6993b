"""Calendar-month arithmetic and cadence from FHIR timing (docs/status-rules.md#cadence)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ipt_core.instants import add_months
from ipt_core.status import Cadence, cadence_from_timing


def at(text: str) -> datetime:
    """An ISO 8601 UTC instant."""
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2026-01-31T09:00Z", 1, "2026-02-28T09:00Z"),
        ("2028-01-31T09:00Z", 1, "2028-02-29T09:00Z"),
        ("2026-03-31T09:00Z", 1, "2026-04-30T09:00Z"),
        ("2026-01-31T09:00Z", 2, "2026-03-31T09:00Z"),  # one step: no clamp to the 28th
        ("2025-12-31T23:59:59.999999Z", 2, "2026-02-28T23:59:59.999999Z"),
        ("2025-12-15T09:30:15.5Z", 1, "2026-01-15T09:30:15.5Z"),
        ("2026-03-31T09:00Z", -1, "2026-02-28T09:00Z"),
        ("2026-01-15T09:00Z", 12, "2027-01-15T09:00Z"),
        ("2028-02-29T09:00Z", 12, "2029-02-28T09:00Z"),
    ],
)
def test_add_months(start: str, months: int, expected: str) -> None:
    assert add_months(at(start), months) == at(expected)


def test_add_months_works_on_the_utc_calendar() -> None:
    # 2026-01-31T23:30-05:00 is 2026-02-01T04:30Z, so a month later is March 1st.
    local = datetime(2026, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))

    result = add_months(local, 1)

    assert result == at("2026-03-01T04:30Z")
    assert result.utcoffset() == timedelta(0)


def test_add_months_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_months(datetime(2026, 1, 31), 1)


@pytest.mark.parametrize(
    ("period", "unit", "frequency", "expected"),
    [
        (1, "wk", 1, Cadence.of_days(7)),
        (2, "wk", 1, Cadence.of_days(14)),
        (1, "wk", 2, Cadence(fixed=timedelta(days=3, hours=12))),
        (1, "d", 1, Cadence.of_days(1)),
        (Decimal("0.5"), "d", 1, Cadence(fixed=timedelta(hours=12))),
        (1.5, "h", 1, Cadence(fixed=timedelta(minutes=90))),
        (90, "min", 1, Cadence(fixed=timedelta(minutes=90))),
        (30, "s", None, Cadence(fixed=timedelta(seconds=30))),
        (1, "mo", 1, Cadence.of_months(1)),
        (2, "mo", 2, Cadence.of_months(1)),
        (3, "mo", 1, Cadence.of_months(3)),
        (1, "a", 1, Cadence.of_months(12)),
        (1, "a", 12, Cadence.of_months(1)),
        # half a calendar month is undefined: the mean Gregorian month (30.436875 d) is halved
        (1, "mo", 2, Cadence(fixed=timedelta(seconds=1_314_873))),
        (None, "wk", 1, None),
        (1, None, 1, None),
        (0, "wk", 1, None),
        (-1, "wk", 1, None),
        (1, "wk", 0, None),
        (1, "fortnight", 1, None),
        (float("nan"), "wk", 1, None),
    ],
)
def test_cadence_from_timing(
    period: Decimal | float | None,
    unit: str | None,
    frequency: int | None,
    expected: Cadence | None,
) -> None:
    assert cadence_from_timing(period, unit, frequency) == expected


def test_cadence_after() -> None:
    assert Cadence.of_months(1).after(at("2026-01-31T09:00Z")) == at("2026-02-28T09:00Z")
    assert Cadence.of_days(7).after(at("2026-01-31T09:00Z")) == at("2026-02-07T09:00Z")


@pytest.mark.parametrize(
    ("months", "fixed"),
    [(0, timedelta(0)), (1, timedelta(days=1)), (-1, timedelta(0)), (0, timedelta(days=-1))],
)
def test_cadence_is_either_months_or_a_positive_duration(months: int, fixed: timedelta) -> None:
    with pytest.raises(ValueError, match="cadence"):
        Cadence(months=months, fixed=fixed)
