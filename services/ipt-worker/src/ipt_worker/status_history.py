"""The status history: one row per stored status version (docs/analytics.md).

Written by the recompute loop in the same transaction as `course_status` and the status
events, so the history never misses or invents a version, even after a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Cause", "change_cause", "record_history"]

Cause = Literal["created", "facts", "time"]


def change_cause(previous: Any, now: datetime) -> Cause:
    """Why the status changed: a new course, a time-driven transition, or changed facts.

    `previous` is the stored `course_status` row (or None). A change computed at or after the
    previous status's `next_transition_at` is attributed to time (overdue, maintenance due);
    otherwise a write changed the course's facts.
    """
    if previous is None:
        return "created"
    due = getattr(previous, "next_transition_at", None)
    return "time" if due is not None and due <= now else "facts"


async def record_history(
    conn: AsyncConnection,
    course_id: str,
    version: int,
    status: dict[str, Any],
    previous: Any,
    now: datetime,
) -> None:
    """Keep the stored status `version` of a course (same transaction as `course_status`).

    A course removed and later restored starts again at version 1 (as `course_status`
    does), so an existing row of that version is replaced by the new lineage.
    """
    await conn.execute(
        text(
            "INSERT INTO course_status_history (course_id, version, computed_at, status, cause) "
            "VALUES (:id, :version, :now, CAST(:status AS jsonb), :cause) "
            "ON CONFLICT (course_id, version) DO UPDATE SET computed_at = EXCLUDED.computed_at, "
            "status = EXCLUDED.status, cause = EXCLUDED.cause"
        ),
        {
            "id": course_id,
            "version": version,
            "now": now,
            "status": orjson.dumps(status).decode(),
            "cause": change_cause(previous, now),
        },
    )
