"""The computed status of a course: the fields of docs/status-rules.md, named exactly as there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ipt_core.ipt.codes import CourseType, Engagement, GoalStatus, Phase, Severity


@dataclass(frozen=True, slots=True)
class CourseStatus:
    """A course's status at one instant; booleans are never None.

    `next_transition_at` is the earliest instant after `now` at which some other field differs
    with time alone (None when no field ever will); the worker re-evaluates the course then.
    """

    course_type: CourseType
    planned_sessions: int | None
    sessions_attended: int
    sessions_no_show: int
    sessions_cancelled: int
    sessions_remaining: int | None
    attendance_rate: float | None
    phase: Phase
    next_session_number: int | None
    last_attended_at: datetime | None
    next_session_due: datetime | None
    engagement: Engagement | None
    phq9_baseline: int | None
    phq9_latest: int | None
    phq9_change: int | None
    severity: Severity | None
    response: bool
    remission: bool
    safety_flag: bool
    goal_status: GoalStatus
    practice_assigned: int
    practice_completed: int
    maintenance_recommended: bool
    maintenance_next_due: datetime | None
    maintenance_due: bool
    maintenance_overdue: bool
    next_transition_at: datetime | None = None
