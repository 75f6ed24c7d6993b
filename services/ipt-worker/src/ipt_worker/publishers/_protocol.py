"""What every publisher offers the relay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events import OutboxEvent

__all__ = ["Publisher"]


class Publisher(Protocol):
    """Hands a batch of events, in order, to one destination.

    `publish` runs inside the relay's transaction: raising rolls the batch back and the relay
    tries it again later, so a publisher sees an event at least once.
    """

    name: str

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        """Publish `events` (oldest first); return only once the destination has them."""

    async def close(self) -> None:
        """Release connections (the relay lost or gave up leadership)."""
