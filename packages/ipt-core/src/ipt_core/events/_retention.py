"""Retention: published events and finished deliveries older than the configured age go."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["delete_expired_events"]


async def delete_expired_events(conn: AsyncConnection, cutoff: datetime, *, chunk: int) -> int:
    """Delete up to `chunk` published events created before `cutoff`; return how many.

    An event some webhook endpoint still waits for stays (its delivery needs the envelope);
    `event_sequence` is never trimmed, so a course's `sequence` keeps increasing.
    Call it again until it returns less than `chunk`.
    """
    await conn.execute(
        text(
            "DELETE FROM webhook_delivery WHERE id IN (SELECT id FROM webhook_delivery "
            "WHERE status = 'delivered' AND created_at < :cutoff LIMIT :chunk)"
        ),
        {"cutoff": cutoff, "chunk": chunk},
    )
    deleted = await conn.execute(
        text(
            "DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox o "
            "WHERE o.created_at < :cutoff AND o.published_at < :cutoff AND NOT EXISTS "
            "(SELECT 1 FROM webhook_delivery d WHERE d.event_seq = o.seq "
            "AND d.status = 'pending') LIMIT :chunk)"
        ),
        {"cutoff": cutoff, "chunk": chunk},
    )
    return int(deleted.rowcount)
