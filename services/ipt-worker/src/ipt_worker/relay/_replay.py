"""`ipt events replay`: send stored history again, with the original event ids.

To a webhook endpoint, the events are queued behind what is pending for it (the delivery
loop sends them, in order per course). To NATS, they are published directly; JetStream drops
those it still remembers within its duplicate window (2 minutes by default).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.events import history
from ipt_core.events.webhooks import endpoint, queue_replay
from ipt_worker.publishers import NatsPublisher

__all__ = ["UnknownEndpoint", "replay_to_nats", "replay_to_webhook"]


class UnknownEndpoint(LookupError):
    """No webhook endpoint has the given id."""


async def replay_to_webhook(
    engine: AsyncEngine,
    endpoint_id: str,
    *,
    since: datetime,
    until: datetime,
    clock: Callable[[], datetime],
) -> int:
    """Queue every stored event of [since, until) that the endpoint wants; return how many."""
    async with engine.begin() as conn:
        if await endpoint(conn, endpoint_id) is None:
            raise UnknownEndpoint(endpoint_id)
        return await queue_replay(conn, endpoint_id, since, until, clock())


async def replay_to_nats(
    engine: AsyncEngine,
    publisher: NatsPublisher,
    *,
    since: datetime,
    until: datetime,
    batch_size: int = 500,
) -> int:
    """Publish every stored event of [since, until) in `seq` order; return how many."""
    sent, after = 0, 0
    try:
        while True:
            async with engine.connect() as conn:
                events = await history(
                    conn, since=since, until=until, after_seq=after, limit=batch_size
                )
                if not events:
                    return sent
                await publisher.publish(conn, events)
            sent += len(events)
            after = events[-1].seq
    finally:
        await publisher.close()
