"""All SQL of the domain API: its reads of the IPT projections and stored course statuses, and
its `Idempotency-Key` answers (the writes themselves go through the resource store)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import course_status, idempotency_key, ipt_course, ipt_session

__all__ = [
    "StoredAnswer",
    "course_rows",
    "lock_idempotency_key",
    "maintenance_course_ids",
    "remember_answer",
    "session_rows",
    "stored_answer",
    "stored_phases",
]


async def session_rows(conn: AsyncConnection, course_id: str) -> list[Any]:
    """The `ipt_session` rows of a course, with the other half of each merged session.

    An Encounter and the Appointment it references are one session
    (docs/fhir-mapping.md#merged-sessions), even when only one of them is linked to the course.
    """
    linked = select(ipt_session).where(ipt_session.c.course_id == course_id).cte("linked")
    other = ipt_session.alias("other")
    appointments = select(other).join(
        linked,
        and_(
            other.c.resource_type == "Appointment", other.c.resource_id == linked.c.appointment_id
        ),
    )
    encounters = select(other).join(
        linked,
        and_(
            linked.c.resource_type == "Appointment",
            other.c.resource_type == "Encounter",
            other.c.appointment_id == linked.c.resource_id,
        ),
    )
    return list(await conn.execute(union(select(linked), appointments, encounters)))


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


async def lock_idempotency_key(conn: AsyncConnection, scope: str, key: str) -> None:
    """Queue behind any other request with the same key, until this transaction ends."""
    name = f"idempotency-key:{scope}:{key}"
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))


@dataclass(frozen=True)
class StoredAnswer:
    """The answer given to an `Idempotency-Key`, and the digest of the request it answered."""

    request_hash: str
    status_code: int
    response: dict[str, Any]


async def stored_answer(conn: AsyncConnection, scope: str, key: str) -> StoredAnswer | None:
    """The stored answer to a key, or None."""
    k = idempotency_key
    query = select(k.c.request_hash, k.c.status_code, k.c.response).where(
        k.c.scope == scope, k.c.key == key
    )
    row = (await conn.execute(query)).first()
    return StoredAnswer(**row._asdict()) if row is not None else None


async def remember_answer(
    conn: AsyncConnection, scope: str, key: str, answer: StoredAnswer, now: datetime
) -> None:
    """Store the answer to a key, in the transaction of the write it answers."""
    values = {"scope": scope, "key": key, "created_at": now}
    await conn.execute(insert(idempotency_key).values(**values, **asdict(answer)))
