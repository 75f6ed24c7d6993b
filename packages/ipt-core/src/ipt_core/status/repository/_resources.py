"""The resources a status write-back starts from, read for a whole batch at once.

The resource store reads and locks one resource per call; a batch of courses needs its
CarePlans locked in one statement, in a fixed order (course id), before the batch's
recompute requests (the lock order of docs/architecture.md, "Write path"). These two reads
are the status engine's own view of the `resource` table; the write-backs themselves go
through the resource store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import ipt_course, resource
from ipt_core.db.unnest import among
from ipt_core.fhir.model import StoredResource

__all__ = ["LockedCourse", "current_resources", "lock_courses"]


@dataclass(frozen=True)
class LockedCourse:
    """A course's CarePlan row, locked (deleted or not), and its symptom Goal's id."""

    careplan: StoredResource
    symptom_goal_id: str | None


async def lock_courses(conn: AsyncConnection, course_ids: Sequence[str]) -> dict[str, LockedCourse]:
    """Lock the CarePlan rows of `course_ids` in id order until commit; those never written
    are missing from the answer."""
    if not course_ids:
        return {}
    r = resource
    rows = await conn.execute(
        select(r, ipt_course.c.symptom_goal_id)
        .outerjoin(ipt_course, ipt_course.c.id == r.c.id)
        .where(r.c.resource_type == "CarePlan", among(r.c.id, course_ids, Text()))
        .order_by(r.c.id)
        .with_for_update(of=r)
    )
    return {row.id: LockedCourse(_stored(row), row.symptom_goal_id) for row in rows}


async def current_resources(
    conn: AsyncConnection, resource_type: str, ids: Sequence[str]
) -> dict[str, StoredResource]:
    """The current rows of `ids` of one type (deleted or not), unlocked, by id."""
    if not ids:
        return {}
    r = resource
    rows = await conn.execute(
        select(r).where(r.c.resource_type == resource_type, among(r.c.id, ids, Text()))
    )
    return {row.id: _stored(row) for row in rows}


def _stored(row: object) -> StoredResource:
    return StoredResource(
        resource_type=row.resource_type,  # type: ignore[attr-defined]
        id=row.id,  # type: ignore[attr-defined]
        version_id=row.version_id,  # type: ignore[attr-defined]
        last_updated=row.last_updated,  # type: ignore[attr-defined]
        deleted=row.deleted,  # type: ignore[attr-defined]
        content=row.content,  # type: ignore[attr-defined]
    )
