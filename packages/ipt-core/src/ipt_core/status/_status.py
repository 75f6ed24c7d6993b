"""The course status function: one pure function of facts and `now` (docs/status-rules.md)."""

from __future__ import annotations

from datetime import datetime

from ipt_core.instants import ensure_utc

from ._course_status import CourseStatus
from ._evaluate import evaluate
from ._facts import CourseFacts
from ._settings import DEFAULT_RULES, StatusRules
from ._transitions import next_transition_at


def compute_status(
    facts: CourseFacts, now: datetime, rules: StatusRules = DEFAULT_RULES
) -> CourseStatus:
    """Compute a course's status as of `now`, with the instant it next changes.

    Facts after `now` do not count (except future bookings), so passing an earlier `now`
    gives the course as it stood then (`?as_of=`); the CarePlans are taken as given.

    Args:
        facts: The course, its sessions, PHQ-9 values and related course.
        now: The instant to compute at; must be timezone-aware.
        rules: The thresholds; defaults to docs/status-rules.md#settings.

    Returns:
        Every status field, plus `next_transition_at`: the earliest instant after `now` at which
        some field differs with time alone, or None when none ever will.

    Raises:
        ValueError: If `now` is naive.
    """
    now = ensure_utc(now, "now")
    current = evaluate(facts, now, rules)
    # `current` is this call's own new value: setting its last field in place is `replace`
    # without the copy (which was a tenth of a course's computation).
    object.__setattr__(
        current, "next_transition_at", next_transition_at(facts, now, current, rules)
    )
    return current
