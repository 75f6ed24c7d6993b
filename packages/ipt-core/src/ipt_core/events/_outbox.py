"""Appending events to the outbox, inside the transaction of the change that caused them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import outbox

__all__ = ["OUTBOX_CHANNEL", "append_events", "next_sequence"]

# LISTEN/NOTIFY channel that wakes the relay. PostgreSQL delivers a notification only when
# the transaction commits, and folds identical ones of a transaction into one.
OUTBOX_CHANNEL: Final = "ipt_outbox"


async def next_sequence(conn: AsyncConnection, aggregate_id: str, count: int = 1) -> int:
    """Reserve `count` per-aggregate sequence numbers; return the first (1, 2, 3 …).

    The counter row stays locked until the caller's transaction ends, so concurrent writers
    of one course get increasing, gap-free numbers in commit order.
    """
    last = await conn.scalar(
        text(
            "INSERT INTO event_sequence (aggregateid, last) VALUES (:id, :count) "
            "ON CONFLICT (aggregateid) DO UPDATE SET last = event_sequence.last + :count "
            "RETURNING last"
        ),
        {"id": aggregate_id, "count": count},
    )
    return int(last) - count + 1


async def append_events(
    conn: AsyncConnection, aggregate_type: str, events: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Write `events` (CloudEvent envelopes) to the outbox in the caller's transaction."""
    if not events:
        return
    await conn.execute(
        insert(outbox),
        [
            {
                "id": event["id"],
                "aggregatetype": aggregate_type,
                "aggregateid": event["partitionkey"],
                "type": event["type"],
                "payload": event,
                "traceparent": event.get("traceparent"),
                "created_at": now,
            }
            for event in events
        ],
    )
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
