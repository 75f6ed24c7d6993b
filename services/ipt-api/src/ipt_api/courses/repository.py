"""All SQL of the domain API's reads: the IPT projections and stored course statuses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import course_status, ipt_course

__all__ = ["course_rows", "maintenance_course_ids", "session_rows", "stored_phases"]

# A course's sessions, and the other half of each merged session (Encounter + Appointment).
_SESSIONS = text(
    "WITH linked AS (SELECT * FROM ipt_session WHERE course_id = :id) "
    "SELECT * FROM linked "
    "UNION SELECT s.* FROM ipt_session s JOIN linked l "
    "  ON s.resource_type = 'Appointment' AND s.resource_id = l.appointment_id "
    "UNION SELECT s.* FROM ipt_session s JOIN linked l "
    "  ON l.resource_type = 'Appointment' AND s.resource_type = 'Encounter' "
    "  AND s.appointment_id = l.resource_id"
)


async def session_rows(conn: AsyncConnection, course_id: str) -> list[Any]:
    """The `ipt_session` rows of a course, with the halves of its merged sessions."""
    return list(await conn.execute(_SESSIONS, {"id": course_id}))


async def maintenance_course_ids(conn: AsyncConnection, course_id: str) -> list[str]:
    """The maintenance courses `basedOn` a course, earliest start first."""
    rows = await conn.execute(
        select(ipt_course.c.id)
        .where(ipt_course.c.based_on == course_id, ipt_course.c.status != "entered-in-error")
        .order_by(ipt_course.c.period_start, ipt_course.c.id)
    )
    return [row.id for row in rows]


async def course_rows(
    conn: AsyncConnection,
    *,
    patient_id: str | None,
    therapist_refs: Sequence[str],
    phase: str | None,
    limit: int | None,
) -> list[Any]:
    """Courses (not in error), latest start first, with their stored phase when computed.

    With `phase`, courses without a stored phase come too: the caller computes theirs.
    """
    c, s = ipt_course, course_status
    query = (
        select(c, s.c.phase.label("stored_phase"))
        .outerjoin(s, s.c.course_id == c.c.id)
        .where(c.c.status != "entered-in-error")
        .order_by(c.c.period_start.desc().nulls_last(), c.c.id)
        .limit(limit)
    )
    if phase is not None:
        query = query.where(or_(s.c.phase == phase, s.c.phase.is_(None)))
    if patient_id is not None:
        query = query.where(c.c.patient_id == patient_id)
    if therapist_refs:
        query = query.where(or_(*(c.c.therapist_ref == ref for ref in therapist_refs)))
    return list(await conn.execute(query))


async def stored_phases(conn: AsyncConnection, course_ids: Sequence[str]) -> dict[str, str]:
    """The phase the status engine stored for each course that has one."""
    if not course_ids:
        return {}
    rows = await conn.execute(
        select(course_status.c.course_id, course_status.c.phase).where(
            course_status.c.course_id.in_(list(course_ids))
        )
    )
    return {row.course_id: row.phase for row in rows}
