"""`Acknowledgements`: successful deliveries recorded many at a time (group commit).

Every sender of the delivery loop hands its successes here; its queue is not looked at again
until they are recorded (the sender itself moves on to the next queue meanwhile). One task
writes whatever has gathered meanwhile with one statement, so under load a single round trip
records the successes of many queues, and when the loop is idle a success is recorded at once
(docs/architecture.md#events-outbox-and-relay).
A success that is never recorded (the database went away, the process died) leaves its row
pending: it is sent again, with the same `webhook-id` — at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.faults import database_fault
from ipt_core.events.webhooks import Delivered, record_delivered

__all__ = ["Acknowledgements"]

_log = logging.getLogger(__name__)


class Acknowledgements:
    """Gathers `Delivered` outcomes; `run` records them; `recorded` waits for some of them."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Record through `engine` (autocommit: the statement is its own transaction)."""
        self.engine = engine
        self._gathered: list[Delivered] = []
        self._batch: asyncio.Future[None] | None = None
        self._ready = asyncio.Event()

    def add(self, delivered: Delivered) -> asyncio.Future[None]:
        """Queue one success; the future resolves once it is recorded (or fails with the write)."""
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
            # A chain cancelled at shutdown no longer awaits it: never "exception not retrieved".
            self._batch.add_done_callback(_retrieve)
        self._gathered.append(delivered)
        self._ready.set()
        return self._batch

    @staticmethod
    async def recorded(batches: Iterable[asyncio.Future[None]]) -> None:
        """Wait until every one of `batches` is recorded; raise if one of them failed."""
        for batch in set(batches):
            await asyncio.shield(batch)

    async def run(self) -> None:
        """Record gathered successes, one statement per round, until cancelled."""
        while True:
            await self._ready.wait()
            await self._flush()

    async def drain(self) -> None:
        """Record what is still gathered (at shutdown); failures leave the rows pending."""
        with contextlib.suppress(Exception):
            await self._flush()

    async def _flush(self) -> None:
        self._ready.clear()
        gathered, batch = self._gathered, self._batch
        self._gathered, self._batch = [], None
        if batch is None:
            return
        try:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await record_delivered(conn, gathered)
        except asyncio.CancelledError:
            batch.cancel()  # shutting down: its chains are being cancelled too
            raise
        except Exception as error:
            # Rows stay pending: their events are sent again (same `webhook-id`).
            fault = database_fault(error) or type(error).__name__
            _log.warning("%d webhook deliveries not recorded: %s", len(gathered), fault)
            batch.set_exception(error)
        else:
            batch.set_result(None)


def _retrieve(batch: asyncio.Future[None]) -> None:
    if not batch.cancelled():
        batch.exception()
