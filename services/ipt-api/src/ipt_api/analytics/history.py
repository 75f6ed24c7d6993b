"""A course's status history: every stored version, oldest first (docs/analytics.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.fhir.errors import ResourceNotFound
from ipt_core.instants import format_instant
from ipt_core.status.repository import history_page

__all__ = ["status_history"]


async def status_history(
    conn: AsyncConnection, course_id: str, *, after_version: int, limit: int
) -> list[dict[str, Any]]:
    """Stored versions of a course's status after `after_version`, oldest first.

    Raises:
        ResourceNotFound: when the course is not an IPT course with a stored status history.
    """
    rows = await history_page(conn, course_id, after_version=after_version, limit=limit)
    if not rows and after_version == 0:
        raise ResourceNotFound(f"No status history of IPT course {course_id!r}")
    return [
        {
            "version": row.version,
            "computed_at": format_instant(row.computed_at),
            "cause": row.cause,
            "status": row.status,
        }
        for row in rows
    ]
