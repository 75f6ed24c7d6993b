"""UTC instants, calendar months and session cadence (docs/status-rules.md#time-and-calendar).

Every status rule runs on UTC instants. A day is 24 h; "+ 1 calendar month" keeps the time of
day and the day of month, clamped to the month's last day (Jan 31 → Feb 28, or Feb 29 in a leap
year). A course's cadence comes from its CarePlan timing: `period` * `periodUnit` / `frequency`,
where `mo` and `a` are calendar months and years and the other units fixed durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final

from ipt_core.instants import add_months, ensure_utc

MICROSECOND: Final = timedelta(microseconds=1)

_FIXED_UNIT_SECONDS: Final = {"s": 1, "min": 60, "h": 3_600, "d": 86_400, "wk": 604_800}
_CALENDAR_UNIT_MONTHS: Final = {"mo": 1, "a": 12}
# A calendar month cannot be divided (what is half of "a month" from Jan 31?), so a cadence
# such as "twice a month" becomes a fixed duration based on the mean Gregorian month.
_MEAN_MONTH_SECONDS: Final = Fraction(365_2425 * 86_400, 12 * 10_000)


@dataclass(frozen=True, slots=True)
class Cadence:
    """The interval between sessions: whole calendar months, or a fixed duration.

    Attributes:
        months: Calendar months between sessions (0 for a fixed cadence).
        fixed: Fixed duration between sessions (zero for a calendar cadence).
    """

    months: int = 0
    fixed: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        """Reject a cadence that is neither exactly monthly-based nor exactly fixed."""
        calendar_based = self.months > 0 and self.fixed == timedelta(0)
        fixed_based = self.months == 0 and self.fixed > timedelta(0)
        if not (calendar_based or fixed_based):
            raise ValueError(f"a cadence is either months > 0 or a positive duration: {self!r}")

    @classmethod
    def of_days(cls, days: int) -> Cadence:
        """A fixed cadence of `days` * 24 h."""
        return cls(fixed=timedelta(days=days))

    @classmethod
    def of_months(cls, months: int) -> Cadence:
        """A cadence of `months` calendar months."""
        return cls(months=months)

    def after(self, instant: datetime) -> datetime:
        """The instant one cadence after `instant`."""
        if self.months:
            return add_months(instant, self.months)
        return ensure_utc(instant, "instant") + self.fixed


def cadence_from_timing(
    period: Decimal | float | None,
    period_unit: str | None,
    frequency: int | None = 1,
) -> Cadence | None:
    """The cadence a FHIR `Timing.repeat` describes: `period` * `periodUnit` / `frequency`.

    Args:
        period: `repeat.period` (a FHIR decimal).
        period_unit: `repeat.periodUnit` (`s`, `min`, `h`, `d`, `wk`, `mo`, `a`).
        frequency: `repeat.frequency`; absent means 1.

    Returns:
        The cadence, e.g. `period` 2 `wk` → 14 days, `period` 1 `mo` → 1 calendar month; None when
        the timing gives no usable cadence (missing or non-positive values, unknown unit), so the
        course type's default applies instead of failing on an odd EHR CarePlan.
    """
    sessions_per_period = 1 if frequency is None else frequency
    if period is None or period_unit is None or sessions_per_period <= 0:
        return None
    exact_period = Decimal(str(period))  # via str: the decimal the JSON said, not a float's
    if not exact_period.is_finite():
        return None
    per_session = Fraction(exact_period) / sessions_per_period
    if per_session <= 0:
        return None
    if period_unit in _CALENDAR_UNIT_MONTHS:
        months = per_session * _CALENDAR_UNIT_MONTHS[period_unit]
        if months.denominator == 1:
            return Cadence.of_months(int(months))
        return _fixed_cadence(months * _MEAN_MONTH_SECONDS)
    if period_unit in _FIXED_UNIT_SECONDS:
        return _fixed_cadence(per_session * _FIXED_UNIT_SECONDS[period_unit])
    return None


def _fixed_cadence(seconds: Fraction) -> Cadence | None:
    microseconds = round(seconds * 1_000_000)
    return Cadence(fixed=timedelta(microseconds=microseconds)) if microseconds > 0 else None
