"""The development publisher: logs each batch's event types and count (never their data)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events import OutboxEvent

__all__ = ["LogPublisher"]

_log = logging.getLogger("ipt.events")


class LogPublisher:
    """Logs one line per published batch at INFO: its feed positions, and events per type.

    One line per batch rather than per event: a line per event cost a bulk load ~3% of the
    process's CPU in `ipt run` (bench/PROFILE.md, "Eighth round"). Positions are the
    outbox's global `seq`.
    """

    name = "log"

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        """Log the batch's lowest and highest `seq`, and how many events of each type."""
        if not events:
            return
        types = ", ".join(f"{t} {n}" for t, n in sorted(Counter(e.type for e in events).items()))
        _log.info(
            "events published: seq %d-%d, %d (%s)",
            min(e.seq for e in events),
            max(e.seq for e in events),
            len(events),
            types,
        )

    async def close(self) -> None:
        """Nothing to release."""
