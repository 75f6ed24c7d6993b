"""Which course a session belongs to: the three linking rules, in order.

They are described in docs/fhir-mapping.md#linking-sessions-to-courses.

1. `extension`: the session's `basedOn` cross-version extension names the course;
2. `outcome-reference`: a course of the same patient lists the session in
   `activity.outcomeReference`;
3. `auto`: the session names IPT (type / serviceType) and exactly one IPT course of the patient
   with status active, on-hold or completed has a period containing the session's start.

An auto-link is decided when the session is written and then kept: a course write never
moves or drops it. Explicit links count whatever the session's date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "AUTO",
    "AUTO_LINK_STATUSES",
    "EXTENSION",
    "NO_LINK",
    "OUTCOME_REFERENCE",
    "CourseWindow",
    "Link",
    "auto_linked_course",
    "decide_link",
    "listing_course",
]

EXTENSION: Final = "extension"
OUTCOME_REFERENCE: Final = "outcome-reference"
AUTO: Final = "auto"
AUTO_LINK_STATUSES: Final = frozenset({"active", "on-hold", "completed"})
_DAWN: Final = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CourseWindow:
    """An IPT course as the linking rules see it: status and period."""

    id: str
    status: str
    period_start: datetime | None
    period_end: datetime | None

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` lies in the period: start ≤ t, and end absent or ≥ t."""
        if self.period_start is None or moment < self.period_start:
            return False
        return self.period_end is None or moment <= self.period_end


@dataclass(frozen=True)
class Link:
    """A session's course and the rule that linked it (both None when no rule applies)."""

    course_id: str | None
    reason: str | None


NO_LINK: Final = Link(None, None)


def auto_linked_course(courses: Sequence[CourseWindow], start: datetime | None) -> str | None:
    """The one course (active, on-hold or completed) whose period holds `start`, else None.

    None also when several courses qualify: an ambiguous session is left unlinked rather
    than counted for the wrong course.
    """
    if start is None:
        return None
    matching = [
        course.id
        for course in courses
        if course.status in AUTO_LINK_STATUSES and course.contains(start)
    ]
    return matching[0] if len(matching) == 1 else None


def listing_course(listing: Sequence[CourseWindow]) -> str | None:
    """Of the courses listing a session in `outcomeReference`, the one started last.

    The rules leave a session listed by several courses open (docs/clinical-choices.md, 21);
    the latest course is the one a clinician would be recording in now, and the choice is
    deterministic (ties by id).
    """
    if not listing:
        return None
    return max(listing, key=lambda c: (c.period_start or _DAWN, c.id)).id


def decide_link(
    *,
    explicit_course_id: str | None,
    listing: Sequence[CourseWindow],
    is_ipt: bool,
    courses: Sequence[CourseWindow],
    start: datetime | None,
    previous: Link,
    session_rewritten: bool,
) -> Link:
    """Apply the linking rules to one session.

    Args:
        explicit_course_id: the course of the session's `basedOn` extension (rule 1).
        listing: the patient's courses listing the session in `outcomeReference` (rule 2).
        is_ipt: whether the session names IPT, so it may be auto-linked (rule 3).
        courses: every IPT course of the session's patient (rule 3).
        start: the session's time.
        previous: the link stored before this write.
        session_rewritten: True when the session itself was written (the auto-link is
            decided again); False when a course write asks (an auto-link is kept).
    """
    if explicit_course_id is not None:
        return Link(explicit_course_id, EXTENSION)
    if (listed := listing_course(listing)) is not None:
        return Link(listed, OUTCOME_REFERENCE)
    if not session_rewritten and previous.reason == AUTO:
        return previous
    auto = auto_linked_course(courses, start) if is_ipt else None
    return Link(auto, AUTO) if auto is not None else NO_LINK
