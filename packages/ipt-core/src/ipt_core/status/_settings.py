"""The configurable thresholds of the status rules (docs/status-rules.md#settings).

| setting | acute | maintenance |
|---|---|---|
| cadence (when the CarePlan timing gives none) | 7 days | 1 calendar month |
| `grace` | 3 days | 7 days |
| `at_risk_after` | 7 days | 14 days |
| `lapsed_after` | 23 days | 30 days |
| initial / termination sessions (I / T) | 3 / 3 | — |

plus the other numbers the rules name: 20 planned sessions for an acute course without a
count, the PHQ-9 window opening 14 days before the course start, the ±7-day maintenance window,
and the PHQ-9 response, remission and goal thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from typing import Final

from ipt_core.ipt.codes import CourseType

from ._calendar import Cadence


@dataclass(frozen=True, slots=True)
class CourseTypeRules:
    """Cadence and engagement thresholds of one course type.

    Attributes:
        cadence: Interval between sessions when the CarePlan timing gives none.
        grace: `overdue` once now > due + grace.
        at_risk_after: `at-risk` once now > due + at_risk_after.
        lapsed_after: `lapsed` once now > due + lapsed_after.
    """

    cadence: Cadence
    grace: timedelta
    at_risk_after: timedelta
    lapsed_after: timedelta


@dataclass(frozen=True, slots=True)
class Phq9Rules:
    """PHQ-9 window and outcome thresholds.

    Attributes:
        lookback: The course window opens this long before the course start.
        min_baseline: Response and remission need a baseline at least this high (index > 9).
        response_ratio: Response: latest ≤ ratio * baseline.
        remission_below: Remission: latest < this.
        improving_drop: Goal `improving`: latest ≤ baseline - drop …
        improving_ratio: … or latest ≤ ratio * baseline.
        worsening_rise: Goal `worsening`: latest ≥ baseline + rise.
    """

    lookback: timedelta = timedelta(days=14)
    min_baseline: int = 10
    response_ratio: Fraction = Fraction(1, 2)
    remission_below: int = 5
    improving_drop: int = 5
    improving_ratio: Fraction = Fraction(4, 5)
    worsening_rise: int = 5


ACUTE_RULES: Final = CourseTypeRules(
    cadence=Cadence.of_days(7),
    grace=timedelta(days=3),
    at_risk_after=timedelta(days=7),
    lapsed_after=timedelta(days=23),
)
MAINTENANCE_RULES: Final = CourseTypeRules(
    cadence=Cadence.of_months(1),
    grace=timedelta(days=7),
    at_risk_after=timedelta(days=14),
    lapsed_after=timedelta(days=30),
)


@dataclass(frozen=True, slots=True)
class StatusRules:
    """Every threshold of the course status rules.

    Attributes:
        acute: Cadence and engagement thresholds of acute courses.
        maintenance: Cadence and engagement thresholds of maintenance courses.
        initial_sessions: I, the sessions of the initial phase.
        termination_sessions: T, the last sessions of an acute course (termination phase).
        default_acute_planned_sessions: N of an acute course whose CarePlan gives no count.
        maintenance_window: `maintenance_due` within ± this of the next maintenance session;
            `maintenance_overdue` after it.
        phq9: PHQ-9 window and outcome thresholds.
    """

    acute: CourseTypeRules = ACUTE_RULES
    maintenance: CourseTypeRules = MAINTENANCE_RULES
    initial_sessions: int = 3
    termination_sessions: int = 3
    default_acute_planned_sessions: int = 20
    maintenance_window: timedelta = timedelta(days=7)
    phq9: Phq9Rules = field(default_factory=Phq9Rules)

    def for_course_type(self, course_type: CourseType) -> CourseTypeRules:
        """The cadence and engagement thresholds of `course_type`."""
        return self.acute if course_type == "acute" else self.maintenance


DEFAULT_RULES: Final = StatusRules()
