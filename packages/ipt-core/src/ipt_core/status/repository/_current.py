"""`course_status`: one row per course, the status the worker stored last (and its history).

Every statement takes a whole batch: the recompute loop stores a claimed batch with a fixed
number of statements (docs/architecture.md, "Status engine").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import BigInteger, Text, cast, delete, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import course_status, course_status_history
from ipt_core.db.unnest import INSTANT, among, unnest_rows

__all__ = [
    "Cause",
    "StatusWrite",
    "StoredStatus",
    "delete_statuses",
    "lock_statuses",
    "read_status",
    "save_statuses",
    "touch_statuses",
]

Cause = Literal["created", "facts", "time"]
# The columns of a stored status; all but the key are replaced by a new version.
_COLUMNS = (
    "course_id",
    "version",
    "computed_at",
    "status",
    "phase",
    "engagement",
    "next_transition_at",
)


@dataclass(frozen=True)
class StoredStatus:
    """A stored `course_status` row."""

    course_id: str
    version: int
    computed_at: datetime
    status: dict[str, Any]
    next_transition_at: datetime | None


@dataclass(frozen=True)
class StatusWrite:
    """A new status version of a course, and why it changed (its history row's cause)."""

    course_id: str
    version: int
    status: dict[str, Any]
    next_transition_at: datetime | None
    cause: Cause


async def read_status(conn: AsyncConnection, course_id: str) -> StoredStatus | None:
    """The stored status of one course, or None before the worker first stored one."""
    return (await _select(conn, [course_id], lock=False)).get(course_id)


async def lock_statuses(
    conn: AsyncConnection, course_ids: Sequence[str]
) -> dict[str, StoredStatus]:
    """Lock and return the stored statuses of the courses that have one, in course id order."""
    return await _select(conn, course_ids, lock=True)


async def save_statuses(
    conn: AsyncConnection, writes: Sequence[StatusWrite], *, now: datetime
) -> None:
    """Store new status versions and their history rows: two statements for the batch.

    A course removed and later restored starts again at version 1, so an existing history
    row of that version is replaced by the new lineage.
    """
    if not writes:
        return
    rows = unnest_rows(
        "saved",
        course_id=(Text(), [w.course_id for w in writes]),
        version=(BigInteger(), [w.version for w in writes]),
        status=(Text(), [orjson.dumps(w.status).decode() for w in writes]),
        phase=(Text(), [w.status["phase"] for w in writes]),
        engagement=(Text(), [w.status["engagement"] for w in writes]),
        next_at=(INSTANT, [w.next_transition_at for w in writes]),
        cause=(Text(), [w.cause for w in writes]),
    )
    status = cast(rows.c.status, JSONB)
    current = insert(course_status).from_select(
        _COLUMNS,
        select(
            rows.c.course_id,
            rows.c.version,
            cast(now, INSTANT),
            status,
            rows.c.phase,
            rows.c.engagement,
            rows.c.next_at,
        ),
    )
    await conn.execute(
        current.on_conflict_do_update(
            index_elements=[course_status.c.course_id],
            set_={name: current.excluded[name] for name in _COLUMNS[1:]},
        )
    )
    history = insert(course_status_history).from_select(
        ["course_id", "version", "computed_at", "status", "cause"],
        select(rows.c.course_id, rows.c.version, cast(now, INSTANT), status, rows.c.cause),
    )
    await conn.execute(
        history.on_conflict_do_update(
            index_elements=[course_status_history.c.course_id, course_status_history.c.version],
            set_={name: history.excluded[name] for name in ("computed_at", "status", "cause")},
        )
    )


async def touch_statuses(
    conn: AsyncConnection, unchanged: Mapping[str, datetime | None], *, now: datetime
) -> None:
    """Record that unchanged statuses were computed at `now`, with their next transition."""
    if not unchanged:
        return
    rows = unnest_rows(
        "touched",
        course_id=(Text(), list(unchanged)),
        next_at=(INSTANT, list(unchanged.values())),
    )
    await conn.execute(
        update(course_status)
        .where(course_status.c.course_id == rows.c.course_id)
        .values(computed_at=now, next_transition_at=rows.c.next_at)
    )


async def delete_statuses(conn: AsyncConnection, course_ids: Sequence[str]) -> None:
    """Forget the statuses of courses that are no longer IPT courses (history stays)."""
    if course_ids:
        await conn.execute(
            delete(course_status).where(among(course_status.c.course_id, course_ids, Text()))
        )


async def _select(
    conn: AsyncConnection, course_ids: Sequence[str], *, lock: bool
) -> dict[str, StoredStatus]:
    if not course_ids:
        return {}
    s = course_status
    query = (
        select(s.c.course_id, s.c.version, s.c.computed_at, s.c.status, s.c.next_transition_at)
        .where(among(s.c.course_id, course_ids, Text()))
        .order_by(s.c.course_id)
    )
    rows = await conn.execute(query.with_for_update() if lock else query)
    return {row.course_id: StoredStatus(*row) for row in rows}
