"""The field rules of docs/status-rules.md at one instant (all but `next_transition_at`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Final

from ipt_core.ipt.codes import Engagement, Phase

from ._course_status import CourseStatus
from ._facts import CourseFacts
from ._phq9 import Phq9Summary, goal_status, is_remission, is_response, severity, summarize_phq9
from ._sessions import SessionTally, attended_as_of, tally_sessions
from ._settings import CourseTypeRules, StatusRules

# Phases in which the course expects another session.
_SCHEDULED_PHASES: Final[frozenset[Phase]] = frozenset(
    {"initial", "middle", "termination", "maintenance"}
)
_PRACTICE_NOT_COUNTED: Final = frozenset({"cancelled", "entered-in-error"})


class _Unknown:
    """Not given (None is a value: no booking)."""


_UNKNOWN: Final = _Unknown()


def evaluate(facts: CourseFacts, now: datetime, rules: StatusRules) -> CourseStatus:
    """Compute every status field of `facts` at `now`; `next_transition_at` is left None."""
    tally = tally_sessions(facts.sessions, now)
    attended = len(tally.attended)
    planned = planned_sessions(facts, rules)
    phase = course_phase(facts, attended, planned, rules)
    scheduled = facts.is_active and phase in _SCHEDULED_PHASES
    due = next_session_due(facts, now, rules, booking=tally.next_booking) if scheduled else None
    phq9 = summarize_phq9(facts, now, rules.phq9)
    maintenance_due_at = _maintenance_next_due(facts, phase, due, now, rules)
    window = rules.maintenance_window
    return CourseStatus(
        course_type=facts.course_type,
        planned_sessions=planned,
        sessions_attended=attended,
        sessions_no_show=tally.no_shows,
        sessions_cancelled=tally.cancelled,
        sessions_remaining=None if planned is None else max(planned - attended, 0),
        attendance_rate=_attendance_rate(attended, tally.no_shows),
        phase=phase,
        next_session_number=attended + 1 if scheduled else None,
        last_attended_at=last_attended_at(facts, now),
        next_session_due=due,
        engagement=_engagement(due, tally, now, rules.for_course_type(facts.course_type)),
        phq9_baseline=None if phq9.baseline is None else phq9.baseline.value,
        phq9_latest=None if phq9.latest is None else phq9.latest.value,
        phq9_change=_change(phq9),
        severity=None if phq9.latest is None else severity(phq9.latest.value),
        response=is_response(phq9, rules.phq9),
        remission=is_remission(phq9, rules.phq9),
        safety_flag=phq9.latest is not None and (phq9.latest.item9 or 0) > 0,
        goal_status=goal_status(phq9, rules.phq9),
        practice_assigned=sum(1 for s in facts.practice_statuses if s not in _PRACTICE_NOT_COUNTED),
        practice_completed=facts.practice_statuses.count("completed"),
        maintenance_recommended=_maintenance_recommended(facts, phase, phq9, rules),
        maintenance_next_due=maintenance_due_at,
        maintenance_due=maintenance_due_at is not None
        and maintenance_due_at - window <= now <= maintenance_due_at + window,
        maintenance_overdue=maintenance_due_at is not None and now > maintenance_due_at + window,
    )


def planned_sessions(facts: CourseFacts, rules: StatusRules) -> int | None:
    """N: the CarePlan's count; else the default for an acute course, none for maintenance."""
    if facts.planned_count is not None or facts.course_type == "maintenance":
        return facts.planned_count
    return rules.default_acute_planned_sessions


def course_phase(
    facts: CourseFacts, attended: int, planned: int | None, rules: StatusRules
) -> Phase:
    """The phase from the CarePlan status and, for an active acute course, the counts."""
    if facts.status == "draft":
        return "intake"
    if facts.status == "on-hold":
        return "on-hold"
    if facts.status == "revoked":
        return "stopped"
    if facts.status == "completed":
        return "maintenance" if _has_active_maintenance(facts) else "completed"
    if facts.course_type == "maintenance" or planned is None:
        return "maintenance"
    return _acute_phase(attended + 1, planned, rules)


