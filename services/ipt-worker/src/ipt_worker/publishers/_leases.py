"""`QueueLeases`: the delivery queues this process sends, each held by an advisory lock.

Every worker process runs a delivery loop. A process sends a queue (endpoint, course) only
while it holds that queue's session advisory lock, taken on one dedicated connection, so the
queues are shared out among the processes and each is sent by one of them at a time, in order.
When the process dies or its connection drops, PostgreSQL ends the session and frees every
lock it held: other processes take those queues at their next claim, and what was sent but
not recorded is sent again (same `webhook-id`). The connection also `LISTEN`s for queued
deliveries, so every process wakes when the relay fans events out (docs/architecture.md,
"Events: outbox and relay").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.advisory import session_of_its_own
from ipt_core.events.webhooks import (
    DELIVERY_CHANNEL,
    DueDelivery,
    Queue,
    drop_empty,
    lock_sendable,
    plan_each_claim,
    queued,
)
from ipt_core.events.webhooks import unlock as unlock_queues

__all__ = ["QueueLeases"]


class QueueLeases:
    """Claims and releases queues on the lock connection (one caller at a time)."""

    def __init__(self, conn: AsyncConnection, engine: AsyncEngine, wake: asyncio.Event) -> None:
        """Hold locks on `conn`, an autocommit connection of its own; `engine` for the rare
        transaction (`drop_empty`); set `wake` when there may be more to claim at once."""
        self._conn = conn
        self._engine = engine
        self._wake = wake
        self._released: list[Queue] = []  # unlocked at the next claim, one round trip for all

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(cls, engine: AsyncEngine, wake: asyncio.Event) -> AsyncIterator[QueueLeases]:
        """A lock connection that sets `wake` when deliveries are queued; closing it ends the
        session, which frees every lock still held."""
        async with session_of_its_own(engine) as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await plan_each_claim(conn)
            driver: Any = (await conn.get_raw_connection()).driver_connection
            await driver.add_listener(DELIVERY_CHANNEL, lambda *_: wake.set())
            yield cls(conn, engine, wake)

    async def claim(self, now: datetime, *, queues: int, per_queue: int) -> list[DueDelivery]:
        """Lock up to `queues` sendable queues; return their pending rows (up to `per_queue`
        each), oldest first. Queues given back since the last claim are unlocked first."""
        released, self._released = self._released, []
        await unlock_queues(self._conn, released)
        locked = await lock_sendable(self._conn, now, queues=queues)
        rows = await queued(self._conn, locked, per_queue=per_queue)
        # Nothing to send (its endpoint was just disabled, or its count was too high): give
        # it back, and delete its row if no delivery is pending (`drop_empty`).
        empty = set(locked) - {(row.endpoint_id, row.partition_key) for row in rows}
        if empty:
            async with self._engine.begin() as conn:
                await drop_empty(conn, sorted(empty))
            self._released += empty
            self._wake.set()  # the queues behind them may be due: look again at once
        return rows

    def release(self, queue: Queue) -> None:
        """Give `queue` back (its lock goes at the next claim, or with the session)."""
        self._released.append(queue)
