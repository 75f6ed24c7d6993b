"""What the relay reads from the outbox and how it marks events published (all its SQL).

Only the relay leader calls these, on the connection that holds its leadership lock, so the
feed positions it hands out commit in the order they are numbered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["FEED_CHANNEL", "OutboxEvent", "history", "mark_published", "unpublished"]

# Notified (on commit) when events were published: wakes long-polling feed readers.
FEED_CHANNEL: Final = "ipt_feed"


@dataclass(frozen=True)
class OutboxEvent:
    """One outbox row: its global sequence and its CloudEvent envelope."""

    seq: int
    envelope: dict[str, Any]

    @property
    def id(self) -> str:
        """The CloudEvent id (stable across retries and replays)."""
        return str(self.envelope["id"])

    @property
    def type(self) -> str:
        """The CloudEvent type."""
        return str(self.envelope["type"])

    @property
    def partition_key(self) -> str:
        """The course id (or `Type/id`): events of one key are delivered in order."""
        return str(self.envelope["partitionkey"])


async def unpublished(conn: AsyncConnection, limit: int) -> list[OutboxEvent]:
    """Lock and return the oldest unpublished events, in `seq` order.

    `seq` order is commit order within one course (writers of a course queue on its
    `event_sequence` row), which is the order publishers must keep.
    """
    rows = await conn.execute(
        text(
            "SELECT seq, payload FROM outbox WHERE published_at IS NULL "
            "ORDER BY seq LIMIT :limit FOR UPDATE"
        ),
        {"limit": limit},
    )
    return [OutboxEvent(row.seq, row.payload) for row in rows]


async def mark_published(
    conn: AsyncConnection, events: Sequence[OutboxEvent], now: datetime
) -> None:
    """Stamp `events` published and give them the next feed positions, in `seq` order.

    One statement, which also notifies waiting feed readers (delivered on commit).
    """
    await conn.execute(
        text(
            "WITH batch AS (SELECT seq, nextval('outbox_feed_position') AS position "
            "FROM (SELECT unnest(CAST(:seqs AS bigint[])) AS seq ORDER BY 1) ordered), "
            "marked AS (UPDATE outbox SET published_at = :now, feed_position = batch.position "
            "FROM batch WHERE outbox.seq = batch.seq) "
            "SELECT pg_notify(:channel, '')"
        ),
        {"now": now, "seqs": sorted(event.seq for event in events), "channel": FEED_CHANNEL},
    )


async def history(
    conn: AsyncConnection, *, since: datetime, until: datetime, after_seq: int, limit: int
) -> list[OutboxEvent]:
    """Stored events created in [since, until) with `seq` above `after_seq`, in `seq` order."""
    rows = await conn.execute(
        text(
            "SELECT seq, payload FROM outbox WHERE created_at >= :since AND created_at < :until "
            "AND seq > :after ORDER BY seq LIMIT :limit"
        ),
        {"since": since, "until": until, "after": after_seq, "limit": limit},
    )
    return [OutboxEvent(row.seq, row.payload) for row in rows]
