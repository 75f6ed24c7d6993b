"""The development publisher: logs each event's type and id (never its data)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events import OutboxEvent

__all__ = ["LogPublisher"]

_log = logging.getLogger("ipt.events")


class LogPublisher:
    """Logs `event <type> <id>` per event at INFO."""

    name = "log"

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        """Log each event's type and id."""
        for event in events:
            _log.info("event %s %s", event.type, event.id)

    async def close(self) -> None:
        """Nothing to release."""
