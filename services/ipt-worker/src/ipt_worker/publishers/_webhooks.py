"""The webhook publisher: fans each event out to the delivery queue of every matching endpoint.

The fan-out commits with the relay's batch, so each (endpoint, event) is queued exactly once;
the delivery loop (`WebhookDeliverer`) sends the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events import OutboxEvent
from ipt_core.events.webhooks import fan_out

__all__ = ["WebhookFanOut"]


class WebhookFanOut:
    """Queues deliveries for the endpoints whose types and filters match each event."""

    name = "webhooks"

    def __init__(self, clock: Callable[[], datetime]) -> None:
        """Stamp queued deliveries with `clock()`."""
        self._clock = clock

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        """Insert one delivery row per matching (endpoint, event), in event order."""
        await fan_out(conn, [event.seq for event in events], self._clock())

    async def close(self) -> None:
        """Nothing to release."""
