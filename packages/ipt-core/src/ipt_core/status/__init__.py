"""Course status: the pure function of docs/status-rules.md and the facts it reads.

`compute_status(facts, now)` gives a `CourseStatus` with every status field and the instant
(`next_transition_at`) at which the status next changes by time alone. `resolve_session` turns
an Encounter and/or Appointment into one `SessionFact`; `cadence_from_timing` turns a
CarePlan activity timing into a `Cadence`. `StatusRules` holds every threshold, defaulting to
the settings table of docs/status-rules.md (`DEFAULT_RULES`). Its literals (`Phase`,
`Engagement`, `CarePlanStatus`, ...) are those of `ipt_core.ipt.codes`, re-exported.
"""

from ipt_core.ipt.codes import (
    CarePlanStatus,
    CourseType,
    Engagement,
    GoalStatus,
    Phase,
    SessionOutcome,
    Severity,
)

from ._calendar import Cadence, cadence_from_timing
from ._course_status import CourseStatus
from ._facts import CourseFacts, Phq9Fact, SessionFact
from ._sessions import resolve_session
from ._settings import DEFAULT_RULES, CourseTypeRules, Phq9Rules, StatusRules
from ._status import compute_status

__all__ = [
    "DEFAULT_RULES",
    "Cadence",
    "CarePlanStatus",
    "CourseFacts",
    "CourseStatus",
    "CourseType",
    "CourseTypeRules",
    "Engagement",
    "GoalStatus",
    "Phase",
    "Phq9Fact",
    "Phq9Rules",
    "SessionFact",
    "SessionOutcome",
    "Severity",
    "StatusRules",
    "cadence_from_timing",
    "compute_status",
    "resolve_session",
]
