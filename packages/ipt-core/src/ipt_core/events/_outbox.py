"""Appending events to the outbox, inside the transaction of the change that caused them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events._repository import insert_events, reserve_sequences

__all__ = ["append_events", "append_sequenced", "next_sequence", "next_sequences"]


async def next_sequence(conn: AsyncConnection, aggregate_id: str, count: int = 1) -> int:
    """Reserve `count` per-aggregate sequence numbers; return the first (1, 2, 3 …).

    The counter row stays locked until the caller's transaction ends, so concurrent writers
    of one course get increasing, gap-free numbers in commit order.
    """
    return (await reserve_sequences(conn, {aggregate_id: count}))[aggregate_id]


async def next_sequences(conn: AsyncConnection, counts: Mapping[str, int]) -> dict[str, int]:
    """`next_sequence` for many aggregates in one statement: the first number of each key."""
    return await reserve_sequences(conn, counts)


async def append_events(
    conn: AsyncConnection, aggregate_type: str, events: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Write `events` (CloudEvent envelopes) to the outbox in the caller's transaction.

    The same statement NOTIFYs the relay, which hears it when the transaction commits.
    """
    await insert_events(
        conn,
        [
            {
                "id": event["id"],
                "aggregatetype": aggregate_type,
                "aggregateid": event["partitionkey"],
                "type": event["type"],
                "payload": orjson.dumps(event).decode(),
                "traceparent": event.get("traceparent"),
                "created_at": now,
            }
            for event in events
        ],
    )


async def append_sequenced(
    conn: AsyncConnection, events: Sequence[tuple[str, dict[str, Any]]], now: datetime
) -> None:
    """Number and append `(aggregate type, envelope)` pairs: two statements for any count.

    Each envelope's `sequence` becomes the next number of its `partitionkey`, in the order
    given, as `next_sequence` one event at a time would (the write listeners' batch form).
    """
    if not events:
        return
    counts: dict[str, int] = {}
    for _, event in events:
        counts[event["partitionkey"]] = counts.get(event["partitionkey"], 0) + 1
    following = await next_sequences(conn, counts)
    rows = []
    for aggregate_type, event in events:
        key = event["partitionkey"]
        # CloudEvents extension attributes are strings (`_envelope.cloud_event`).
        numbered = {**event, "sequence": f"{following[key]:020d}"}
        following[key] += 1
        rows.append(
            {
                "id": numbered["id"],
                "aggregatetype": aggregate_type,
                "aggregateid": key,
                "type": numbered["type"],
                "payload": orjson.dumps(numbered).decode(),
                "traceparent": numbered.get("traceparent"),
                "created_at": now,
            }
        )
    await insert_events(conn, rows)
