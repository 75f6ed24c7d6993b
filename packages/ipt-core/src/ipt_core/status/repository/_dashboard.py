"""Dashboard aggregates and worklists over the stored statuses (set-based, one course set).

A course counts where its stored status and its projection row are both present; the
filters narrow that set by therapist, organization or patient (None: any).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import Integer, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db.schema import course_status as s
from ipt_core.db.schema import ipt_course as c

__all__ = ["WORKLIST_KINDS", "CourseScope", "status_totals", "worklist_rows"]

_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class CourseScope:
    """Which courses a dashboard covers (None: any)."""

    therapist: str | None = None
    organization: str | None = None
    phase: str | None = None
    course_type: str | None = None
    patient: str | None = None  # a `patient/` scoped caller's compartment

    def signature(self) -> str:
        """A stable text of the filters, binding page cursors to their snapshot's filters."""
        values = (self.therapist, self.organization, self.phase, self.course_type)
        patient = () if self.patient is None else (self.patient,)
        return "|".join(value or "" for value in values + patient)

    def where(self, query: _Query) -> _Query:
        """`query` over `course_status` joined with `ipt_course`, narrowed to this scope."""
        wanted = (
            (c.c.therapist_ref, self.therapist),
            (c.c.organization_ref, self.organization),
            (c.c.patient_id, self.patient),
            (s.c.phase, self.phase),
            (c.c.course_type, self.course_type),
        )
        joined = query.select_from(s.join(c, c.c.id == s.c.course_id))
        return joined.where(*(column == value for column, value in wanted if value is not None))


def _field(name: str) -> ColumnElement[str]:
    text: ColumnElement[str] = s.c.status[name].astext
    return text


def _flag(name: str) -> ColumnElement[bool]:
    flag: ColumnElement[bool] = s.c.status[name].as_boolean()
    return flag


# kind: (the condition on the stored status, the instant that makes a course "oldest")
WORKLIST_KINDS: Final[dict[str, tuple[Callable[[], ColumnElement[bool]], str]]] = {
    "overdue": (lambda: s.c.engagement == "overdue", "next_session_due"),
    "at-risk": (lambda: s.c.engagement == "at-risk", "next_session_due"),
    "lapsed": (lambda: s.c.engagement == "lapsed", "next_session_due"),
    "maintenance-due": (
        lambda: _flag("maintenance_due") | _flag("maintenance_overdue"),
        "maintenance_next_due",
    ),
    "safety": (lambda: _flag("safety_flag"), "last_attended_at"),
}


async def status_totals(conn: AsyncConnection, scope: CourseScope) -> dict[str, Any]:
    """Counts by phase and by engagement, and the sums the dashboard's rates are made of."""
    by_phase = await conn.execute(scope.where(select(s.c.phase, func.count())).group_by(s.c.phase))
    by_engagement = await conn.execute(
        scope.where(select(s.c.engagement, func.count()))
        .where(s.c.engagement.is_not(None))
        .group_by(s.c.engagement)
    )
    completed = s.c.phase == "completed"
    totals = (
        await conn.execute(
            scope.where(
                select(
                    func.count().label("courses"),
                    func.sum(_field("sessions_attended").cast(Integer)).label("attended"),
                    func.sum(_field("sessions_no_show").cast(Integer)).label("no_shows"),
                    func.count().filter(_flag("maintenance_due")).label("maintenance_due"),
                    func.count().filter(_flag("maintenance_overdue")).label("maintenance_overdue"),
                    func.count().filter(completed).label("completed"),
                    func.count().filter(completed & _flag("response")).label("responded"),
                    func.count().filter(completed & _flag("remission")).label("remitted"),
                )
            )
        )
    ).one()
    return {
        "by_phase": {row[0]: row[1] for row in by_phase},
        "by_engagement": {row[0]: row[1] for row in by_engagement},
        **totals._asdict(),
    }


async def worklist_rows(
    conn: AsyncConnection,
    kind: str,
    scope: CourseScope,
    limit: int,
    *,
    after: tuple[str, str] | None,
) -> list[Any]:
    """Courses of one worklist kind, oldest first, after the keyset `(sort value, course id)`.

    Each row has `course_id`, `patient_id`, `therapist_ref`, `status` and `sort`, the value it
    is sorted by.
    """
    condition, sort_field = WORKLIST_KINDS[kind]
    sort = func.coalesce(_field(sort_field), "")
    query = scope.where(
        select(s.c.course_id, c.c.patient_id, c.c.therapist_ref, s.c.status, sort.label("sort"))
    ).where(condition())
    if after is not None:
        query = query.where(tuple_(sort, s.c.course_id) > tuple_(*after))
    rows = await conn.execute(query.order_by(sort, s.c.course_id).limit(limit))
    return list(rows)
