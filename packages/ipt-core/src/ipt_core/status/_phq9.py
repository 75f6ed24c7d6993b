"""PHQ-9 values of a course and what they say (docs/status-rules.md#phq-9-outcomes).

A course's values lie in the closed window [course start - 14 days, min(now, course end)]. A
maintenance course's values are the baseline of its acute course followed by the values in its
own window, so response and remission stay measured from the start of the episode; its latest
is the most recent value in its own window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from ipt_core.ipt.codes import GoalStatus, Severity

from ._facts import CourseFacts, Phq9Fact
from ._settings import Phq9Rules

# Upper bounds of the PHQ-9 severity bands: they define the instrument, so they are no setting.
_SEVERITY_BANDS: tuple[tuple[int, Severity], ...] = (
    (4, "minimal"),
    (9, "mild"),
    (14, "moderate"),
    (19, "moderately-severe"),
    (27, "severe"),
)


@dataclass(frozen=True, slots=True)
class Phq9Summary:
    """A course's PHQ-9 values at one instant.

    Attributes:
        baseline: The earliest value (for a maintenance course: its acute course's baseline).
        latest: The most recent value in the course's own window.
        count: How many values the course has (a maintenance course's include the baseline).
    """

    baseline: Phq9Fact | None
    latest: Phq9Fact | None
    count: int


def summarize_phq9(course: CourseFacts, now: datetime, rules: Phq9Rules) -> Phq9Summary:
    """The baseline, latest and number of PHQ-9 values of `course` as of `now`."""
    own = _in_window(course, now, rules)
    acute = course.related if course.course_type == "maintenance" else None
    acute_values = _in_window(acute, now, rules) if acute is not None else []
    if not acute_values:
        return Phq9Summary(own[0] if own else None, own[-1] if own else None, len(own))
    baseline = acute_values[0]
    others = [value for value in own if value.id != baseline.id]
    return Phq9Summary(baseline, own[-1] if own else None, 1 + len(others))


def _in_window(course: CourseFacts, now: datetime, rules: Phq9Rules) -> list[Phq9Fact]:
    start = course.period_start
    opens = None if start is None else start - rules.lookback
    closes = now if course.period_end is None else min(now, course.period_end)
    values = (
        value
        for value in course.phq9
        if (opens is None or opens <= value.time) and value.time <= closes
    )
    return sorted(values, key=lambda value: (value.time, value.id))


def severity(score: int) -> Severity:
    """The PHQ-9 severity band of a total score."""
    return next(band for upper, band in _SEVERITY_BANDS if score <= upper)


def is_response(summary: Phq9Summary, rules: Phq9Rules) -> bool:
    """At least 2 values, baseline ≥ 10 and latest ≤ 0.5 * baseline."""
    baseline, latest = _pair(summary)
    if baseline is None or latest is None:
        return False
    return baseline >= rules.min_baseline and _at_most(latest, rules.response_ratio, baseline)


def is_remission(summary: Phq9Summary, rules: Phq9Rules) -> bool:
    """At least 2 values, baseline ≥ 10 and latest < 5."""
    baseline, latest = _pair(summary)
    if baseline is None or latest is None:
        return False
    return baseline >= rules.min_baseline and latest < rules.remission_below


def goal_status(summary: Phq9Summary, rules: Phq9Rules) -> GoalStatus:
    """The symptom Goal's `achievementStatus`: the first branch that holds."""
    baseline, latest = _pair(summary)
    if baseline is None or latest is None:
        return "in-progress"
    if is_remission(summary, rules):
        return "achieved"
    improved_by_points = latest <= baseline - rules.improving_drop
    if improved_by_points or _at_most(latest, rules.improving_ratio, baseline):
        return "improving"
    if latest >= baseline + rules.worsening_rise:
        return "worsening"
    return "no-change"


def _at_most(score: int, ratio: Fraction, baseline: int) -> bool:
    """`score <= ratio * baseline`, exactly, in integers: Fraction arithmetic on every
    evaluation was a tenth of a course's computation (bench/recompute_bench.py, py-spy)."""
    if isinstance(ratio, Fraction | int):  # the denominator is positive
        return score * ratio.denominator <= ratio.numerator * baseline
    return score <= ratio * baseline


def _pair(summary: Phq9Summary) -> tuple[int | None, int | None]:
    """Baseline and latest scores when there are at least 2 values, else (None, None)."""
    if summary.count < 2 or summary.baseline is None or summary.latest is None:
        return None, None
    return summary.baseline.value, summary.latest.value
