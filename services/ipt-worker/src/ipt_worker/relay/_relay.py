"""`EventRelay`: publishes the outbox, in order, from one leader at a time.

Leadership is a session-level advisory lock held by one dedicated connection. A standby
retries the lock every `standby_retry_s`; when the leader's process dies or its connection
drops, PostgreSQL ends the session and frees the lock, and a standby leads within seconds. The
leader does all its work on that connection, so a leader that lost it can publish nothing more.

The leader is woken by `NOTIFY` from `append_events` (on commit), sent only while it sleeps
(`_sleep`), and polls as a fallback. Its connection is in autocommit. A batch is one
statement when every publisher lives in the database (`publish_oldest`: stamp the oldest
events published with feed positions, queue their webhook deliveries); with publishers
outside it (NATS), one transaction locks the batch, hands it to them and stamps it. Either
way a crash before commit republishes the batch (at-least-once; publishers dedupe by event
id). The leader logs each batch when asked to (`log_batches`) and also runs retention,
periodically. The webhook delivery loop runs in every replica, leader or standby: the
replicas share the delivery queues out among themselves (`WebhookDeliverer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from opentelemetry import metrics
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.advisory import session_of_its_own
from ipt_core.db.driver import driver_transaction
from ipt_core.events import (
    OUTBOX_CHANNEL,
    RELAY_ASLEEP_LOCK,
    OutboxEvent,
    Published,
    any_unpublished,
    delete_expired_events,
    publish_oldest,
    stamp_published,
    unpublished,
)
from ipt_core.events.webhooks import delete_delivered, reconcile
from ipt_worker.outage import Reconnection
from ipt_worker.publishers import Publisher, WebhookDeliverer, log_batch

__all__ = ["LEADER_LOCK", "EventRelay", "RelayTiming"]

_log = logging.getLogger(__name__)
LEADER_LOCK: Final = int.from_bytes(
    hashlib.sha256(b"ipt-care-service:event-relay").digest()[:8], "big", signed=True
)
_RETENTION_CHUNK: Final = 5000
# Without a linger, how soon the leader looks again when a writer's commit keeps it awake.
_RECHECK_S: Final = 0.01


@dataclass(frozen=True)
class RelayTiming:
    """Batch size, retention and waits of the relay (from the worker's settings)."""

    batch_size: int = 500
    retention: timedelta = timedelta(days=30)  # published events older than this go
    retention_interval_s: float = 3600.0
    poll_interval_s: float = 1.0  # a NOTIFY missed (the connection was re-opened)
    linger_s: float = 0.02  # after a NOTIFY, what commits meanwhile joins the batch
    standby_retry_s: float = 1.0
    reconnect_s: float = 1.0


class PublisherFailed(Exception):
    """A publisher refused a batch; the batch is rolled back and tried again later."""


class EventRelay:
    """Runs as leader or standby until stopped; safe to run in every worker replica."""

    def __init__(
        self,
        engine: AsyncEngine,
        publishers: Sequence[Publisher] = (),
        *,
        clock: Callable[[], datetime],
        timing: RelayTiming = RelayTiming(),
        deliverer: WebhookDeliverer | None = None,
        log_batches: bool = False,
    ) -> None:
        """Relay from `engine`'s database to `publishers`, the ones outside the database.

        With a `deliverer`, each batch also queues its webhook deliveries, and `deliverer`
        sends them all along. With `log_batches`, each batch is logged (`log_batch`).
        """
        self.engine = engine
        self.publishers = tuple(publishers)
        self.clock = clock
        self.timing = timing
        self.deliverer = deliverer
        self.log_batches = log_batches
        self.is_leader = False
        self.published = 0  # events published by this relay (benchmarks, tests)
        self._database = Reconnection(_log, "database (event relay)", initial_s=timing.reconnect_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Lead or stand by, and deliver webhooks, until `stop` is set."""
        loops = [self._relay(stop)]
        if self.deliverer is not None:
            loops.append(self.deliverer.run(stop))
        await asyncio.gather(*loops)

    async def _relay(self, stop: asyncio.Event) -> None:
        """Lead or stand by until `stop` is set, reconnecting (with backoff) after failures.

        Each new session takes the lock and `LISTEN`s afresh; an outage is logged once.
        """
        while not stop.is_set():
            try:
                await self._session(stop)
            except Exception as error:  # the database restarts, the connection drops
                await self._database.failed(error, stop)

    async def publish_batch(self, conn: AsyncConnection) -> int:
        """Publish the oldest unpublished events; return how many. `conn` is in autocommit."""
        fan_out = self.deliverer is not None
        if self.publishers:  # they need the envelopes before the batch commits
            async with driver_transaction(conn):
                events = await unpublished(conn, self.timing.batch_size)
                if not events:
                    return 0
                await self._publish(conn, events)
                seqs = [event.seq for event in events]
                batch = await stamp_published(conn, seqs, self.clock(), fan_out=fan_out)
        else:
            batch = await publish_oldest(
                conn, self.timing.batch_size, self.clock(), fan_out=fan_out
            )
        if batch:
            self._report(batch)
        return len(batch)

    def _report(self, batch: Sequence[Published]) -> None:
        """Count, log (when asked to) and time a batch that was published."""
        self.published += len(batch)
        if self.log_batches:
            log_batch(batch)
        published = self.clock()
        for event in batch:  # lag: from the change that caused the event to its publication
            _lag.record(max((published - event.created_at).total_seconds(), 0.0))

    async def _session(self, stop: asyncio.Event) -> None:
        # Its session ends with the block, and with it the leader lock.
        async with session_of_its_own(self.engine) as session:
            conn = await session.execution_options(isolation_level="AUTOCOMMIT")
            try:
                if await self._acquire(conn, stop):
                    await self._lead(conn, stop)
            finally:
                self.is_leader = False

    async def _acquire(self, conn: AsyncConnection, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            locked = await conn.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK}
            )
            self._database.succeeded()
            if locked:
                return True
            await _wait(stop, None, self.timing.standby_retry_s)
        return False

    async def _lead(self, conn: AsyncConnection, stop: asyncio.Event) -> None:
        self.is_leader = True
        _log.info("event relay: leading")
        wake = asyncio.Event()
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.add_listener(OUTBOX_CHANNEL, lambda *_: wake.set())
        try:
            await self._publish_until_stopped(conn, stop, wake)
        finally:
            for publisher in self.publishers:
                with contextlib.suppress(Exception):
                    await publisher.close()

    async def _publish_until_stopped(
        self, conn: AsyncConnection, stop: asyncio.Event, wake: asyncio.Event
    ) -> None:
        next_cleanup = time.monotonic()
        while not stop.is_set():
            wake.clear()
            try:
                count = await self.publish_batch(conn)
            except PublisherFailed as failure:
                _log.warning("event relay: %s; retrying the batch", failure)
                await _wait(stop, None, self.timing.reconnect_s)
                continue
            if time.monotonic() >= next_cleanup:
                await self._clean(conn)
                next_cleanup = time.monotonic() + self.timing.retention_interval_s
            if count == 0:
                await self._sleep(conn, stop, wake)
            if count < self.timing.batch_size and self.timing.linger_s:
                # Woken at once, a leader under a steady write rate would publish a few
                # events per batch, and pay a batch's fixed cost (its transaction, the lock and
                # the stamp, each publisher's round) for each few. Lingering a moment gathers
                # many (docs/architecture.md#events-outbox-and-relay).
                await _wait(stop, None, self.timing.linger_s)

    async def _sleep(self, conn: AsyncConnection, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Wait for a NOTIFY (or the poll interval), if writers will send one.

        Writers NOTIFY only while the leader holds `RELAY_ASLEEP_LOCK` (ipt_core/events): it
        takes the lock, so every writer from then on NOTIFYs, and sleeps only if nothing
        waits, looked at again now that the lock is held. A writer that did not NOTIFY holds
        the lock shared until its commit: while one is in flight the lock is not to be had,
        and the leader stays awake, to poll again after its linger.
        """
        asleep = await conn.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": RELAY_ASLEEP_LOCK}
        )
        if not asleep:
            # A writer that did not NOTIFY is in flight: look again after the linger or,
            # without one, after a moment (not at once, in a loop, for as long as it lasts).
            if not self.timing.linger_s:
                await _wait(stop, None, _RECHECK_S)
            return
        try:
            # In autocommit, no transaction stays open: a session in one is not told of a NOTIFY.
            waiting = await any_unpublished(conn)
            if not waiting:
                await _wait(stop, wake, self.timing.poll_interval_s)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RELAY_ASLEEP_LOCK})

    async def _publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        for publisher in self.publishers:
            try:
                await publisher.publish(conn, events)
            except Exception as error:
                raise PublisherFailed(f"{publisher.name}: {type(error).__name__}") from error

    async def _clean(self, conn: AsyncConnection) -> None:
        cutoff = self.clock() - self.timing.retention
        async with driver_transaction(conn):
            # The webhook queue table rebuilt from the deliveries: after a rare race, or
            # older processes that ran beside this version during a rolling upgrade.
            if not await reconcile(conn):
                _log.warning("event relay: webhook queues busy; reconciled at the next pass")
        for _ in range(20):  # bounded, so publishing is not held up for long
            async with driver_transaction(conn):
                delivered = await delete_delivered(conn, cutoff, chunk=_RETENTION_CHUNK)
                events = await delete_expired_events(conn, cutoff, chunk=_RETENTION_CHUNK)
            if max(delivered, events) < _RETENTION_CHUNK:
                return


_lag = metrics.get_meter("ipt_worker.relay").create_histogram(
    "ipt.relay.lag", unit="s", description="From an event's change to its publication"
)


async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep up to `seconds`, returning early when `stop` (or `wake`) is set."""
    events = [stop] if wake is None else [stop, wake]
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
