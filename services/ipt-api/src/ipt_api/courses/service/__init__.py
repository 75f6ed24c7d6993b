"""Use cases of the IPT domain API. Every write goes through the FHIR resource store.

So the FHIR API shows the same course, and the store's listeners (IPT rules, projections,
recompute requests) run as for any FHIR write. Services never commit: the request's
transaction does, or rolls everything back on any error.

- Enrolment: `enrol`, `start_maintenance`.
- Sessions: `record_session`.
- Life cycle: `activate`, `hold`, `resume`, `complete`, `stop`, `add_practice`,
  `update_practice`.
- Reads: `course_view`, `course_summaries`.
"""

from ipt_api.courses.service._enrolment import enrol, start_maintenance
from ipt_api.courses.service._lifecycle import (
    activate,
    add_practice,
    complete,
    hold,
    resume,
    stop,
    update_practice,
)
from ipt_api.courses.service._sessions import record_session
from ipt_api.courses.service._views import course_summaries, course_view, session_views

__all__ = [
    "activate",
    "add_practice",
    "complete",
    "course_summaries",
    "course_view",
    "enrol",
    "hold",
    "record_session",
    "resume",
    "session_views",
    "start_maintenance",
    "stop",
    "update_practice",
]
