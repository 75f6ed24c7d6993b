"""When a course's status next changes with time alone (docs/status-rules.md#next_transition_at).

Between two facts, a status depends on time only through thresholds measured from
`next_session_due` (grace, at-risk, lapsed) and `maintenance_next_due` (the ±7-day maintenance
window). Facts change what counts only at their own times: a session or PHQ-9 value starts to
count, a booking stops being in the future. Both due instants are fields themselves, so while
every field stays as it is now, the thresholds computed from the current status stay the
relevant ones. The status is therefore constant between consecutive candidate instants, and the
first candidate at which it differs is the answer; nothing is guessed or approximated.

The clock resolution is 1 µs: a `now > x` rule first holds at x + 1 µs, a `now ≤ x` rule first
fails at x + 1 µs, and a `now ≥ x` rule first holds at x.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from ._calendar import MICROSECOND
from ._course_status import CourseStatus
from ._evaluate import evaluate
from ._facts import CourseFacts
from ._settings import StatusRules


def next_transition_at(
    facts: CourseFacts, now: datetime, current: CourseStatus, rules: StatusRules
) -> datetime | None:
    """The earliest instant after `now` at which a field of `current` differs, if any.

    Args:
        facts: The course facts `current` was computed from.
        now: The instant of `current`.
        current: `evaluate(facts, now, rules)`.
        rules: The thresholds.

    Returns:
        The instant, or None when no field ever changes with time alone.
    """
    for instant in sorted({i for i in candidate_instants(facts, current, rules) if i > now}):
        if evaluate(facts, instant, rules) != current:
            return instant
    return None


def candidate_instants(
    facts: CourseFacts, current: CourseStatus, rules: StatusRules
) -> Iterator[datetime]:
    """Every instant at which a field of `current` could change first (a superset)."""
    yield from _fact_times(facts)
    if facts.related is not None:
        yield from _fact_times(facts.related)
    thresholds = rules.for_course_type(facts.course_type)
    due = current.next_session_due
    if due is not None:
        for after in (thresholds.grace, thresholds.at_risk_after, thresholds.lapsed_after):
            yield from _shifted(due, after + MICROSECOND)
    maintenance_due = current.maintenance_next_due
    if maintenance_due is not None:
        yield from _shifted(maintenance_due, -rules.maintenance_window)
        yield from _shifted(maintenance_due, rules.maintenance_window + MICROSECOND)


def _fact_times(course: CourseFacts) -> Iterator[datetime]:
    # A session starts (or, when booked, stops) counting at its time; a PHQ-9 value likewise.
    yield from (session.time for session in course.sessions)
    yield from (value.time for value in course.phq9)


def _shifted(instant: datetime, delta: timedelta) -> Iterator[datetime]:
    # Thresholds past datetime.max are never reached, so they are no candidates.
    try:
        yield instant + delta
    except OverflowError:
        return
