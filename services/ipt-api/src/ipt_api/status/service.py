"""Reading course statuses: the stored one, or one computed fresh `as_of` an instant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.fhir.errors import BusinessRuleViolated, ResourceNotFound
from ipt_core.instants import format_instant
from ipt_core.status import compute_status
from ipt_core.status.loader import UnreadableCourse, load_facts
from ipt_core.status.repository import read_status
from ipt_core.status.serialize import status_json

__all__ = ["course_status"]


async def course_status(
    conn: AsyncConnection, course_id: str, *, as_of: datetime | None, now: datetime
) -> dict[str, Any]:
    """Return the course's status with `version` and `computed_at`.

    With `as_of`, the status is computed fresh at that instant (read-only, never stored).
    Before the worker has first stored a status, the fresh one is returned with `version`
    and `computed_at` null.

    Raises:
        ResourceNotFound: when the course does not exist or is entered-in-error.
    """
    if as_of is None:
        row = await read_status(conn, course_id)
        if row is not None:
            return {
                **row.status,
                "version": row.version,
                "computed_at": format_instant(row.computed_at),
            }
    facts = (await load_facts(conn, [course_id])).get(course_id)
    if facts is None:
        raise ResourceNotFound(f"No IPT course {course_id!r}")
    if isinstance(facts, UnreadableCourse):
        raise BusinessRuleViolated(f"The course's stored data cannot be evaluated ({facts.error})")
    fresh = status_json(compute_status(facts, as_of or now))
    return {**fresh, "version": None, "computed_at": None}
