"""Appending events to the outbox, inside the transaction of the change that caused them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, Text, insert, select, text
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import event_sequence, outbox
from ipt_core.db.unnest import unnest_rows

__all__ = ["OUTBOX_CHANNEL", "append_events", "next_sequence", "next_sequences"]

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


async def next_sequences(conn: AsyncConnection, counts: Mapping[str, int]) -> dict[str, int]:
    """`next_sequence` for many aggregates in one statement: the first number of each.

    Counter rows are locked in aggregate id order, so two batches never deadlock on them.
    """
    ids = sorted(counts)
    if not ids:
        return {}
    asked = unnest_rows(
        "asked", aggregateid=(Text(), ids), count=(BigInteger(), [counts[i] for i in ids])
    )
    reserve = upsert(event_sequence).from_select(
        ["aggregateid", "last"],
        select(asked.c.aggregateid, asked.c.count).order_by(asked.c.aggregateid),
    )
    rows = await conn.execute(
        reserve.on_conflict_do_update(
            index_elements=[event_sequence.c.aggregateid],
            set_={"last": event_sequence.c.last + reserve.excluded.last},
        ).returning(event_sequence.c.aggregateid, event_sequence.c.last)
    )
    return {row.aggregateid: int(row.last) - counts[row.aggregateid] + 1 for row in rows}


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