def _acute_phase(session_number: int, planned: int, rules: StatusRules) -> Phase:
    # k ≥ N is checked first: for any N ≥ I it is the same as the table's order, and for a
    # (clinically invalid) N < I it says the planned sessions are done rather than "initial".
    if session_number > planned:
        return "acute-complete"
    if session_number <= rules.initial_sessions:
        return "initial"
    if session_number <= planned - rules.termination_sessions:
        return "middle"
    return "termination"


def _has_active_maintenance(facts: CourseFacts) -> bool:
    return facts.course_type == "acute" and facts.related is not None and facts.related.is_active


def last_attended_at(facts: CourseFacts, now: datetime) -> datetime | None:
    """The latest attended session; a maintenance course looks at its acute course too."""
    courses = [facts]
    if facts.course_type == "maintenance" and facts.related is not None:
        courses.append(facts.related)
    times = [session.time for course in courses for session in attended_as_of(course.sessions, now)]
    return max(times, default=None)


def next_session_due(
    course: CourseFacts,
    now: datetime,
    rules: StatusRules,
    acute: CourseFacts | None = None,
    *,
    booking: datetime | _Unknown | None = _UNKNOWN,
) -> datetime | None:
    """When a course that expects another session next has it due (`next_session_due`).

    Args:
        course: The course, assumed active and in a phase that expects another session.
        now: The instant the facts are taken as of.
        rules: The thresholds.
        acute: The acute course of a maintenance course when `course.related` is not it (an
            acute course mirroring its maintenance course passes itself).
        booking: The course's earliest booking after `now` when the caller has tallied its
            sessions already (one tally per evaluation instead of two).

    Returns:
        The earliest future booking of the course; else the last attended session + cadence;
        with nothing attended, `period.start`.
    """
    if isinstance(booking, _Unknown):
        booking = tally_sessions(course.sessions, now).next_booking
    if booking is not None:
        return booking
    if acute is not None:
        course = replace(course, related=acute)
    last = last_attended_at(course, now)
    if last is None:
        return course.period_start
    cadence = course.cadence or rules.for_course_type(course.course_type).cadence
    return cadence.after(last)


def _maintenance_next_due(
    facts: CourseFacts, phase: Phase, due: datetime | None, now: datetime, rules: StatusRules
) -> datetime | None:
    if phase != "maintenance":
        return None
    if facts.course_type == "maintenance":
        return due
    # An acute course shown as `maintenance` mirrors its maintenance course's next_session_due.
    if facts.related is None:
        return None
    return next_session_due(facts.related, now, rules, acute=facts)


def _engagement(
    due: datetime | None, tally: SessionTally, now: datetime, rules: CourseTypeRules
) -> Engagement | None:
    if due is None:
        return None
    if now > due + rules.lapsed_after:
        return "lapsed"
    if tally.no_show_streak or now > due + rules.at_risk_after:
        return "at-risk"
    if now > due + rules.grace:
        return "overdue"
    return "on-track"


def _attendance_rate(attended: int, no_shows: int) -> float | None:
    seen = attended + no_shows
    return attended / seen if seen else None


def _change(phq9: Phq9Summary) -> int | None:
    if phq9.baseline is None or phq9.latest is None:
        return None
    return phq9.latest.value - phq9.baseline.value


def _maintenance_recommended(
    facts: CourseFacts, phase: Phase, phq9: Phq9Summary, rules: StatusRules
) -> bool:
    if facts.course_type != "acute" or phase not in ("acute-complete", "completed"):
        return False
    if facts.has_maintenance_course or facts.related is not None:
        return False
    return not is_remission(phq9, rules.phq9) or facts.addresses_recurrent_depression
