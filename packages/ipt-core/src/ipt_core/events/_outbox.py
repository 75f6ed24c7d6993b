"""Appending events to the outbox, inside the transaction of the change that caused them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.parts import RowsPart
from ipt_core.events._repository import (
    append_numbered,
    insert_events,
    numbered_rows_part,
    reserve_sequences,
)

__all__ = ["append_events", "append_sequenced", "next_sequence", "sequenced_part"]


async def next_sequence(conn: AsyncConnection, aggregate_id: str, count: int = 1) -> int:
    """Reserve `count` per-aggregate sequence numbers; return the first (1, 2, 3 …).

    The counter row stays locked until the caller's transaction ends, so concurrent writers
    of one course get increasing, gap-free numbers in commit order.
    """
    return (await reserve_sequences(conn, {aggregate_id: count}))[aggregate_id]


async def append_events(
    conn: AsyncConnection, aggregate_type: str, events: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Write `events` (CloudEvent envelopes) to the outbox in the caller's transaction.

    The same statement NOTIFYs the relay, which hears it when the transaction commits.
    """
    await insert_events(conn, [_outbox_row(aggregate_type, event, now) for event in events])


async def append_sequenced(
    conn: AsyncConnection, events: Sequence[tuple[str, dict[str, Any]]], now: datetime
) -> None:
    """Number and append `(aggregate type, envelope)` pairs: one statement for any count.

    Each envelope's `sequence` becomes the next number of its `partitionkey`, in the order
    given, as `next_sequence` one event at a time would (the write listeners' and the status
    engine's batch form; the numbering is SQL's, `append_numbered`).
    """
    await append_numbered(
        conn, [_outbox_row(aggregate_type, event, now) for aggregate_type, event in events]
    )


def sequenced_part(events: Sequence[tuple[str, dict[str, Any]]], now: datetime) -> RowsPart:
    """`append_sequenced` as rows of another statement (a resource write's own)."""
    return numbered_rows_part(
        [_outbox_row(aggregate_type, event, now) for aggregate_type, event in events]
    )


def _outbox_row(aggregate_type: str, event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The outbox columns of an envelope; the payload is the envelope as JSON text."""
    return {
        "id": event["id"],
        "aggregatetype": aggregate_type,
        "aggregateid": event["partitionkey"],
        "type": event["type"],
        "payload": orjson.dumps(event).decode(),
        "traceparent": event.get("traceparent"),
        "created_at": now,
    }
