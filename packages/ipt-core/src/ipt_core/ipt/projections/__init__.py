"""IPT projections: course, session and measure rows kept in the write's own transaction.

- `IptProjections`: the FHIR store's write listener (IPT rules, rows, recompute requests).
- `check_ipt_rules`: the IPT rules on a resource about to be written (a 422 when broken).
- Reads of the projection rows for other write listeners: `session_row` (a session's row, with
  its course), `courses_referencing` (the courses whose CarePlan references a Condition/Goal).
- Pure parts, usable without a database: `course_row`, `session_facts`, `measure_row`
  (rows of one resource) and `decide_link` (the linking rules of docs/fhir-mapping.md).
"""

from ipt_core.ipt.projections._linking import (
    CourseWindow,
    Link,
    decide_link,
)
from ipt_core.ipt.projections._listener import IptProjections, check_ipt_rules
from ipt_core.ipt.projections._rows import SessionFacts, course_row, measure_row, session_facts
from ipt_core.ipt.projections.repository import courses_referencing, session_row

__all__ = [
    "CourseWindow",
    "IptProjections",
    "Link",
    "SessionFacts",
    "check_ipt_rules",
    "course_row",
    "courses_referencing",
    "decide_link",
    "measure_row",
    "session_facts",
    "session_row",
]
